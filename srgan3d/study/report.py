"""The evaluation report: one self-contained HTML file (figures embedded as PNG data URIs, no
external resources), rendered from `results.json` alone so that `srgan3d report OUT` can redo it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.provenance import write_text_atomic
from srgan3d.study.modeling import MODEL_LABELS, MODEL_NAMES, RADSCORE_MODELS
from srgan3d.study.report_figures import (
    calibration_figure,
    dca_figure,
    examples_figure,
    extra_calibration,
    fmt_auc,
    fmt_p,
    km_figure,
    nomogram_figure,
    panel_roc_figure,
    roc_figure,
    stamp_for,
)

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td.l,th.l{text-align:left}.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.7em 1em;
border-radius:4px}.key{background:#eef5fb;border:1px solid #b8d4ea;padding:.7em 1em;border-radius:4px}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555;max-width:900px}img{max-width:100%}
code{background:#f5f5f5;padding:0 .2em}.small{font-size:.85em;color:#555}
"""


def _fig(uri: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'
    )


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _ci(v: float, lohi: list[float]) -> str:
    """A proportion with its interval: '0.812 [0.700-0.890]' (– when undefined)."""
    return f"{v:.3f} [{lohi[0]:.3f}-{lohi[1]:.3f}]" if np.isfinite(v) else "–"


