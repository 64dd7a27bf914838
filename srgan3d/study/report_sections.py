"""The report's sections, in order (`SECTIONS`): each a function of the study's result tree that
returns its title and HTML parts, or None when it has nothing to show; and the key results at
the head of the report. They render results and fit nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.study.config import SEED_SPREAD, TIE_TOLERANCE_AUC
from srgan3d.study.report_figures import (
    calibration_figure,
    dca_figure,
    examples_figure,
    km_figure,
    nomogram_figure,
    panel_roc_figure,
    roc_figure,
    stamp_for,
)
from srgan3d.study.report_format import (
    Notes,
    delong_cell,
    delong_cells,
    esc,
    figure_html,
    fit_line,
    fmt_auc,
    fmt_ci,
    fmt_coef,
    fmt_num,
    fmt_p,
    fmt_p_eq,
    fmt_per,
    fmt_ranges,
    fmt_ratio,
    fmt_signed,
    odds_ratio_table,
    table_html,
    var_label,
)
from srgan3d.study.results import (
    CLASSIFIER_LABELS,
    LEARNED_AUC_FLOOR,
    MODEL_LABELS,
    RADSCORE_MODELS,
    TRAIN,
    StudyResult,
)


def panel_names(r: StudyResult, sets: tuple[str, ...] | None = None) -> str:
    """'left to right: train, test, centre_B' for a figure's caption."""
    return "left to right: " + ", ".join(map(esc, r.sets if sets is None else sets))


def sets_line(r: StudyResult) -> str:
    sp = r.split
    if sp.source == "table":
        how = "as the cohort table's <code>set</code> column gives them"
    else:
        how = (f"a stratified {1 - (sp.test_size or 0):.0%}:{sp.test_size or 0:.0%} split drawn with seed {sp.seed}; "
               "the table has no <code>set</code> column")  # fmt: skip
    ext = (f"; external test set{'s' if len(sp.external) > 1 else ''}: <b>{', '.join(map(esc, sp.external))}</b>"
           if sp.external else "")  # fmt: skip
    return f"Sets: {esc(sp.describe())} ({how}){ext}. Every model is fitted on the train set only."


Section = tuple[str, list[str]]


def has_model(r: StudyResult, model: str) -> bool:
    return model in r.roster.names


def features_line(r: StudyResult) -> str:
    """Where the study's features came from, in one line."""
    rad = r.radiomics
    if rad.extracted:
        sr_note = rad.sr_method or ""
        if "generator" not in sr_note:
            sr_note += " (zero-filled k-space interpolation: no generator weights were used, so SR adds no new information)"
        return f"Super-resolution of each tumour: {esc(sr_note)}; features on the {rad.spacing} grids."
    if r.features_source.startswith("tables"):
        return (f"Radiomic features read from {esc(r.features_source.split(': ', 1)[1])} ({rad.n_features} features "
                "each), not extracted here.")  # fmt: skip
    return "No radiomic features: the clinical half of the study (clinical model, staging, survival, readers)."


def cohort_line(r: StudyResult) -> str:
    c = r.cohort
    line = (f"{c.n_in_table} patients in the table; {c.n_patients} in the study ({c.n_responders} responders, "
            f"{c.n_patients - c.n_responders} non-responders)")  # fmt: skip
    if r.excluded:
        line += f"; {len(r.excluded)} left out, each named with the reason in the cohort section"
    ag = r.agreement
    if ag is not None and ag.fleiss_categories is not None:
        k = ag.fleiss_categories
        line += (f". Readers' mRECIST agreement: Fleiss' κ {k.value:.2f} [{k.ci_low:.2f}–{k.ci_high:.2f}] on the four "
                 f"categories ({k.n} patients read by all {len(ag.readers)})")  # fmt: skip
    return line + "."


def key_results(r: StudyResult) -> list[str]:
    tested = r.split.evaluation
    key = [cohort_line(r), features_line(r), sets_line(r)]
    for e in r.roster.models:
        if e.family != "study":
            continue
        m = e.name
        aucs = "; ".join(f"{esc(s)} AUC {fmt_auc(r.metrics[s].roc[m])}" for s in tested)
        line = f"{esc(e.label)}: {aucs}"
        opt = r.fitted.optimism_of(m)
        if opt is not None and np.isfinite(opt.corrected_auc):
            line += f"; optimism-corrected AUC {opt.corrected_auc:.3f} (bootstrap, development patients)"
        key.append(line + ".")
    post, pre = RADSCORE_MODELS[1], RADSCORE_MODELS[0]
    if has_model(r, post) and has_model(r, pre):
        diffs = "; ".join(
            f"{esc(s)}: ΔAUC {fmt_signed(r.metrics[s].delong_pair(post, pre).difference)}, DeLong "
            f"{esc(fmt_p_eq(r.metrics[s].delong_pair(post, pre).p_value))}" for s in tested
        )
        key.append(f"Post- vs pre-SR radiomics: {diffs}. {SIGN_CONVENTION} With "
                   f"{r.metrics[r.split.primary].n} {esc(r.split.primary)} patients the intervals are wide.")  # fmt: skip
    best = r.roster.best
    key.append(f"Best model ({esc(r.roster.best_rule)}): {esc(r.roster.best_label)}.")
    dca = "; ".join(
        f"{esc(s)}: above both at {fmt_ranges(r.metrics[s].decision_ranges.get(best, {}).get('useful', []))}, the highest "
        f"of all models at {fmt_ranges(r.metrics[s].decision_ranges.get(best, {}).get('highest', []))}" for s in r.sets
    )
    key.append(f"Decision curves of the best model, threshold probabilities where its net benefit is above treat-all "
               f"and treat-none (grid 0.01–0.99): {dca}.")  # fmt: skip
    for name, note in r.fitted.separated.items():
        key.append("⚠ " + fit_line(model_name(name), note))
    if r.deep and r.deep.dlrcr and r.deep.dlrcr.fit.separated:
        key.append("⚠ " + fit_line("DLRCR", r.deep.dlrcr.fit))
    if r.deep and not r.deep.skipped:
        for image, dm in r.deep.models.items():
            if not dm.learned:
                key.append(f"⚠ The {image}-SR deep model did not learn ({esc(dm.not_learned)}); its AUCs are reported "
                           "but mean nothing" + (", and DLRCR was not built." if image == "post" else "."))  # fmt: skip
    return ["<div class='key'><b>Key results</b><ul>" + "".join(f"<li>{k}</li>" for k in key) + "</ul></div>"]


