"""The study's four models: the radscores (`srgan3d.study.radscore`), the clinical model and
clinical + post-SR radscore (RCR; `srgan3d.study.logistic`), fitted on the study's training set and
evaluated on every other set (internal test, external sets) and by bootstrap internal validation
(`srgan3d.study.resampling`); and the cohort's summary table.

The models that every set is scored with are fitted on the training rows only: `fit_models` is
only ever given those, and `tests/study/test_modeling.py` shuffles the test labels and checks that
every fitted coefficient stays the same. One step does see the internal test set on purpose:
Harrell's optimism bootstrap (`optimism_corrected_auc`) resamples and refits over the development
patients (train + internal test; external sets stay out), as the bootstrap internal validation it
is; its corrected AUC is reported beside, never instead of, the test-set AUCs. Imports neither
torch nor pyradiomics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats as sps

from srgan3d.serialisation import rows_of
from srgan3d.study import resampling, stats
from srgan3d.study.config import ModelingConfig
from srgan3d.study.logistic import Logistic
from srgan3d.study.radscore import Radscore
from srgan3d.study.resampling import bootstrap_optimism, resamples
from srgan3d.study.results import (
    MODEL_NAMES,
    RADSCORE_MODELS,
    TEST,
    TRAIN,
    DelongPair,
    FitNote,
    FittedSummary,
    OddsRatio,
    Optimism,
    PanelResult,
    RadscoreCoefficient,
    RadscoreSummary,
    SetMetrics,
    Split,
)

log = logging.getLogger(__name__)


def present_models(*, pre: bool, post: bool) -> tuple[str, ...]:
    """The study's models that the available features allow, in report order: the clinical model
    always; the pre-SR radscore with pre-SR features; the post-SR radscore and RCR with post-SR
    features."""
    have = {"radiomics_pre_sr": pre, "radiomics_post_sr": post, "clinical": True, "clinical_post_sr": post}
    return tuple(m for m in MODEL_NAMES if have[m])

#: How every model's operating threshold is chosen (the report's methods quote it).
THRESHOLD_RULE = (
    "the Youden point of the model's out-of-fold predictions on the training set ({folds}-fold stratified "
    "cross-validation, the whole pipeline refitted in each fold), then applied unchanged to every other set"
)


@dataclass
class FittedModels:
    """Everything fitted on the training rows."""

    radscore_pre: Radscore | None
    radscore_post: Radscore | None
    clinical_univariable: pd.DataFrame
    clinical: Logistic
    combined: Logistic | None
    univariable_notes: dict[str, FitNote] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The models fitted (`present_models`)."""
        return present_models(pre=self.radscore_pre is not None, post=self.radscore_post is not None)

    @property
    def radscores(self) -> dict[str, Radscore]:
        pairs = zip(RADSCORE_MODELS, (self.radscore_pre, self.radscore_post), strict=True)
        return {name: r for name, r in pairs if r is not None}

    @property
    def logistic_models(self) -> dict[str, Logistic]:
        return {"clinical": self.clinical, **({"clinical_post_sr": self.combined} if self.combined else {})}

    def predict(self, pre: pd.DataFrame | None, post: pd.DataFrame | None, clin: pd.DataFrame) -> pd.DataFrame:
        """Predicted probability of response of every fitted model for these rows."""
        clin = clin.copy()
        out = {}
        if self.radscore_pre is not None and pre is not None:
            out[RADSCORE_MODELS[0]] = self.radscore_pre.predict_proba(pre)
        if self.radscore_post is not None and post is not None:
            out[RADSCORE_MODELS[1]] = self.radscore_post.predict_proba(post)
            clin["radscore_post_sr"] = self.radscore_post.decision_function(post)
        out["clinical"] = self.clinical.predict_proba(clin)
        if self.combined is not None:
            out["clinical_post_sr"] = self.combined.predict_proba(clin)
        return pd.DataFrame({m: out[m] for m in self.names}, index=clin.index)

    def fit_notes(self) -> dict[str, FitNote]:
        """How each logistic model was fitted (separation found, method, remedy)."""
        notes = {name: m.fit_note() for name, m in self.logistic_models.items()}
        for v, note in self.univariable_notes.items():
            notes[f"univariable: {v}"] = note
        return notes

    def coefficients(self) -> pd.DataFrame:
        frames = []
        for name, model in self.radscores.items():
            frames.append(model.coefficients().rename(columns={"feature": "variable"}).assign(model=name))
        for name, lmodel in self.logistic_models.items():
            frames.append(lmodel.table_.assign(model=name))
        return pd.concat(frames, ignore_index=True)