def _num(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _esc(v)
    if not np.isfinite(f):
        return "–" if np.isnan(f) else ("∞" if f > 0 else "−∞")
    return f"{f:.{digits}f}"


def _table(df: pd.DataFrame, *, left: tuple[str, ...] = (), formats: dict[str, Any] | None = None) -> str:
    formats = formats or {}
    head = "".join(f'<th class="{"l" if c in left else ""}">{_esc(c)}</th>' for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            text = (
                _esc(formats[c](v))
                if c in formats
                else (_num(v) if isinstance(v, (float, np.floating)) else _esc(v))
            )
            cells.append(f'<td class="{"l" if c in left else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


# --------------------------------------------------------------------------------------------
# Figures


def _net_benefit_table(results: dict) -> pd.DataFrame:
    dc = pd.DataFrame(results["modeling"]["decision_curve"]).set_index("threshold")
    extra = results["modeling"].get("extra_models") or {}
    for key, e in extra.items():
        dc[key] = e["decision_curve"]["net_benefit"]
    rows = []
    for t in (0.2, 0.4, 0.6):
        i = int(np.argmin(np.abs(dc.index.to_numpy() - t)))
        r = dc.iloc[i]
        rows.append({"Threshold": f"{t:.1f}", **{MODEL_LABELS[m]: f"{r[m]:.3f}" for m in MODEL_NAMES},
                     **{e["label"]: f"{r[k]:.3f}" for k, e in extra.items()},
                     "Treat all": f"{r['treat_all']:.3f}", "Treat none": "0.000"})  # fmt: skip
    return pd.DataFrame(rows)


def _panel_section(results: dict) -> list[str]:
    from srgan3d.study.panel import CLASSIFIER_LABELS

    panel = results["modeling"].get("panel")
    if not panel:
        return []
    parts = ["<h2>4b. Classifier panel</h2>"]
    f = panel["features"]
    parts.append(
        "<p>Five classifiers on the features each image's radscore selected on the training set "
        f"(pre-SR: {', '.join(map(_esc, f.get('pre') or ['none']))}; post-SR: {', '.join(map(_esc, f.get('post') or ['none']))}), "
        f"standardised with training statistics. Hyperparameters by grid search with {panel['inner_cv_folds']}-fold "
        "stratified cross-validation on the training set only (ROC AUC); SVM probabilities Platt-calibrated on "
        "training folds. Thresholds: Youden on the training set. Optimism-corrected AUC: "
        f"{panel['n_bootstrap']} stratified bootstrap resamples of all patients, features and hyperparameters fixed "
        "as chosen (so it corrects the fitting, not the selection; the radscore rows above redo both).</p>"
    )
    if panel.get("best"):
        b = panel["best"]
        parts.append(f"<p><b>Best classifier: {_esc(CLASSIFIER_LABELS[b['classifier']])}, {b['image']}-SR features</b> "
                     f"(training cross-validated AUC {b['cv_auc']:.3f}): chosen by {_esc(b['rule'])}.</p>")  # fmt: skip
    rows = []
    for name, images in panel["models"].items():
        for image, m in images.items():
            op = m["operating_point"]
            t = m["test"]


            rows.append({"Classifier": CLASSIFIER_LABELS[name], "Image": f"{image}-SR",
                         "Train CV AUC": _num(m["cv_auc"]), "Train AUC": _num(m["train_auc"]),
                         "Corrected AUC": _num(m.get("corrected_auc", float("nan"))),
                         "Test AUC [95% CI]": fmt_auc(t),
                         "Accuracy": _ci(op["accuracy"], op["accuracy_ci"]),
                         "Sensitivity": _ci(op["sensitivity"], op["sensitivity_ci"]),
                         "Specificity": _ci(op["specificity"], op["specificity_ci"]),
                         "Threshold": f"{m['threshold']:.3f}",
                         "Hyperparameters": ", ".join(f"{k}={v}" for k, v in m["params"].items())
                         + ("; " + "; ".join(m["warnings"]) if m["warnings"] else "")})  # fmt: skip
    parts.append(_table(pd.DataFrame(rows), left=("Classifier", "Image", "Hyperparameters")))
    fig = panel_roc_figure(results)
    if fig:
        parts.append(_fig(fig, "Test-set ROC of each classifier on the pre-SR (left) and post-SR (right) features, "
                          "with the clinical model."))  # fmt: skip
    drows = [{"Classifier": CLASSIFIER_LABELS[d["classifier"]], "A": f"{d['a']}-SR" if d["a"] in ("pre", "post") else d["a"],
              "B": f"{d['b']}-SR" if d["b"] in ("pre", "post") else MODEL_LABELS.get(d["b"], d["b"]),
              "AUC A": f"{d['auc_a']:.3f}", "AUC B": f"{d['auc_b']:.3f}",
              "A − B [95% CI]": f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
              "p": fmt_p(d["p_value"])} for d in panel["delong"]]  # fmt: skip
    if drows:
        parts.append("<b>DeLong tests of the panel, test set</b>" + _table(pd.DataFrame(drows), left=("Classifier", "A", "B")))
    if panel.get("skipped"):
        parts.append("<p class='small'><b>Skipped:</b> " + "; ".join(f"{_esc(k)}: {_esc(v)}" for k, v in panel["skipped"].items()) + "</p>")
    return parts


def _regions_section(results: dict) -> list[str]:
    regions = results["modeling"].get("regions")
    if not regions:
        return []
    rows = []
    for r in regions:
        if "error" in r:
            rows.append({"Region": r["region"], "Features": r["n_features"], "Pre-SR test AUC [95% CI]": "skipped",
                         "Post-SR test AUC [95% CI]": _esc(r["error"]), "Post − pre": "", "DeLong p": ""})  # fmt: skip
            continue
        d = r["delong_post_vs_pre"]
        rows.append({"Region": r["region"], "Features": r["n_features"],
                     "Selected pre / post": f"{len(r['pre']['features'])} / {len(r['post']['features'])}",
                     "Pre-SR test AUC [95% CI]": fmt_auc(r["pre"]["test"]), "Post-SR test AUC [95% CI]": fmt_auc(r["post"]["test"]),
                     "Post − pre": f"{d['difference']:+.3f}", "DeLong p": fmt_p(d["p_value"])})  # fmt: skip
    rad = results["config"]["radiomics"]
    return ["<h2>4d. Peritumoral regions</h2><p>Rings of "
            + ", ".join(f"{w:g}" for w in rad.get("peritumoral", []))
            + " mm around the tumour (tumour excluded), made by a distance transform in millimetres on each image's "
            "own grid and clipped to the liver mask where the table gives one; features per region; a radscore per "
            "region and image fitted on the training set as above.</p>", _table(pd.DataFrame(rows), left=("Region",))]


def _survival_section(results: dict) -> list[str]:
    sv = results.get("survival")
    if not sv:
        return []
    parts = ["<h2>9. Survival</h2><p>Risk groups: the best response model's prediction (probability of response at "
             "or above its training-set Youden threshold) for every patient; Kaplan–Meier curves with 95% CIs and "
             "the log-rank test; Cox proportional hazards (Efron ties, as R's coxph; lifelines) of the risk group and "
             "the clinical candidates; Harrell's C of the model (bootstrap 95% CI).</p>"]
    for endpoint, r in sv.items():
        if "skipped" in r:
            parts.append(f"<p><b>{_esc(endpoint)}: skipped</b> — {_esc(r['skipped'])}</p>")
            continue
        parts.append(_fig(km_figure(results, endpoint), f"{_esc(endpoint)}: Kaplan–Meier curves of the risk groups of "
                          f"{_esc(r['best_model'])}."))  # fmt: skip
        rows = [{"Covariate": c["covariate"], "HR [95% CI]": f"{_num(c['hr'])} [{_num(c['hr_low'])}-{_num(c['hr_high'])}]",
                 "coef": _num(c["coef"], 4), "SE": _num(c["se"], 4), "z": _num(c["z"], 2), "p": fmt_p(c["p"])}
                for c in r["cox"]]  # fmt: skip
        a = r["cox_attrs"]
        ci = r["c_index"]
        parts.append(f"<b>Cox model, {_esc(endpoint)}</b> (n = {a['n']}, {a['events']} events; likelihood-ratio test "
                     f"χ² {a['log_likelihood_ratio_test']['statistic']:.2f} on {a['log_likelihood_ratio_test']['df']} df, "
                     f"p = {fmt_p(a['log_likelihood_ratio_test']['p'])}; Harrell's C of the response model "
                     f"{ci['c_index']:.3f} [{ci['ci_low']:.3f}-{ci['ci_high']:.3f}])"
                     + _table(pd.DataFrame(rows), left=("Covariate",)))  # fmt: skip
    return parts


def _deep_section(results: dict) -> list[str]:
    dl = results.get("deep")
    if not dl:
        return []
    if "skipped" in dl:
        return [f"<h2>4e. Deep-learning models</h2><p><b>Skipped</b> — {_esc(dl['skipped'])}</p>"]
    c = dl["config"]
    rows = []
    for image, m in dl["models"].items():
        t = m["test"]
        rows.append({"Model": f"{c['arch']}{' dual-branch (' + c['dual'] + ')' if c['dual'] else ''}, {image}-SR",
                     "Train AUC": _num(m["train_auc"]), "Test AUC [95% CI]": fmt_auc(t),
                     "Epochs": m["epochs"], "Inner val loss": _num(m["best_val_loss"])})  # fmt: skip
    if "dlrcr" in dl:
        t = dl["dlrcr"]["test"]
        rows.append({"Model": "DLRCR: deep score (post-SR) + post-SR radscore + CR", "Train AUC": "",
                     "Test AUC [95% CI]": fmt_auc(t), "Epochs": "",
                     "Inner val loss": ""})  # fmt: skip
    parts = [f"<h2>4e. Deep-learning models</h2><p>MONAI 3D {_esc(c['arch'])} (width ×{c['widen_factor']:g}) on a "
             f"{c['crop_mm']:g} mm cube around the tumour centroid resampled to {c['crop_vox']}³ voxels, trained on the "
             f"training patients (an inner {c['val_fraction']:.0%} stops it early; class-weighted; flips, ±10° in-plane "
             f"rotations and intensity jitter; seed {c['seed']}), before and after SR separately.</p>",
             _table(pd.DataFrame(rows), left=("Model",))]  # fmt: skip
    if "delong_post_vs_pre" in dl:
        d = dl["delong_post_vs_pre"]
        parts.append(f"<p>Deep model, post- vs pre-SR (test set): ΔAUC {d['difference']:+.3f} "
                     f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], DeLong p = {fmt_p(d['p_value'])}."
                     + (f" DLRCR vs RCR: ΔAUC {dl['dlrcr']['delong_vs_rcr']['difference']:+.3f}, p = "
                        f"{fmt_p(dl['dlrcr']['delong_vs_rcr']['p_value'])}." if "dlrcr" in dl else "") + "</p>")  # fmt: skip
    return parts


def _readers_section(results: dict) -> list[str]:
    rd = results.get("readers")
    if not rd:
        return []
    if "skipped" in rd:
        return [f"<h2>10. Readers</h2><p><b>Skipped</b> — {_esc(rd['skipped'])}</p>"]
    rows = [{"Reader": r["reader"], "Scale": r["scale"],
             "Test AUC [95% CI]": fmt_auc(r["test"]),
             "Sensitivity": f"{r['sensitivity']:.3f}", "Specificity": f"{r['specificity']:.3f}",
             "Best − reader": f"{r['delong_best_vs_reader']['difference']:+.3f}",
             "DeLong p": fmt_p(r["delong_best_vs_reader"]["p_value"])} for r in rd["readers"]]  # fmt: skip
    if rd.get("mean_of_readers"):
        m = rd["mean_of_readers"]
        rows.append({"Reader": "mean of readers", "Scale": "0-1", "Test AUC [95% CI]":
                     f"{fmt_auc(m['test'])}",
                     "Sensitivity": "", "Specificity": "", "Best − reader": f"{m['delong_best_vs_mean']['difference']:+.3f}",
                     "DeLong p": fmt_p(m["delong_best_vs_mean"]["p_value"])})  # fmt: skip
    b = rd["best_test"]
    return [f"<h2>10. Readers</h2><p>The best model ({_esc(rd['best_model'])}, test AUC {b['auc']:.3f} "
            f"[{b['ci_low']:.3f}-{b['ci_high']:.3f}]) against each reader on the test set; 1–5 scores are mapped to "
            "0–1 for the mean; a reader calls a responder at probability ≥ 0.5 or score ≥ 3 (the points on the test-set "
            "ROC figure).</p>", _table(pd.DataFrame(rows), left=("Reader", "Scale"))]  # fmt: skip


def _comparators_section(results: dict) -> list[str]:
    comp = results["modeling"].get("comparators") or []
    if not comp:
        return []
    rows = [{"Comparator": c["comparator"], "Direction (from training set)": c["direction"],
             "Test AUC [95% CI]": fmt_auc(c["test"]),
             "Best model": c["best_model"], "Best − comparator": f"{c['delong_vs_best']['difference']:+.3f}",
             "DeLong p": fmt_p(c["delong_vs_best"]["p_value"])} for c in comp]  # fmt: skip
    return ["<h2>4c. Staging systems</h2><p>Each ordinal staging column as a score of its own, against the study's "
            "best model (the panel's pick, else the post-SR radscore) on the test set.</p>",
            _table(pd.DataFrame(rows), left=("Comparator", "Direction (from training set)", "Best model"))]  # fmt: skip


# --------------------------------------------------------------------------------------------
# HTML


def _performance_table(results: dict) -> pd.DataFrame:
    mod = results["modeling"]
    opt = {r["model"]: r for r in (mod.get("optimism") or [])}
    rows = []
    for m in MODEL_NAMES:
        for name in ("train", "test"):
            r = mod["roc"][name][m]
            op = mod["operating_points"][name][m]
            cal = mod["calibration"][name][m]


            rows.append(
                {
                    "Model": MODEL_LABELS[m],
                    "Set": name,
                    "AUC [95% CI]": fmt_auc(r),
                    "Accuracy": _ci(op["accuracy"], op["accuracy_ci"]),
                    "Sensitivity": _ci(op["sensitivity"], op["sensitivity_ci"]),
                    "Specificity": _ci(op["specificity"], op["specificity_ci"]),
                    "Youden threshold†": f"{op['threshold']:.3f}",
                    "Brier": f"{cal['brier']:.3f}",
                    "Corrected AUC*": (
                        f"{opt[m]['corrected_auc']:.3f}" if name == "train" and m in opt else ""
                    ),
                }
            )
    return pd.DataFrame(rows)


def _delong_table(results: dict, name: str) -> pd.DataFrame:
    rows = []
    for d in results["modeling"]["delong"][name]:
        rows.append(
            {
                "Model A": MODEL_LABELS[d["model_a"]],
                "Model B": MODEL_LABELS[d["model_b"]],
                "AUC A": f"{d['auc_a']:.3f}",
                "AUC B": f"{d['auc_b']:.3f}",
                "A − B [95% CI]": f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                "Z": _num(d["z"], 2),
                "p": fmt_p(d["p_value"]),  # escaped by _table
            }
        )
    return pd.DataFrame(rows)


def _or_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df = df[df["variable"] != "const"]
    return pd.DataFrame(
        {
            "Variable": df["variable"],
            "OR [95% CI]": [
                f"{_num(o)} [{_num(lo)}-{_num(hi)}]"
                for o, lo, hi in zip(df["odds_ratio"], df["or_ci_low"], df["or_ci_high"], strict=True)
            ],
            "p": [fmt_p(p) for p in df["p_value"]],  # escaped by _table
        }
    )


def render_html(results: dict) -> str:
    """The whole report as one HTML string; everything comes from `results`."""
    import matplotlib

    matplotlib.use("Agg")
    mod = results["modeling"]
    cfg = results["config"]
    cohort = results["cohort"]
    rad = results["radiomics"]
    parts: list[str] = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                        f"<title>srgan3d evaluation: {_esc(cohort['name'])}</title><style>{CSS}</style></head><body>"]  # fmt: skip
    parts.append("<h1>Does super-resolution improve the radiomics prediction of response?</h1>")
    parts.append(
        f"<p class='small'>srgan3d {_esc(results['provenance']['versions'].get('srgan3d', ''))} · cohort "
        f"<code>{_esc(cohort['path'])}</code> · {_esc(results['created'])}</p>"
    )
    if cohort.get("simulated"):
        parts.append(
            "<p class='banner'><b>Simulated data.</b> This cohort is srgan3d's built-in synthetic cohort: the "
            "images are phantoms and the responses were <b>simulated</b> from a documented logistic model "
            "(tumour diameter, arterial enhancement and fine tumour texture carry the signal). No figure in this "
            "report says anything about real patients.</p>"
        )
    # Key findings
    t = mod["roc"]["test"]
    d = {(x["model_a"], x["model_b"]): x for x in mod["delong"]["test"]}[RADSCORE_MODELS]
    opt = {r["model"]: r for r in (mod.get("optimism") or [])}
    sr_note = rad["sr_method"]
    if "generator" not in sr_note:
        sr_note += " (zero-filled k-space interpolation: no generator weights were used, so SR adds no new information)"
    key = [
        f"Super-resolution of each tumour: {_esc(sr_note)}; features on the {rad['spacing']} grids.",
        f"{len(mod['train_ids'])} training and {len(mod['test_ids'])} test patients "
        f"(stratified {1 - cfg['modeling']['test_size']:.0%}:{cfg['modeling']['test_size']:.0%} split, seed {cfg['modeling']['seed']}).",
    ]
    for m in MODEL_NAMES:
        line = f"{MODEL_LABELS[m]}: test AUC {fmt_auc(t[m])}"
        if m in opt:
            line += f"; optimism-corrected AUC {opt[m]['corrected_auc']:.3f} (bootstrap, all patients)"
        key.append(line + ".")
    key.append(
        f"Post- vs pre-SR radiomics on the test set: ΔAUC {-d['difference']:+.3f}, DeLong p = {_esc(fmt_p(d['p_value']))}. "
        f"With {len(mod['test_ids'])} test patients the intervals are wide; read the optimism-corrected AUCs beside them."
    )
    parts.append(
        "<div class='key'><b>Key results</b><ul>" + "".join(f"<li>{k}</li>" for k in key) + "</ul></div>"
    )

    parts.append("<h2>1. Cohort</h2>")
    parts.append(
        f"<p>{cohort['n_patients']} patients, {cohort['n_responders']} responders (mRECIST CR + PR) and "
        f"{cohort['n_patients'] - cohort['n_responders']} non-responders (SD + PD)."
        + (
            f" Left out after failed feature extraction: {', '.join(map(_esc, cohort['failed']))}."
            if cohort.get("failed")
            else ""
        )
        + "</p>"
    )
    summ = pd.DataFrame(results["cohort_summary"])
    if len(summ):
        summ = summ.rename(columns={"variable": "Variable", "level": "", "responders": "Responders",
                                    "non_responders": "Non-responders", "test": "Test", "p_value": "p"})  # fmt: skip
        parts.append(_table(summ, left=("Variable", "", "Test"), formats={"p": fmt_p}))

    candidates = list(cfg["modeling"]["clinical"])
    entered = [r["variable"] for r in mod["clinical_multivariable"] if r["variable"] != "const"]
    others = sorted({r["variable"] for r in results.get("cohort_summary", [])} - set(candidates))
    parts.append(
        "<h2>2. Clinical model</h2><p>Candidates considered: <b>"
        + ", ".join(map(_esc, candidates))
        + "</b> (the <code>clinical</code> modelling option; default: the study's tumour diameter and arterial "
        "enhancement)."
        + (f" Other clinical columns of the cohort table, summarised in section 1 but <b>not</b> candidates: "
           f"{', '.join(map(_esc, others))}." if others else "")
        + f" Univariable logistic regression of each candidate on the training set; those with p &lt; "
        f"{cfg['modeling']['clinical_p_enter']} enter the multivariable model (all candidates if none does). "
        f"Entered: <b>{', '.join(map(_esc, entered))}</b>. Odds ratios per unit of each variable (per mm of "
        "diameter; enhancement yes vs no).</p>"
    )  # fmt: skip
    parts.append("<b>Univariable</b>" + _table(_or_table(mod["clinical_univariable"]), left=("Variable",)))
    parts.append(
        "<b>Multivariable</b>" + _table(_or_table(mod["clinical_multivariable"]), left=("Variable",))
    )
    parts.append(
        "<b>RCR: clinical-radiological + post-SR radscore</b>" + _table(_or_table(mod["combined_model"]), left=("Variable",))
    )

    parts.append("<h2>3. Radiomics signatures</h2>")
    parts.append(
        f"<p>{rad['n_features']} pyradiomics features per image (parameter file <code>{_esc(Path(rad['params']).name)}</code>). "
        "On the training set only: features that are constant or not finite are dropped; Mann–Whitney U screening "
        f"(p &lt; {cfg['modeling']['screen_p']}, at least {cfg['modeling']['min_screened']} and at most "
        f"{cfg['modeling']['max_screened']} features); of two features with |Spearman ρ| &gt; {cfg['modeling']['max_abs_spearman']} "
        f"the less significant is dropped; LASSO-logistic regression with {cfg['modeling']['cv_folds']}-fold "
        "cross-validated penalty (ROC AUC) gives the radscore, the model's log-odds; z(x) = (x − training mean) / training SD.</p>"
    )
    for name in RADSCORE_MODELS:
        r = mod["radscore"][name]
        parts.append(
            f"<p><b>{MODEL_LABELS[name]}</b>: {r['n_features_in']} features extracted; {r['n_variance_kept']} of them "
            f"finite and not constant; {r['n_screen_passed']} pass the Mann–Whitney screen (p &lt; {cfg['modeling']['screen_p']}); "
            f"{r['n_after_redundancy']} remain after the redundancy filter; LASSO keeps <b>{len(r['features'])}</b> (C = {r['C']:.3g}"
            + (
                "; the cross-validated optimum selected none, so the strongest penalty keeping one feature was used"
                if r["fallback"]
                else ""
            )
            + f").<br><code>{_esc(r['formula'])}</code></p>"
        )

    parts.append("<h2>4. Discrimination</h2>")
    parts.append(_fig(roc_figure(results), "ROC curves of the four models on the training and test sets; legend: AUC "
                      "[95% CI] by DeLong's method."))  # fmt: skip
    parts.append(
        "<p>Accuracy, sensitivity and specificity at the Youden threshold chosen on the training set and carried "
        "unchanged to the test set, with Wilson 95% CIs. The optimism-corrected AUC (Harrell's bootstrap, "
        f"{cfg['modeling']['n_bootstrap']} resamples, selection and fitting redone in each) uses all patients.</p>"
    )
    parts.append(_table(_performance_table(results), left=("Model", "Set")))
    parts.append(
        "<p class='small'>* Optimism-corrected AUC of the whole selection-and-fitting pipeline, "
        "bootstrap over all patients; it does not depend on the one split. † Predicted probability of response "
        "at or above which a patient is called a responder: Youden's J maximised on the training set, the same "
        "value on both rows of a model.</p>"
    )
    parts.append(
        "<b>DeLong tests, test set</b>" + _table(_delong_table(results, "test"), left=("Model A", "Model B"))
    )
    parts.append(
        "<b>DeLong tests, training set</b>"
        + _table(_delong_table(results, "train"), left=("Model A", "Model B"))
    )

    parts += _panel_section(results)
    parts += _comparators_section(results)
    parts += _regions_section(results)
    parts += _deep_section(results)
    parts.append("<h2>5. Clinical usefulness</h2>")
    parts.append(_fig(dca_figure(results), "Net benefit on the test set of treating (here: predicting response for) the "
                      "patients whose predicted probability is at or above each threshold."))  # fmt: skip
    parts.append("<b>Net benefit at three threshold probabilities, test set</b>"
                 + _table(_net_benefit_table(results), left=("Threshold",)))
    nomo = nomogram_figure(results)
    if nomo:
        parts.append(_fig(nomo, "Nomogram of the combined logistic model (clinical-radiological variables + post-SR "
                          "radscore, RCR), fitted on the training set: read each predictor's points, add them, and "
                          "read the probability of response below the total."))  # fmt: skip
    parts.append("<h2>6. Calibration</h2>")
    parts.append(_fig(calibration_figure(results), "Observed fraction of responders against mean predicted probability "
                      "in groups of equal size (10 on the training set, 5 on the test set)."))  # fmt: skip
    crow = []
    for name in ("train", "test"):
        for m in MODEL_NAMES:
            c = mod["calibration"][name][m]
            crow.append({"Model": MODEL_LABELS[m], "Set": name, "Brier": _num(c["brier"]),
                         "Slope": _num(c["slope"], 2), "Intercept": _num(c["intercept"], 2),
                         "Hosmer–Lemeshow χ² (df)": f"{_num(c['hl_statistic'], 2)} ({c['hl_df']})",
                         "HL p": fmt_p(c["hl_p_value"])})  # fmt: skip
    for name in ("train", "test"):
        for label, _, c in extra_calibration(results, name):
            crow.append({"Model": label, "Set": name, "Brier": _num(c["brier"]), "Slope": _num(c["slope"], 2),
                         "Intercept": _num(c["intercept"], 2),
                         "Hosmer–Lemeshow χ² (df)": f"{_num(c['hl_statistic'], 2)} ({c['hl_df']})",
                         "HL p": fmt_p(c["hl_p_value"])})  # fmt: skip
    parts.append(_table(pd.DataFrame(crow), left=("Model", "Set")))
    parts.append("<p class='small'>Slope: logistic recalibration slope (1 ideal, &lt; 1 predictions too extreme; "
                 "– when the predictions separate the classes perfectly). Intercept: calibration-in-the-large.</p>")  # fmt: skip

    parts.append("<h2>7. Images</h2>")
    quality = results.get("sr_quality")
    if quality:
        qdf = pd.DataFrame(quality["results"])
        qdf = pd.DataFrame({"Method": qdf["method"], "PSNR dB (body)": qdf["psnr_db"].map(lambda v: f"{v:.2f}"),
                            "SSIM (body)": qdf["ssim"].map(lambda v: f"{v:.4f}"),
                            "PSNR dB (tumour)": qdf["psnr_tumour_db"].map(lambda v: f"{v:.2f}")})  # fmt: skip
        parts.append(
            "<b>Super-resolution quality against a known truth</b><p>One synthetic phantom "
            f"({_esc('x'.join(map(str, quality['hr_shape'])))} voxels), degraded 2x by k-space truncation and "
            "upscaled by each method, scored against its true high resolution. "
            + ("<b>Simulated:</b> a phantom proves the plumbing, not the quality on patients; "
               "see the weights' model card for held-out real MRI. " if stamp_for(results) else "")
            + "</p>" + _table(qdf, left=("Method",))
        )  # fmt: skip
    ex = examples_figure(results)
    if ex:
        parts.append(_fig(ex, "Axial slice through the centre of the tumour VOI (yellow outline) before and after "
                          f"super-resolution ({_esc(rad['sr_method'])}); the same physical field of view."))  # fmt: skip
    later = _survival_section(results) + _readers_section(results)
    parts.append("<h2>8. Methods and provenance</h2>")
    spacing_text = (
        "<b>native</b>: features were computed on each image's own grid (pre-SR "
        f"{_esc(rad['lr_spacing_mm'])} mm, post-SR {_esc(rad['sr_spacing_mm'])} mm). Texture matrices work at a distance of "
        "one voxel, so pre- and post-SR texture features describe different physical scales."
        if rad["spacing"] == "native"
        else f"<b>common</b>: both images were resampled (B-spline; masks nearest neighbour) to one isotropic grid of "
        f"{rad['common_spacing_mm']:.3g} mm before extraction, so pre- and post-SR features describe the same physical scale."
    )
    parts.append(
        "<ul>"
        f"<li>Super-resolution: {_esc(rad['sr_method'])} 2x, applied to each VOI's bounding box plus "
        f"{rad['margin_vox']} LR voxels; weights sha256 <code>{_esc(rad.get('weights_sha256') or 'n/a (no generator used)')}</code>.</li>"
        "<li>The VOI drawn on the LR image is carried to the SR grid by the affine rule (trilinear interpolation of "
        "the binary mask at the SR voxel centres, threshold 0.5), unless a re-delineated mask was given.</li>"
        f"<li>Spacing policy {spacing_text}</li>"
        f"<li>Seed {cfg['modeling']['seed']}; modelling options: <code>{_esc(json.dumps(cfg['modeling']))}</code></li>"
        f"<li>Radiomics options: <code>{_esc(json.dumps(cfg['radiomics']))}</code></li>"
        f"<li>Versions: <code>{_esc(json.dumps(results['provenance']['versions']))}</code></li>"
        "</ul><p class='small'>Statistics: AUC CIs and paired comparisons by DeLong's method (fast algorithm of "
        "Sun &amp; Xu), as pROC; net benefit TP/n − FP/n·pt/(1 − pt), as dcurves; odds ratios from statsmodels. "
        "Machine-readable results: <code>results.json</code>, <code>predictions.csv</code>, "
        "<code>coefficients.csv</code>, <code>features_pre.csv</code>, <code>features_post.csv</code>.</p>"
    )
    parts += later
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(outdir: str | Path) -> Path:
    """Render `outdir/report.html` from `outdir/results.json` (atomically)."""
    outdir = Path(outdir)
    src = outdir / "results.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found; run `srgan3d evaluate COHORT.csv -o {outdir}` first")
    results = json.loads(src.read_text())
    return write_text_atomic(outdir / "report.html", render_html(results))