#: The report's one sign convention, stated once in the key results.
SIGN_CONVENTION = ("Every difference in this report is the later-listed model minus the earlier: post-SR minus "
                   "pre-SR, the combined model minus its parts, the best model minus a comparator.")


def model_name(fit_key: str) -> str:
    """A logistic model's key in `FittedSummary.fits` as the report names it."""
    if fit_key.startswith("univariable: "):
        return "Univariable model of " + var_label(fit_key.split(": ", 1)[1])
    return MODEL_LABELS.get(fit_key, fit_key)


def _reader(column: str) -> str:
    """'response_2' -> 'Reader 2' (the column's number is the reader's)."""
    return "Reader " + column.rsplit("_", 1)[1] if column.rsplit("_", 1)[-1].isdigit() else column


def _agreement_parts(r: StudyResult) -> list[str]:
    ag = r.agreement
    if ag is None:
        return []
    reads = ", ".join(f"{_reader(k)} ({esc(k)}) {v}" for k, v in ag.reads_per_reader.items())
    parts = [f"<p><b>Readers' mRECIST.</b> The label is {esc(ag.label_rule)}; {esc(ag.ties)}. Patients read: "
             f"{reads}; {ag.n_read_by_all} of {ag.n_patients} read by all {len(ag.readers)} readers (Fleiss' κ is "
             "computed on them; each pair on the patients both read).</p>"]  # fmt: skip
    rows = []
    for k in (ag.fleiss_categories, ag.fleiss_responder):
        if k is not None:
            rows.append({"Statistic": k.statistic, "κ [95% CI]": f"{k.value:.3f} [{k.ci_low:.3f}–{k.ci_high:.3f}]",
                         "Patients": k.n, "CI": k.ci_method})  # fmt: skip
    if rows:
        parts.append(table_html(pd.DataFrame(rows), left=("Statistic", "CI")))
    rows = []
    for pair in ag.pairs:
        w = pair.weighted_kappa
        rows.append({
            "Readers": f"{_reader(pair.reader_a)} – {_reader(pair.reader_b)}", "Patients": pair.n,
            "Weighted κ, categories [95% CI]": f"{w.value:.3f} [{w.ci_low:.3f}–{w.ci_high:.3f}]" if w else "–",
            "κ, responder calls [95% CI]": (f"{pair.kappa_responder.value:.3f} [{pair.kappa_responder.ci_low:.3f}–"
                                            f"{pair.kappa_responder.ci_high:.3f}]"),
            "Agreement, responder calls [95% CI]": (f"{100 * pair.agreement:.1f}% [{100 * pair.agreement_ci[0]:.1f}–"
                                                    f"{100 * pair.agreement_ci[1]:.1f}%]"),
        })  # fmt: skip
    if rows:
        parts.append("<b>Each pair of readers</b> (Cohen's κ linear-weighted on CR &lt; PR &lt; SD &lt; PD, CI from the "
                     "large-sample variance of Fleiss, Cohen &amp; Everitt, as R's vcd::Kappa; percentage agreement with "
                     "Wilson's interval)" + table_html(pd.DataFrame(rows), left=("Readers",)))  # fmt: skip
    return parts


def _cohort_section(r: StudyResult) -> Section:
    c = r.cohort
    parts = [f"<p>{c.n_in_table} patients in the cohort table; {c.n_patients} in the study: {c.n_responders} "
             f"responders (mRECIST CR + PR) and {c.n_patients - c.n_responders} non-responders (SD + PD).</p>"]  # fmt: skip
    if r.tables:
        parts.append("<p class='small'>Tables read: " + "; ".join(esc(t) for t in r.tables) + ".</p>")
    if r.excluded:
        left = pd.DataFrame([{"Patient": e.patient_id, "Why it was left out": e.reason} for e in r.excluded])
        parts.append(f"<b>Left out of the study: {len(r.excluded)} patient{'s' if len(r.excluded) != 1 else ''}</b>"
                     + table_html(left, left=("Patient", "Why it was left out")))  # fmt: skip
    parts += _agreement_parts(r)
    rows = [{"Set": name, "Patients": m.n, "Responders": m.n_responders, "Non-responders": m.n - m.n_responders,
             "Role": "fitting" if name == TRAIN else ("internal test" if name == "test" else "external test")}
            for name, m in r.metrics.items()]  # fmt: skip
    parts.append("<p>" + sets_line(r) + "</p>" + table_html(pd.DataFrame(rows), left=("Set", "Role")))
    summ = pd.DataFrame([row.to_dict() for row in r.cohort_summary])
    if len(summ):
        summ["variable"] = summ["variable"].map(var_label)
        summ = summ.rename(columns={"variable": "Variable", "level": "", "responders": "Responders",
                                    "non_responders": "Non-responders", "test": "Test", "p_value": "p"})  # fmt: skip
        parts.append(table_html(summ, left=("Variable", "", "Test"), formats={"p": fmt_p}))
    return "Cohort", parts