def fit_models(
    pre: pd.DataFrame | None, post: pd.DataFrame | None, clin: pd.DataFrame, y: np.ndarray, config: ModelingConfig
) -> FittedModels:
    """Fit all models the features allow on the rows given, which must be training rows only
    (`pre`/`post` None: no features of that image, so no radscore of it, and without post-SR
    features no RCR)."""
    y = np.asarray(y, int)
    r_pre = Radscore(seed=config.seed, config=config).fit(pre, y) if pre is not None else None
    r_post = Radscore(seed=config.seed, config=config).fit(post, y) if post is not None else None
    univariable = {v: Logistic([v]).fit(clin, y) for v in config.clinical}
    uni = pd.concat([m.table_.iloc[1:] for m in univariable.values()], ignore_index=True)
    entered = [v for v, p in zip(uni["variable"], uni["p_value"], strict=True) if p < config.clinical_p_enter]
    clinical = Logistic(entered or list(config.clinical)).fit(clin, y)
    combined = None
    if r_post is not None and post is not None:
        clin2 = clin.copy()
        clin2["radscore_post_sr"] = r_post.decision_function(post)
        combined = Logistic([*clinical.variables, "radscore_post_sr"]).fit(clin2, y)
    return FittedModels(r_pre, r_post, uni, clinical, combined, {v: m.fit_note() for v, m in univariable.items()})


# --------------------------------------------------------------------------------------------
# The whole analysis


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return stats.roc_auc_ci(y, p).auc


def _rows(df: pd.DataFrame | None, rows: np.ndarray) -> pd.DataFrame | None:
    return None if df is None else df.iloc[rows]