def _clinical_section(r: StudyResult) -> Section:
    cfg = r.config.modeling
    candidates = list(cfg.clinical)
    entered = [v.variable for v in r.fitted.clinical_multivariable if v.variable != "const"]
    others = sorted({v.variable for v in r.cohort_summary} - set(candidates) - {t.variable for t in r.transforms})
    logged = [t for t in r.transforms if t.transform == "log10"]
    parts = [
        "<p>Candidates considered: <b>" + ", ".join(esc(var_label(v)) for v in candidates)
        + "</b> (the <code>clinical</code> modelling option; default: the study's tumour diameter and arterial "
        "enhancement)."
        + (f" Other clinical columns of the cohort table, summarised in the cohort section but <b>not</b> candidates: "
           f"{', '.join(esc(var_label(v)) for v in others)}." if others else "")
        + f" Univariable logistic regression of each candidate on the training set; those with p &lt; "
        f"{cfg.clinical_p_enter} enter the multivariable model (all candidates if none does). "
        f"Entered: <b>{', '.join(esc(var_label(v)) for v in entered)}</b>. Odds ratios per SD of the training values of "
        "a continuous variable (the Per column gives that SD, in the units the variable is modelled in) and per unit of "
        "a binary one (yes vs no).</p>"
        + ("<p>Modelled on log10 (a positive variable with skewness &gt; 2 is, unless <code>--transform "
           "COLUMN=none</code>; <code>--transform COLUMN=log10</code> asks for it): "
           + "; ".join(f"<b>{esc(t.variable)}</b> as {esc(t.modelled_as)} ({esc(t.reason)})" for t in logged)
           + ". The same variables enter the survival models so.</p>" if logged else ""),
        "<b>Univariable</b>" + table_html(odds_ratio_table(r.fitted.clinical_univariable), left=("Variable",)),
        "<b>Multivariable</b>" + table_html(odds_ratio_table(r.fitted.clinical_multivariable), left=("Variable",)),
    ]  # fmt: skip
    if r.fitted.combined_model:
        parts.append("<b>RCR: clinical-radiological + post-SR radscore</b>"
                     + table_html(odds_ratio_table(r.fitted.combined_model), left=("Variable",)))  # fmt: skip
    separated = r.fitted.separated
    parts.append("<p class='small'>Separation checked in every logistic model by the linear program of Konis (as R's "
                 "detectseparation): " + (" ".join(fit_line(model_name(k), v) for k, v in separated.items())
                                          if separated else "none found; maximum likelihood throughout.") + "</p>")  # fmt: skip
    return "Clinical model", parts


def _radiomics_section(r: StudyResult) -> Section:
    rad, cfg = r.radiomics, r.config.modeling
    if "radiomics" in r.absent:
        return "Radiomics signatures", [f"<p>{esc(r.absent['radiomics'])}</p>"]
    if not rad.extracted:
        source = (f"{rad.n_features} features per patient read from <code>"
                  f"{esc(r.features_source.split(': ', 1)[1])}</code> (computed elsewhere; diagnostics columns dropped)")  # fmt: skip
    else:
        source = (f"{rad.n_features} pyradiomics features of the tumour per image (parameter file "
                  f"<code>{esc(rad.params)}</code>)"
                  + (f"; with the peritumoral rings {rad.n_features_with_rings} in all, used only in their own section"
                     if (rad.n_features_with_rings or rad.n_features) != rad.n_features else ""))  # fmt: skip
    parts = [
        f"<p>{source}"
        + ". On the training set only: features that are constant or not finite are dropped; Mann–Whitney U screening "
        f"(p &lt; {cfg.screen_p}, at least {cfg.min_screened} and at most {cfg.max_screened} features); of two "
        f"features with |Spearman ρ| &gt; {cfg.max_abs_spearman} the less significant is dropped; LASSO-logistic "
        f"regression with {cfg.cv_folds}-fold cross-validated penalty (ROC AUC) gives the radscore, the model's "
        "log-odds; z(x) = (x − training mean) / training SD.</p>"
    ]  # fmt: skip
    for name in RADSCORE_MODELS:
        if name not in r.fitted.radscore:
            continue
        rs = r.fitted.radscore[name]
        parts.append(
            f"<p><b>{MODEL_LABELS[name]}</b>: {rs.n_features_in} features; {rs.n_variance_kept} of them "
            f"finite and not constant; {rs.n_screen_passed} pass the Mann–Whitney screen (p &lt; {cfg.screen_p}); "
            f"{rs.n_after_redundancy} remain after the redundancy filter; LASSO keeps <b>{len(rs.features)}</b> (C = {rs.C:.3g}"
            + ("; the cross-validated optimum selected none, so the strongest penalty keeping one feature was used"
               if rs.fallback else "")
            + f").<br><code>{esc(rs.formula)}</code></p>"
        )  # fmt: skip
    if "post_sr" in r.absent:
        parts.append(f"<p>{esc(r.absent['post_sr'])}</p>")
    return "Radiomics signatures", parts


def _discrimination_section(r: StudyResult) -> Section:
    parts = [figure_html(roc_figure(r), "ROC curves of the models, one panel per set (" + panel_names(r) + "); legend: AUC [95% CI] by DeLong's method.")]
    rows = []
    for e in r.roster.models:
        row = {"Model": e.label}
        for s in r.sets:
            row[f"{s} AUC [95% CI]"] = fmt_auc(r.metrics[s].roc[e.name])
        opt = r.fitted.optimism_of(e.name)
        row["Corrected AUC*"] = f"{opt.corrected_auc:.3f}" if opt is not None else ""
        row["Threshold†"] = f"{r.roster.thresholds[e.name]:.3f}"
        rows.append(row)
    parts.append(table_html(pd.DataFrame(rows), left=("Model",)))
    parts.append(
        "<p class='small'>* Optimism-corrected AUC of the whole selection-and-fitting pipeline (Harrell's bootstrap, "
        f"{r.config.modeling.n_bootstrap} resamples, selection and fitting redone in each) over the development "
        "patients (train and test; external sets stay out). † The predicted probability of response at or above "
        f"which a patient is called a responder: {esc(r.fitted.threshold_rule or 'chosen on the training set')}. "
        "Training AUCs are apparent (in-sample).</p>"
    )  # fmt: skip
    rows = []
    for e in r.roster.models:
        for s in r.sets:
            op = r.metrics[s].operating_points[e.name]
            rows.append({"Model": e.label, "Set": s, "Accuracy": fmt_ci(op.accuracy, op.accuracy_ci),
                         "Sensitivity": fmt_ci(op.sensitivity, op.sensitivity_ci),
                         "Specificity": fmt_ci(op.specificity, op.specificity_ci)})  # fmt: skip
    parts.append("<b>Operating points at each model's threshold</b> (†; Wilson 95% CIs)"
                 + table_html(pd.DataFrame(rows), left=("Model", "Set")))
    rows = []
    first = r.metrics[r.sets[0]]
    for d in first.delong:
        # A is the model listed later: post-SR minus pre-SR, RCR minus CR, as everywhere in the report
        a, b = d.model_b, d.model_a
        row = {"Model A": r.roster.label(a), "Model B": r.roster.label(b)}
        for s in r.sets:
            row.update(delong_cells(r.metrics[s].delong_pair(a, b), f"{s}: A − B"))
        rows.append(row)
    if rows:
        parts.append("<b>DeLong tests, every pair, each set</b> (A − B, A the model listed later in the roster)"
                     + table_html(pd.DataFrame(rows), left=("Model A", "Model B")))
    return "Discrimination", parts


def _panel_section(r: StudyResult) -> Section | None:
    if "panel" in r.absent:
        return "Classifier panel", [f"<p>{esc(r.absent['panel'])}</p>"]

    panel = r.panel
    if panel is None:
        return None
    f = panel.features
    parts = [
        f"<p>{len(panel.classifiers)} classifier{'s' if len(panel.classifiers) != 1 else ''} "
        f"({', '.join(CLASSIFIER_LABELS[c] for c in panel.classifiers)}) on the features each image's radscore selected "
        f"on the training set (pre-SR: {', '.join(map(esc, f.get('pre') or ('none',)))}; post-SR: "
        f"{', '.join(map(esc, f.get('post') or ('none',)))}), standardised with training statistics. Hyperparameters by "
        f"grid search with {panel.inner_cv_folds}-fold stratified cross-validation on the training set only (ROC AUC); "
        "SVM probabilities Platt-calibrated on training folds. Thresholds: the Youden point of each classifier's "
        "out-of-fold training predictions (refitted with its chosen hyperparameters in each fold). "
        f"Optimism-corrected AUC: {panel.n_bootstrap} stratified bootstrap resamples of the development patients, "
        "features and hyperparameters fixed as chosen. Inner-CV AUCs within "
        f"{TIE_TOLERANCE_AUC} of the best are a tie, won by the simpler setting (stronger penalty, smoother kernel, more "
        f"neighbours, shallower trees, smaller network), so that noise in the features cannot flip the choice; the "
        f"whole fit is redone with {SEED_SPREAD} inner-CV seeds (the study's and the next ones), and the spread of "
        "each test AUC over them stands beside it.</p>"
    ]  # fmt: skip
    if panel.best:
        b = panel.best
        parts.append(f"<p><b>Best classifier: {esc(CLASSIFIER_LABELS[b.classifier])}, {b.image}-SR features</b> "
                     f"(training cross-validated AUC {b.cv_auc:.3f}): chosen by {esc(b.rule)}.</p>")  # fmt: skip
    tested = r.split.evaluation
    rows, notes = _panel_rows(r, tested)
    parts.append(table_html(pd.DataFrame(rows), left=("Classifier", "Image", "Hyperparameters")) + notes.html())
    fig = panel_roc_figure(r)
    if fig:
        parts.append(figure_html(fig, f"ROC of each classifier on each test set ({panel_names(r, tested)}), pre-SR features dashed, post-SR solid, with "
                          "the clinical model."))  # fmt: skip
    drows = []
    for i, d in enumerate(panel.delong[tested[0]] if tested and panel.delong else ()):
        row = {"Classifier": CLASSIFIER_LABELS[d.classifier],
               "A": f"{d.a}-SR" if d.a in ("pre", "post") else d.a,
               "B": f"{d.b}-SR" if d.b in ("pre", "post") else MODEL_LABELS.get(d.b, d.b)}  # fmt: skip
        for s in tested:
            row.update(delong_cells(panel.delong[s][i], f"{s}: A − B"))
        drows.append(row)
    if drows:
        parts.append("<b>DeLong tests of the panel</b>" + table_html(pd.DataFrame(drows), left=("Classifier", "A", "B")))
    if panel.skipped:
        parts.append("<p class='small'><b>Skipped:</b> " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in panel.skipped.items()) + "</p>")
    return "Classifier panel", parts