def optimism_corrected_auc(
    pre: pd.DataFrame | None,
    post: pd.DataFrame | None,
    clin: pd.DataFrame,
    y: np.ndarray,
    config: ModelingConfig,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Harrell's bootstrap (`resampling.bootstrap_optimism`, the study models' seed stream): the
    apparent AUC of the whole pipeline fitted on these patients, minus the mean optimism, with
    selection and fitting redone on each stratified resample."""
    y = np.asarray(y, int)
    names = present_models(pre=pre is not None, post=post is not None)
    full = fit_models(pre, post, clin, y, config).predict(pre, post, clin)
    apparent = {m: _auc(y, full[m].to_numpy()) for m in names}
    draws = resamples(y, config.n_bootstrap, config.seed, "study bootstrap")
    refit = partial(_bootstrap_optimism, pre, post, clin, y, config)
    estimates = bootstrap_optimism(apparent, refit, draws, workers=config.workers, progress=progress)
    return pd.DataFrame([{"model": m, "apparent_auc": e.apparent_auc, "optimism": e.optimism,
                          "corrected_auc": e.corrected_auc, "n_bootstrap": e.n_bootstrap, "failed_fits": e.failed_fits}
                         for m, e in estimates.items()])  # fmt: skip


def out_of_fold(
    pre: pd.DataFrame | None, post: pd.DataFrame | None, clin: pd.DataFrame, y: np.ndarray, config: ModelingConfig
) -> pd.DataFrame:
    """Each (training) patient's probability from the whole pipeline (selection, LASSO, clinical
    and combined models) fitted on the other folds (`resampling.out_of_fold`): the predictions
    the operating thresholds and the training set's survival risk groups are chosen on, so that
    neither rewards a model for fitting its own patients."""
    y = np.asarray(y, int)
    names = present_models(pre=pre is not None, post=post is not None)

    def fit_predict(fit_rows: np.ndarray, held: np.ndarray) -> np.ndarray:
        fitted = fit_models(_rows(pre, fit_rows), _rows(post, fit_rows), clin.iloc[fit_rows], y[fit_rows], config)
        return fitted.predict(_rows(pre, held), _rows(post, held), clin.iloc[held])[list(names)].to_numpy()

    oof = resampling.out_of_fold(y, config.cv_folds, config.seed, fit_predict, columns=len(names), what="the study models")
    return pd.DataFrame(oof, index=clin.index, columns=list(names))


def set_metrics(
    y: np.ndarray, probs: pd.DataFrame, sets: dict[str, np.ndarray], thresholds: dict[str, float]
) -> dict[str, SetMetrics]:
    """Every model (a column of `probs`, one row per patient) on every set (row indices): AUC
    with DeLong CI, the operating point at its training threshold, calibration (10 groups on 100
    patients or more, else 5), DeLong for every pair, and decision curves."""
    y = np.asarray(y, int)
    models = list(probs.columns)
    grid = np.arange(0.01, 1.0, 0.01)
    out = {}
    for name, idx in sets.items():
        yy = y[idx]
        p = {m: probs[m].to_numpy(float)[idx] for m in models}
        delong = []
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                delong.append(DelongPair.of(a, b, stats.delong_test(yy, p[a], p[b])))
        dc = stats.decision_curve(yy, p, grid)
        out[name] = SetMetrics(
            name=name, n=len(idx), n_responders=int(yy.sum()),
            roc={m: stats.roc_auc_ci(yy, p[m]) for m in models},
            operating_points={m: stats.operating_point(yy, p[m], thresholds[m]) for m in models},
            calibration={m: stats.calibration(yy, p[m], n_bins=10 if len(idx) >= 100 else 5) for m in models},
            delong=tuple(delong),
            decision_curve={"threshold": [float(t) for t in dc.index], **{c: dc[c].tolist() for c in dc.columns}},
            decision_ranges={m: {k: [list(r) for r in v] for k, v in d.items()}
                             for m, d in stats.decision_ranges(dc, models).items()},
        )  # fmt: skip
    return out


def _bootstrap_optimism(
    pre: pd.DataFrame | None, post: pd.DataFrame | None, clin: pd.DataFrame, y: np.ndarray, config: ModelingConfig,
    b: np.ndarray,
) -> dict[str, float] | None:  # fmt: skip
    """One bootstrap resample `b`: every model refitted on it; its AUC there minus its AUC on the
    original patients (None when the fit fails)."""
    bp, bq, bc = _rows(pre, b), _rows(post, b), clin.iloc[b]
    try:
        fitted = fit_models(bp, bq, bc, y[b], config)
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.debug("bootstrap fit failed: %s", exc)
        return None
    on_boot = fitted.predict(bp, bq, bc)
    on_orig = fitted.predict(pre, post, clin)
    return {m: _auc(y[b], on_boot[m].to_numpy()) - _auc(y, on_orig[m].to_numpy()) for m in fitted.names}


@dataclass
class ModelingResult:
    """The study's four models fitted on the training set, with their predictions on every set.

    Attributes:
        predictions: index patient_id; columns ``set``, ``label`` and one per model.
        thresholds: each model's operating threshold: the Youden point of its out-of-fold
            predictions on the training set (`out_of_fold`), never of its in-sample fit.
        metrics: set -> the four models on it.
        optimism: Harrell's bootstrap over the development patients (train and test; external
            sets stay out), or None.
        oof, panel_oof: out-of-fold predictions of the training patients (NaN for the others), one
            column per model / panel classifier.
    """

    config: ModelingConfig
    split: Split
    fitted: FittedModels
    predictions: pd.DataFrame
    thresholds: dict[str, float]
    metrics: dict[str, SetMetrics]
    optimism: pd.DataFrame | None
    panel: PanelResult | None = None
    panel_predictions: pd.DataFrame | None = None
    oof: pd.DataFrame | None = None
    panel_oof: pd.DataFrame | None = None
    threshold_rule: str = ""

    def summary(self) -> FittedSummary:
        """What was fitted, as the result tree holds it."""
        radscores = {
            name: RadscoreSummary(
                formula=r.formula(), features=tuple(r.features_),
                coefficients=rows_of(RadscoreCoefficient, r.coefficients()),
                n_features_in=r.n_features_in_, n_variance_kept=r.n_variance_kept_,
                n_screen_passed=r.n_screen_passed_, n_after_redundancy=len(r.screened_), C=r.C_, fallback=r.fallback_,
            )
            for name, r in self.fitted.radscores.items()
        }  # fmt: skip
        return FittedSummary(
            radscore=radscores,
            clinical_univariable=rows_of(OddsRatio, self.fitted.clinical_univariable),
            clinical_multivariable=rows_of(OddsRatio, self.fitted.clinical.table_),
            combined_model=rows_of(OddsRatio, self.fitted.combined.table_) if self.fitted.combined is not None else (),
            optimism=None if self.optimism is None else rows_of(Optimism, self.optimism),
            fits=self.fitted.fit_notes(),
            threshold_rule=self.threshold_rule,
        )


def run_modeling(
    pre: pd.DataFrame | None,
    post: pd.DataFrame | None,
    clin: pd.DataFrame,
    y: Sequence[int] | np.ndarray,
    config: ModelingConfig,
    *,
    split: Split | None = None,
    progress: bool = False,
) -> ModelingResult:
    """Fit on the training set, evaluate on every set, and bootstrap the whole pipeline.

    Args:
        pre, post: features before and after SR, one row per patient (same index and order as
            `clin`); None when the study has no such features (that image's models are absent).
        clin: the clinical variables (numeric), same rows.
        y: 1 = objective response, 0 = none.
        split: the study's split over these patients; None = a drawn split from the config.
    """
    from srgan3d.study.cohort import make_split

    y = np.asarray(y, int)
    _check_inputs(pre, post, clin, config)
    ids = [str(i) for i in clin.index]
    if split is None:
        split = make_split(pd.DataFrame({"patient_id": ids, "label": y}), test_size=config.test_size, seed=config.seed)
    idx = split.indices(ids)
    train = idx[TRAIN]
    fitted = fit_models(_rows(pre, train), _rows(post, train), clin.iloc[train], y[train], config)
    pred = fitted.predict(pre, post, clin)
    names = fitted.names
    oof = pd.DataFrame(np.nan, index=clin.index, columns=list(names))
    oof.iloc[train] = out_of_fold(_rows(pre, train), _rows(post, train), clin.iloc[train], y[train], config).to_numpy()
    thresholds = {m: stats.held_out_threshold(y[train], oof[m].to_numpy()[train], pred[m].to_numpy()[train])
                  for m in names}  # fmt: skip
    metrics = set_metrics(y, pred, idx, thresholds)
    pred.insert(0, "label", y)
    pred.insert(0, "set", split.set_of(ids))
    development = np.sort(np.concatenate([idx[TRAIN], idx.get(TEST, np.array([], int))]))
    optimism = None
    if config.n_bootstrap > 0:
        d = development
        optimism = optimism_corrected_auc(_rows(pre, d), _rows(post, d), clin.iloc[d], y[d], config, progress=progress)
    panel, panel_pred, panel_oof = _panel(pre, post, y, idx, fitted, pred, development, config)
    return ModelingResult(
        config=config, split=split, fitted=fitted, predictions=pred, thresholds=thresholds, metrics=metrics,
        optimism=optimism, panel=panel, panel_predictions=panel_pred, oof=oof, panel_oof=panel_oof,
        threshold_rule=THRESHOLD_RULE.format(folds=len(stats.stratified_folds(y[train], config.cv_folds, config.seed))),
    )  # fmt: skip


def _check_inputs(pre: pd.DataFrame | None, post: pd.DataFrame | None, clin: pd.DataFrame, config: ModelingConfig) -> None:
    if any(f is not None and not f.index.equals(clin.index) for f in (pre, post)):
        raise ValueError("pre-SR, post-SR and clinical tables must list the same patients in the same order")
    missing = [c for c in config.clinical if c not in clin.columns]
    if missing:
        raise ValueError(f"clinical variable(s) {missing} not in the cohort table ({', '.join(clin.columns)})")


def _panel(
    pre: pd.DataFrame | None, post: pd.DataFrame | None, y: np.ndarray, idx: dict[str, np.ndarray],
    fitted: FittedModels, pred: pd.DataFrame, development: np.ndarray, config: ModelingConfig,
) -> tuple[PanelResult | None, pd.DataFrame | None, pd.DataFrame | None]:  # fmt: skip
    """The classifier panel on each image's selected features (both images needed), compared with
    the clinical model; (None, None, None) without it."""
    rp, rq = fitted.radscore_pre, fitted.radscore_post
    if not config.classifiers or pre is None or post is None or not rp or not rq:
        return None, None, None
    from srgan3d.study.panel import run_panel

    log.info("classifier panel: %s", ", ".join(config.classifiers))
    return run_panel(pre, post, y, idx, {"pre": list(rp.features_), "post": list(rq.features_)},
                     {"clinical": pred["clinical"].to_numpy()}, classifiers=config.classifiers, seed=config.seed,
                     cv_folds=config.cv_folds, n_bootstrap=config.panel_bootstrap, development=development,
                     workers=config.workers)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Cohort summary


def cohort_summary(table: pd.DataFrame, y: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """Clinical variables by response: median [IQR] and Mann-Whitney p for numbers; n (%) and
    Fisher's exact (2x2) or chi-square p for categories."""
    y = np.asarray(y, int)
    rows = []
    for c in columns:
        if c not in table.columns:
            continue
        col = table[c]
        given = ~col.astype(str).str.strip().isin(["", "nan", "NaN", "None"]) & col.notna()
        num = pd.to_numeric(col.where(given), errors="coerce")
        numeric = bool(given.any()) and bool(num[given].notna().all())
        is_binary_num = numeric and set(num[given].unique()) <= {0, 1}
        n_missing = int((~given).sum())
        if numeric and not is_binary_num:
            a, b = num[(y == 1) & given], num[(y == 0) & given]
            p = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue) if len(a) and len(b) else float("nan")

            def fmt(v: pd.Series) -> str:
                if not len(v):
                    return "none given"
                q1, q2, q3 = np.percentile(v, [25, 50, 75])
                return f"{q2:.1f} [{q1:.1f}-{q3:.1f}]"

            level = "median [IQR]" + (f"; {n_missing} not given" if n_missing else "")
            rows.append({"variable": c, "level": level, "responders": fmt(a), "non_responders": fmt(b),
                         "test": "Mann-Whitney U", "p_value": p})  # fmt: skip
            continue
        col = col.where(given, "not given")
        values = num.map({0: "no (0)", 1: "yes (1)"}).where(given, "not given") if is_binary_num else col.astype(str)
        ct = pd.crosstab(values, y).reindex(columns=[1, 0], fill_value=0)
        if ct.shape == (2, 2):
            p = float(sps.fisher_exact(ct.to_numpy()).pvalue)
            test = "Fisher exact"
        else:
            p = float(sps.chi2_contingency(ct.to_numpy()).pvalue)
            test = "chi-square"
        n1, n0 = int((y == 1).sum()), int((y == 0).sum())
        for i, level in enumerate(ct.index):
            rows.append(
                {
                    "variable": c,
                    "level": str(level),
                    "responders": f"{ct.loc[level, 1]} ({100 * ct.loc[level, 1] / n1:.0f}%)",
                    "non_responders": f"{ct.loc[level, 0]} ({100 * ct.loc[level, 0] / n0:.0f}%)",
                    "test": test if i == 0 else "",
                    "p_value": p if i == 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