def _panel_rows(r: StudyResult, tested: tuple[str, ...]) -> tuple[list[dict[str, str]], Notes]:
    """One row per classifier and image of the panel's table, and the notes its marks point to."""
    assert r.panel is not None
    panel = r.panel
    rows: list[dict[str, str]] = []
    notes = Notes()
    for name, images in panel.models.items():
        for image, m in images.items():
            row = {"Classifier": CLASSIFIER_LABELS[name], "Image": f"{image}-SR", "Train CV AUC": fmt_num(m.cv_auc),
                   "Train AUC": fmt_num(m.train_auc), "Corrected AUC": fmt_num(m.corrected_auc)}  # fmt: skip
            seeds_note = (notes.mark(f"{CLASSIFIER_LABELS[name]}, {image}-SR: the {SEED_SPREAD} inner-CV seeds chose "
                                     f"{m.seed_settings} different settings.") if m.seed_settings > 1 else "")  # fmt: skip
            for s in tested:
                op = m.operating_points[s]
                row[f"{s} AUC [95% CI]"] = fmt_auc(m.roc[s])
                lo_hi = m.seed_spread.get(s)
                row[f"{s} AUC over {SEED_SPREAD} seeds"] = (f"{fmt_num(lo_hi[0])}–{fmt_num(lo_hi[1])}{seeds_note}"
                                                            if lo_hi else "–")  # fmt: skip
                row[f"{s} sens / spec"] = f"{fmt_num(op.sensitivity)} / {fmt_num(op.specificity)}"
            row["Threshold"] = f"{m.threshold:.3f}"
            marks = "".join(notes.mark(w) for w in m.warnings)
            if m.separation and m.separation != "none":
                marks += notes.mark(f"{CLASSIFIER_LABELS[name]}, {image}-SR: {m.separation} separation of the training "
                                    "set by its features; its L2 penalty keeps the coefficients finite.")  # fmt: skip
            row["Hyperparameters"] = ", ".join(f"{k}={v}" for k, v in m.params.items()) + (f" {marks}" if marks else "")
            rows.append(row)
    return rows, notes


def _comparators_section(r: StudyResult) -> Section | None:
    if not r.comparators:
        return None
    rows = []
    for c in r.comparators:
        row = {"Comparator": var_label(c.comparator), "Ranked as": c.order or "numbers",
               "Direction (from training set)": c.direction}
        for s in r.split.evaluation:
            row[f"{s} AUC [95% CI]"] = fmt_auc(c.roc[s])
            row.update(delong_cells(c.delong_vs_best[s], f"{s}: best − comparator"))
        rows.append(row)
    return "Staging systems", [
        f"<p>Each ordinal staging column as a score of its own, against the study's best model "
        f"({esc(r.roster.best_label)}) on each test set.</p>",
        table_html(pd.DataFrame(rows), left=("Comparator", "Ranked as", "Direction (from training set)"))]  # fmt: skip


def _regions_section(r: StudyResult) -> Section | None:
    if "rings" in r.absent:
        return "Peritumoral regions", [f"<p>{esc(r.absent['rings'])}</p>"]
    if not r.regions:
        return None
    tested = r.split.evaluation
    rows = []
    for g in r.regions:
        row: dict[str, Any] = {"Region": g.region, "Features": g.n_features}
        if g.error:
            row["Result"] = f"skipped: {g.error}"
            rows.append(row)
            continue
        row["Selected pre / post"] = f"{len(g.images['pre'].features)} / {len(g.images['post'].features)}"
        for s in tested:
            row[f"{s} pre-SR AUC"] = fmt_auc(g.images["pre"].roc[s])
            row[f"{s} post-SR AUC"] = fmt_auc(g.images["post"].roc[s])
            row.update(delong_cells(g.delong_post_vs_pre[s], f"{s}: post − pre"))
        rows.append(row)
    widths = ", ".join(f"{w:g}" for w in (r.config.radiomics.peritumoral if r.config.radiomics else ()))
    return "Peritumoral regions", [
        f"<p>Rings of {widths} mm around the tumour (tumour excluded), made by a distance transform in millimetres on "
        "each image's own grid and clipped to the liver mask where the table gives one; features per region; a "
        "radscore per region and image fitted on the training set as above.</p>",
        table_html(pd.DataFrame(rows), left=("Region", "Result"))]  # fmt: skip


def _deep_section(r: StudyResult) -> Section | None:
    dl = r.deep
    if "deep" in r.absent:
        return "Deep-learning models", [f"<p>{esc(r.absent['deep'])}</p>"]
    if dl is None:
        return None
    if dl.skipped:
        return "Deep-learning models", [f"<p><b>Skipped</b> — {esc(dl.skipped)}</p>"]
    c = dl.config
    tested = r.split.evaluation
    rows = []
    for image, m in dl.models.items():
        row: dict[str, str] = {"Model": f"{c.arch}{' dual-branch (' + c.dual + ')' if c.dual else ''}, {image}-SR",
                               "Train AUC": fmt_num(m.train_auc)}  # fmt: skip
        for s in tested:
            row[f"{s} AUC [95% CI]"] = fmt_auc(m.roc[s])
        row.update({"Epochs (best)": f"{m.epochs} ({m.best_epoch})", "Inner val loss": fmt_num(m.best_val_loss),
                    "Learned": "yes" if m.learned else f"no: {m.not_learned}"})  # fmt: skip
        rows.append(row)
    if dl.dlrcr:
        row = {"Model": "DLRCR: deep score (post-SR) + post-SR radscore + CR", "Train AUC": fmt_num(r.metrics[TRAIN].roc["dlrcr"].auc)}
        for s in tested:
            row[f"{s} AUC [95% CI]"] = fmt_auc(r.metrics[s].roc["dlrcr"])
        row.update({"Epochs (best)": "", "Inner val loss": "", "Learned": ""})
        rows.append(row)
    parts = [f"<p>MONAI 3D {esc(c.arch)} (width ×{c.widen_factor:g}) on a {c.crop_mm:g} mm cube around the "
             f"tumour centroid resampled to {c.crop_vox}³ voxels, trained on the training patients (an inner "
             f"{c.val_fraction:.0%} stops it early; class-weighted; flips, ±10° in-plane rotations and intensity "
             f"jitter; seed {c.seed}), before and after SR separately. A model learned if its training AUC "
             f"reaches {LEARNED_AUC_FLOOR:.2f} and its inner-validation loss improved after the first epoch; DLRCR is "
             "built only on a post-SR deep score that learned. Its threshold comes from out-of-fold refits of its "
             "logistic layer; the deep score and radscore it combines are those fitted on the whole training set.</p>",
             table_html(pd.DataFrame(rows), left=("Model", "Learned"))]  # fmt: skip
    if dl.dlrcr_skipped:
        parts.append(f"<p><b>DLRCR not built</b> — {esc(dl.dlrcr_skipped)}.</p>")
    if dl.delong_post_vs_pre:
        lines = []
        for s in tested:
            line = f"{esc(s)}: deep post − pre {delong_cell(dl.delong_post_vs_pre[s])}"
            if dl.dlrcr:
                line += f"; DLRCR − RCR {delong_cell(r.metrics[s].delong_pair('dlrcr', 'clinical_post_sr'))}"
            lines.append(line)
        parts.append("<p>DeLong: " + ". ".join(lines) + ".</p>")
    return "Deep-learning models", parts


def _usefulness_section(r: StudyResult) -> Section:
    parts = [figure_html(dca_figure(r), "Net benefit of treating (here: predicting response for) the patients whose predicted "
                  "probability is at or above each threshold, one panel per set (" + panel_names(r) + ").")]  # fmt: skip
    rows = []
    for s in r.sets:
        dc = pd.DataFrame(r.metrics[s].decision_curve).set_index("threshold")
        for t in (0.2, 0.4, 0.6):
            i = int(np.argmin(np.abs(dc.index.to_numpy() - t)))
            row = dc.iloc[i]
            rows.append({"Set": s, "Threshold": f"{t:.1f}", **{e.label: f"{row[e.name]:.3f}" for e in r.roster.models},
                         "Treat all": f"{row['treat_all']:.3f}", "Treat none": "0.000"})  # fmt: skip
    parts.append("<b>Net benefit at three threshold probabilities</b>" + table_html(pd.DataFrame(rows), left=("Set",)))
    rows = []
    for e in r.roster.models:
        row = {"Model": e.label}
        for s in r.sets:
            d = r.metrics[s].decision_ranges.get(e.name, {})
            row[f"{s}: above treat-all and treat-none"] = fmt_ranges(d.get("useful", []))
            row[f"{s}: highest of all models"] = fmt_ranges(d.get("highest", []))
        rows.append(row)
    parts.append("<b>Threshold ranges of each model</b> (threshold probabilities on the grid 0.01–0.99 where its net "
                 "benefit is above both default strategies, and where it is moreover the highest of the models; the "
                 "training set's curves use the apparent, in-sample predictions)"
                 + table_html(pd.DataFrame(rows), left=tuple(rows[0]) if rows else ()))  # fmt: skip
    nomo = nomogram_figure(r)
    if nomo:
        which = ("the combined logistic model (clinical-radiological variables + post-SR radscore, RCR)"
                 if r.fitted.combined_model else "the clinical model")  # fmt: skip
        parts.append(figure_html(nomo, f"Nomogram of {which}, fitted on the training set: read each predictor's points, add "
                          "them, and read the probability of response below the total."))  # fmt: skip
    return "Clinical usefulness", parts


def _calibration_section(r: StudyResult) -> Section:
    parts = [figure_html(calibration_figure(r), "Observed fraction of responders against mean predicted probability in groups "
                  "of equal size (10 on sets of 100 patients or more, else 5), one panel per set (" + panel_names(r) + ").")]  # fmt: skip
    rows = []
    notes = Notes()
    for e in r.roster.models:
        for s in r.sets:
            c = r.metrics[s].calibration[e.name]
            valid = c.hl_valid
            mark = "" if valid else " " + notes.mark(
                "Not valid: a group expects fewer than one responder or non-responder (predictions near 0 or 1, or "
                "a small set), so the chi-square approximation fails; the statistic is not shown.")  # fmt: skip
            rows.append({"Model": e.label, "Set": s, "Brier": fmt_num(c.brier), "Slope": fmt_num(c.slope, 2),
                         "Intercept": fmt_num(c.intercept, 2),
                         "Hosmer–Lemeshow χ² (df)": (f"{fmt_num(c.hl_statistic, 2)} ({c.hl_df})" if valid
                                                     else f"not valid{mark}"),
                         "HL p": fmt_p(c.hl_p_value) if valid else "–"})  # fmt: skip
    parts.append(table_html(pd.DataFrame(rows), left=("Model", "Set")) + notes.html())
    parts.append("<p class='small'>Slope: logistic recalibration slope (1 ideal, &lt; 1 predictions too extreme; "
                 "– when the predictions separate the classes perfectly). Intercept: calibration-in-the-large.</p>")
    return "Calibration", parts


def _images_section(r: StudyResult) -> Section | None:
    if "sr" in r.absent and not r.sr_quality:
        return "Images", [f"<p>{esc(r.absent['sr'])}</p>"]
    parts = []
    quality = r.sr_quality
    if quality:
        qdf = pd.DataFrame({"Method": [q.method for q in quality.results],
                            "PSNR dB (body)": [f"{q.psnr_db:.2f}" for q in quality.results],
                            "SSIM (body)": [f"{q.ssim:.4f}" for q in quality.results],
                            "PSNR dB (tumour)": [f"{q.psnr_tumour_db:.2f}" for q in quality.results]})  # fmt: skip
        parts.append(
            "<b>Super-resolution quality against a known truth</b><p>One synthetic phantom "
            f"({esc('x'.join(map(str, quality.hr_shape)))} voxels), degraded 2x by k-space truncation and "
            "upscaled by each method, scored against its true high resolution. "
            + ("<b>Simulated:</b> a phantom proves the plumbing, not the quality on patients; "
               "see the weights' model card for held-out real MRI. " if stamp_for(r) else "")
            + "</p>" + table_html(qdf, left=("Method",))
        )  # fmt: skip
    ex = examples_figure(r)
    if ex:
        parts.append(figure_html(ex, "Axial slice through the centre of the tumour VOI (yellow outline) before and after "
                          f"super-resolution ({esc(r.radiomics.sr_method)}); the same physical field of view."))  # fmt: skip
    return ("Images", parts) if parts else None


def _survival_section(r: StudyResult) -> Section | None:
    if r.survival is None:
        return None
    parts = ["<p>Risk groups: the best model's held-out prediction (probability of response at or above its "
             f"out-of-fold training threshold, {esc(r.roster.best_label)}), in each set apart. Training patients are "
             "grouped by their out-of-fold predictions (each from a fit that did not see them), every other set by the "
             "model fitted on the training set, so that no set's groups come from a model fitted on its own patients. "
             "Kaplan–Meier curves with 95% CIs, numbers at risk and the log-rank test; Cox proportional hazards (Efron "
             "ties, as R's coxph; lifelines) of the risk group and the clinical candidates (hazard ratios per SD of the training set's values for a "
             "continuous covariate, the same unit in every set, and per unit for a binary one: the Per column); "
             "Harrell's C of the model "
             "(bootstrap 95% CI).</p>"]  # fmt: skip
    for ep in r.survival.endpoints:
        if ep.skipped:
            parts.append(f"<p><b>{esc(ep.endpoint)}: skipped</b> — {esc(ep.skipped)}</p>")
            continue
        if any(not sv.skipped for sv in ep.sets.values()):
            parts.append(figure_html(km_figure(r, ep), f"{esc(ep.endpoint.capitalize())}: Kaplan–Meier curves of the risk groups of "
                              f"{esc(ep.best_model)}, one panel per set ("
                              + panel_names(r, tuple(k for k, v in ep.sets.items() if not v.skipped)) + ")."))  # fmt: skip
        for s, sv in ep.sets.items():
            if sv.skipped:
                parts.append(f"<p><b>{esc(ep.endpoint)}, {esc(s)} set: skipped</b> — {esc(sv.skipped)}</p>")
                continue
            risk = []
            for k in sv.kaplan_meier:
                median = f"{k.median:.1f} {ep.time_unit}" if np.isfinite(k.median) else "not reached"
                risk.append({"Group": k.group, "Median": median,
                             **{f"{float(t):g} {ep.time_unit}": n for t, n in k.at_risk}})  # fmt: skip
            parts.append(f"<b>Numbers at risk, {esc(ep.endpoint)}, {esc(s)} set</b>"
                         + table_html(pd.DataFrame(risk), left=("Group",)))  # fmt: skip
            if sv.cox is None:
                continue
            rows = [{"Covariate": var_label(c.covariate), "Per": fmt_per(c.unit, c.unit_size),
                     "HR [95% CI]": fmt_ratio(c.hr, c.hr_low, c.hr_high),
                     "coef (per 1)": fmt_coef(c.coef, 4), "SE": fmt_coef(c.se, 4), "z": fmt_num(c.z, 2), "p": fmt_p(c.p)}
                    for c in sv.cox.terms]  # fmt: skip
            ci, lr = sv.c_index, sv.cox.likelihood_ratio
            parts.append(f"<b>Cox model, {esc(ep.endpoint)}, {esc(s)} set</b> (n = {sv.cox.n}, {sv.cox.events} events; "
                         f"likelihood-ratio test χ² {lr.statistic:.2f} on {lr.df} df, p {fmt_p(lr.p)}"
                         + (f"; Harrell's C of the response model {ci.c_index:.3f} [{ci.ci_low:.3f}-{ci.ci_high:.3f}]" if ci else "")
                         + ")"
                         + table_html(pd.DataFrame(rows), left=("Covariate",)))  # fmt: skip
    return "Survival", parts


def _readers_section(r: StudyResult) -> Section | None:
    rd = r.readers
    if rd is None:
        return None
    if rd.skipped:
        return "Readers", [f"<p><b>Skipped</b> — {esc(rd.skipped)}</p>"]
    names = [x.reader for x in next(iter(rd.sets.values())).readers]
    rows = []
    for i, name in enumerate([*names, "mean of readers"]):
        row = {"Reader": name.replace("reader_", "Reader ")}
        for s, rs in rd.sets.items():
            if i < len(names):
                x = rs.readers[i]
                row[f"{s} AUC [95% CI]"] = fmt_auc(x.roc)
                row[f"{s} sens / spec"] = f"{x.sensitivity:.3f} / {x.specificity:.3f}"
                row.update(delong_cells(x.delong_best_vs_reader, f"{s}: best − reader"))
            elif rs.mean_of_readers:
                row[f"{s} AUC [95% CI]"] = fmt_auc(rs.mean_of_readers.roc)
                row[f"{s} sens / spec"] = ""
                row.update(delong_cells(rs.mean_of_readers.delong_best_vs_mean, f"{s}: best − reader"))
        if len(row) > 1:
            rows.append(row)
    best = "; ".join(f"{esc(s)} AUC {fmt_auc(rs.best)}" for s, rs in rd.sets.items())
    return "Readers", [f"<p>The best model ({esc(rd.best_model)}: {best}) against each reader on each test set; 1–5 "
                       "scores are mapped to 0–1 for the mean; a reader calls a responder at probability ≥ 0.5 or "
                       "score ≥ 3 (the points on the ROC figure).</p>", table_html(pd.DataFrame(rows), left=("Reader",))]  # fmt: skip


def _methods_section(r: StudyResult) -> Section:
    rad, cfg = r.radiomics, r.config
    if not rad.extracted:
        return "Methods and provenance", [
            "<ul>"
            f"<li>{features_line(r)}</li>"
            f"<li>{sets_line(r)}</li>"
            f"<li>Seed {cfg.modeling.seed}; modelling options: <code>{esc(json.dumps(cfg.modeling.to_dict()))}</code></li>"
            f"<li>Versions: <code>{esc(json.dumps(r.provenance.versions))}</code></li>"
            "</ul><p class='small'>Statistics: AUC CIs and paired comparisons by DeLong's method (fast algorithm of "
            "Sun &amp; Xu), as pROC; net benefit TP/n − FP/n·pt/(1 − pt), as dcurves; odds ratios from statsmodels "
            "(maximum likelihood), or Firth's penalised likelihood where the training set is separated (checked against "
            "R's brglm2); kappas as in the cohort section. Machine-readable results: <code>results.json</code> (schema "
            f"version {r.schema_version}), <code>predictions.csv</code> (with each patient's set), "
            "<code>coefficients.csv</code>.</p>"]  # fmt: skip
    spacing_text = (
        "<b>native</b>: features were computed on each image's own grid (pre-SR "
        f"{esc(list(rad.lr_spacing_mm or ()))} mm, post-SR {esc(list(rad.sr_spacing_mm or ()))} mm). Texture matrices work at a distance of "
        "one voxel, so pre- and post-SR texture features describe different physical scales."
        if rad.spacing == "native"
        else f"<b>common</b>: both images were resampled (B-spline; masks nearest neighbour) to one isotropic grid of "
        f"{rad.common_spacing_mm:.3g} mm before extraction, so pre- and post-SR features describe the same physical scale."
    )
    return "Methods and provenance", [
        "<ul>"
        f"<li>Super-resolution: {esc(rad.sr_method)}, applied to each VOI's bounding box plus "
        f"{rad.margin_vox} LR voxels; weights sha256 <code>{esc(rad.weights_sha256 or 'n/a (no generator used)')}</code>.</li>"
        "<li>The VOI drawn on the LR image is carried to the SR grid by the affine rule (trilinear interpolation of "
        "the binary mask at the SR voxel centres, threshold 0.5), unless a re-delineated mask was given.</li>"
        f"<li>Spacing policy {spacing_text}</li>"
        f"<li>{sets_line(r)}</li>"
        f"<li>Seed {cfg.modeling.seed}; modelling options: <code>{esc(json.dumps(cfg.modeling.to_dict()))}</code></li>"
        f"<li>Radiomics options: <code>{esc(json.dumps(cfg.to_dict()['radiomics']))}</code></li>"
        f"<li>Versions: <code>{esc(json.dumps(r.provenance.versions))}</code></li>"
        "</ul><p class='small'>Statistics: AUC CIs and paired comparisons by DeLong's method (fast algorithm of "
        "Sun &amp; Xu), as pROC; net benefit TP/n − FP/n·pt/(1 − pt), as dcurves; odds ratios from statsmodels (maximum likelihood), or Firth's penalised likelihood where the training set is separated (checked against R's brglm2). "
        "Machine-readable results: <code>results.json</code> (schema version "
        f"{r.schema_version}), <code>predictions.csv</code> (with each patient's set), <code>coefficients.csv</code>, "
        "<code>features_pre.csv</code>, <code>features_post.csv</code>.</p>"]  # fmt: skip


#: The report's sections in order; their numbers follow from this list.
SECTIONS: tuple[Callable[[StudyResult], Section | None], ...] = (
    _cohort_section, _clinical_section, _radiomics_section, _discrimination_section, _panel_section,
    _comparators_section, _regions_section, _deep_section, _usefulness_section, _calibration_section,
    _images_section, _survival_section, _readers_section, _methods_section,
)  # fmt: skip
