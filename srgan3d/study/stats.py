"""Statistics for the response models: ROC/AUC with DeLong intervals and paired tests, decision
curves, calibration and operating points.

Everything here takes plain arrays; it imports neither torch nor pyradiomics. The conventions
follow the reference tools the tests compare with: pROC (R) for AUC, DeLong variance and
`roc.test(method="delong")`; dcurves for net benefit; statsmodels for the recalibration fits and
Wilson intervals. A higher score always means "more likely positive" (pROC's `direction = "<"`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from srgan3d.serialisation import Record

log = logging.getLogger(__name__)

__all__ = [
    "RocResult",
    "DelongResult",
    "CalibrationResult",
    "OperatingPoint",
    "roc_auc_ci",
    "delong_test",
    "roc_points",
    "net_benefit",
    "decision_curve",
    "decision_ranges",
    "round_ticks",
    "calibration",
    "wilson_ci",
    "youden_threshold",
    "stratified_folds",
    "held_out_threshold",
    "operating_point",
]


def _binary(y_true: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, not of shape {y.shape}")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"y_true must hold only 0 and 1, found {sorted(values)[:5]}")
    y = y.astype(int)
    if y.min() == y.max():
        raise ValueError("y_true holds one class only; ROC analysis needs positives and negatives")
    return y


def _scores(y: np.ndarray, score: Sequence[float] | np.ndarray, name: str = "y_score") -> np.ndarray:
    s = np.asarray(score, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"{name} has shape {s.shape}; y_true has {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(
            f"{name} holds NaN or infinite values at positions {np.flatnonzero(~np.isfinite(s))[:5]}"
        )
    return s


def _midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank."""
    return sps.rankdata(x, method="average")


def _delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast DeLong (Sun & Xu 2014) for k score rows at once.

    Args:
        y: (n,) labels 0/1.
        scores: (k, n) scores.

    Returns:
        aucs (k,), v10 (k, m) structural components of the m positives, v01 (k, n0) of the
        n0 negatives.
    """
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    tx = np.empty((k, m))
    ty = np.empty((k, n))
    tz = np.empty((k, m + n))
    for r in range(k):
        tx[r] = _midrank(pos[r])
        ty[r] = _midrank(neg[r])
        tz[r] = _midrank(np.concatenate([pos[r], neg[r]]))
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def _delong_cov(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return s10 / m + s01 / n


@dataclass(frozen=True)
class RocResult(Record):
    """AUC with its DeLong variance and Wald interval (clipped to [0, 1], as pROC)."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    level: float
    n_positive: int
    n_negative: int

    def __str__(self) -> str:
        return f"{self.auc:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def roc_auc_ci(
    y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray, *, level: float = 0.95
) -> RocResult:
    """Area under the ROC curve with a DeLong confidence interval.

    Args:
        y_true: array-like of shape (n_samples,), 1 = positive (responder), 0 = negative.
        y_score: array-like of shape (n_samples,); higher means more likely positive.
        level: confidence level of the interval.

    Reproduces pROC: ``ci.auc(roc(outcome, marker, direction = "<"), method = "delong")``.
    """
    y = _binary(y_true)
    s = _scores(y, y_score)
    aucs, v10, v01 = _delong_components(y, s[None, :])
    var = float(_delong_cov(v10, v01)[0, 0])
    z = sps.norm.ppf(0.5 + level / 2)
    auc = float(aucs[0])
    half = z * np.sqrt(max(var, 0.0))
    return RocResult(
        auc=auc,
        variance=var,
        ci_low=float(max(0.0, auc - half)),
        ci_high=float(min(1.0, auc + half)),
        level=level,
        n_positive=int(y.sum()),
        n_negative=int((1 - y).sum()),
    )


@dataclass(frozen=True)
class DelongResult(Record):
    """Paired DeLong comparison of two AUCs on the same patients."""

    auc_a: float
    auc_b: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    level: float


def delong_test(
    y_true: Sequence[int] | np.ndarray,
    score_a: Sequence[float] | np.ndarray,
    score_b: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
) -> DelongResult:
    """Two-sided DeLong test of AUC(a) = AUC(b) for two scores of the same patients.

    Args:
        y_true: array-like of shape (n_samples,), 0/1.
        score_a, score_b: array-likes of shape (n_samples,).
        level: confidence level of the interval of auc_a - auc_b.

    Reproduces pROC: ``roc.test(roc(outcome, a), roc(outcome, b), method = "delong", paired = TRUE)``.
    Identical scores give z = 0 and p = 1.
    """
    y = _binary(y_true)
    a = _scores(y, score_a, "score_a")
    b = _scores(y, score_b, "score_b")
    aucs, v10, v01 = _delong_components(y, np.vstack([a, b]))
    cov = _delong_cov(v10, v01)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    zq = sps.norm.ppf(0.5 + level / 2)
    if var <= 1e-15 * max(1.0, float(cov[0, 0])):
        z, p, half = 0.0, 1.0, 0.0
        if abs(diff) > 1e-12:  # different AUCs with no variance: a degenerate, perfectly separated case
            z, p = float(np.sign(diff) * np.inf), 0.0
    else:
        sd = np.sqrt(var)
        z = diff / sd
        p = float(2 * sps.norm.sf(abs(z)))
        half = zq * sd
    return DelongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=diff,
        z=float(z),
        p_value=p,
        ci_low=diff - half,
        ci_high=diff + half,
        level=level,
    )


def roc_points(y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """The empirical ROC curve: one row per distinct threshold (score >= threshold is positive),
    with columns ``threshold``, ``fpr``, ``tpr``, from (0, 0) to (1, 1)."""
    y = _binary(y_true)
    s = _scores(y, y_score)
    thr = np.unique(s)[::-1]
    tpr = [(s[y == 1] >= t).mean() for t in thr]
    fpr = [(s[y == 0] >= t).mean() for t in thr]
    return pd.DataFrame({"threshold": np.r_[np.inf, thr], "fpr": np.r_[0.0, fpr], "tpr": np.r_[0.0, tpr]})


# --------------------------------------------------------------------------------------------
# Decision curves


def _thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if np.any((t < 0) | (t >= 1)):
        raise ValueError(f"thresholds must lie in [0, 1), got {t[(t < 0) | (t >= 1)][:5]}")
    return t


def net_benefit(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Net benefit TP/n - FP/n * pt/(1 - pt) of treating patients whose risk is >= pt.

    Args:
        y_true: array-like of shape (n_samples,), 0/1.
        y_prob: predicted probabilities of shape (n_samples,), or a 0/1 test.
        thresholds: threshold probabilities pt in [0, 1).

    Returns:
        array of shape (n_thresholds,).
    """
    y = _binary(y_true)
    p = _scores(y, y_prob, "y_prob")
    t = _thresholds(thresholds)
    n = len(y)
    treated = p[None, :] >= t[:, None]
    tp = (treated & (y == 1)).sum(axis=1)
    fp = (treated & (y == 0)).sum(axis=1)
    return tp / n - fp / n * t / (1 - t)


def decision_curve(
    y_true: Sequence[int] | np.ndarray,
    models: Mapping[str, Sequence[float] | np.ndarray],
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Net benefit of each model and of treating all or none.

    Returns a DataFrame indexed by ``threshold`` with columns ``treat_all``, ``treat_none`` and
    one per model (the dcurves ``dca()`` net benefits, in wide form).
    """
    y = _binary(y_true)
    t = _thresholds(np.arange(0.01, 1.0, 0.01) if thresholds is None else thresholds)
    prev = y.mean()
    out = {
        "treat_all": prev - (1 - prev) * t / (1 - t),
        "treat_none": np.zeros_like(t),
    }
    for name, prob in models.items():
        if name in out:
            raise ValueError(f"model name {name!r} is reserved")
        out[name] = net_benefit(y, prob, t)
    return pd.DataFrame(out, index=pd.Index(t, name="threshold"))


def _runs(thresholds: np.ndarray, flag: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous runs of True in `flag` as (first, last) threshold of each run."""
    out = []
    start = None
    for i, f in enumerate(flag):
        if f and start is None:
            start = i
        if start is not None and (not f or i == len(flag) - 1):
            end = i if f else i - 1
            out.append((float(thresholds[start]), float(thresholds[end])))
            start = None
    return out


def decision_ranges(curve: pd.DataFrame, models: Sequence[str]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Where each model is useful on a decision curve (`decision_curve`'s frame).

    Returns, per model, ``useful``: the threshold ranges (first and last grid threshold of each
    run) where its net benefit is above both treat-all and treat-none; ``highest``: those where it
    is moreover the highest of `models` (ties within 1e-12 count for each tied model).
    """
    t = curve.index.to_numpy(float)
    nb = {m: curve[m].to_numpy(float) for m in models}
    default = np.maximum(curve["treat_all"].to_numpy(float), curve["treat_none"].to_numpy(float))
    top = np.max(np.vstack([nb[m] for m in models]), axis=0)
    out = {}
    for m in models:
        useful = nb[m] > default + 1e-12
        out[m] = {"useful": _runs(t, useful), "highest": _runs(t, useful & (nb[m] >= top - 1e-12))}
    return out


def round_ticks(lo: float, hi: float, min_step: float) -> list[float]:
    """Round values (multiples of 1, 2, 2.5 or 5 times a power of ten, at least `min_step` apart)
    inside [lo, hi]; the two ends when no two multiples fit. Axis ticks of the report's figures
    and the times of the numbers-at-risk tables."""
    span = hi - lo
    if not span > 0:
        return [lo]
    step = 10.0 ** np.floor(np.log10(max(min_step, span / 8)))
    while True:
        for m in (1, 2, 2.5, 5):
            if m * step >= min_step:
                first = np.ceil(lo / (m * step) - 1e-9) * m * step
                ticks = [float(v) + 0.0 for v in np.round(np.arange(first, hi + 1e-9 * span, m * step), 12)]
                return ticks if len(ticks) >= 2 else [lo, hi]
        step *= 10


# --------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class CalibrationResult(Record):
    """Calibration of predicted probabilities against outcomes.

    Attributes:
        brier: mean squared error of the probabilities.
        slope: logistic recalibration slope (1 = ideal; < 1 = predictions too extreme).
        intercept: calibration-in-the-large, the intercept of a logistic model with logit(prob)
            as offset (0 = ideal; > 0 = risks underestimated).
        curve: per bin ``n``, ``mean_predicted``, ``observed`` (fraction positive).
        hl_statistic, hl_df, hl_p_value: Hosmer-Lemeshow test over the same bins (df = bins - 2).
        hl_valid: False when a bin expects fewer than one responder or one non-responder: the
            chi-square approximation fails there (predictions near 0 or 1, or a small set), and
            the statistic, however large, means nothing.
    """

    brier: float
    slope: float
    intercept: float
    curve: pd.DataFrame
    hl_statistic: float
    hl_df: int
    hl_p_value: float
    hl_valid: bool = True


def _logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def calibration(
    y_true: Sequence[int] | np.ndarray, y_prob: Sequence[float] | np.ndarray, *, n_bins: int = 10
) -> CalibrationResult:
    """Brier score, recalibration slope and intercept, binned curve and Hosmer-Lemeshow test.

    Bins are groups of near-equal size by sorted predicted risk (deciles by default), as in the
    Hosmer-Lemeshow test; with fewer distinct patients than bins, fewer bins are used.
    """
    import statsmodels.api as sm

    y = _binary(y_true)
    p = _scores(y, y_prob, "y_prob")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("y_prob must be probabilities in [0, 1]")
    lp = _logit(p)
    brier = float(np.mean((p - y) ** 2))
    slope = intercept = float("nan")
    # Perfectly separated predictions (common on a training set) leave slope and intercept
    # undefined: they are reported as NaN rather than as the solver's huge last iterate.
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="ignore", divide="ignore"):
        warnings.simplefilter("always")
        try:
            fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
            fit0 = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
            separated = any("separation" in str(w.message).lower() for w in caught)
            if not separated:
                slope, intercept = float(fit.params[1]), float(fit0.params[0])
        except (np.linalg.LinAlgError, ValueError):
            pass
    n_bins = int(max(2, min(n_bins, len(y) // 2)))
    order = np.argsort(p, kind="mergesort")
    groups = np.array_split(order, n_bins)
    rows = []
    hl = 0.0
    valid = True
    for g in groups:
        n_g = len(g)
        expected = p[g].sum()
        valid &= bool(expected >= 1 and n_g - expected >= 1)
        observed = y[g].sum()
        rows.append({"n": n_g, "mean_predicted": p[g].mean(), "observed": observed / n_g})
        mean_p = expected / n_g
        denom = expected * (1 - mean_p)
        if denom > 0:
            hl += (observed - expected) ** 2 / denom
    df = n_bins - 2
    return CalibrationResult(
        brier=brier,
        slope=slope,
        intercept=intercept,
        curve=pd.DataFrame(rows),
        hl_statistic=float(hl),
        hl_df=df,
        hl_p_value=float(sps.chi2.sf(hl, df)),
        hl_valid=valid,
    )


# --------------------------------------------------------------------------------------------
# Operating points


def wilson_ci(successes: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (no continuity correction)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = sps.norm.ppf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def stratified_folds(y: Sequence[int] | np.ndarray, wanted: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The study's out-of-fold folds over these (training) rows: stratified by class, `wanted`
    folds or as many as the smaller class allows, shuffled by `seed` (+3, apart from the other
    seeded draws). One definition for every model's out-of-fold predictions."""
    from sklearn.model_selection import StratifiedKFold

    yy = np.asarray(y, int)
    k = int(min(wanted, np.bincount(yy, minlength=2).min()))
    if k < 2:
        raise ValueError(f"out-of-fold predictions need 2 training patients of each class; the smaller class has {k}")
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + 3).split(np.zeros(len(yy)), yy))


def held_out_threshold(y: np.ndarray, oof: np.ndarray, fitted: np.ndarray) -> float:
    """The Youden threshold of the out-of-fold predictions `oof` of the training patients (those
    that have one); the in-sample predictions `fitted` only when the out-of-fold ones cannot give
    one (a failed fold left a class without predictions), with a warning."""
    y = np.asarray(y, int)
    have = np.isfinite(oof)
    if have.sum() >= 4 and len(set(y[have])) == 2:
        return youden_threshold(y[have], oof[have])
    log.warning("no usable out-of-fold predictions; the threshold falls back to the in-sample fit")
    return youden_threshold(y, fitted)


def youden_threshold(y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray) -> float:
    """The score threshold (score >= threshold is positive) maximising sensitivity + specificity - 1.

    As pROC's ``coords(roc, "best", best.method = "youden")``: the threshold lies midway between
    the lowest score called positive and the next lower score, so that it does not sit on one
    training patient's own score. Ties between thresholds go to the higher one (pROC lists both).
    Choose it on the training set and carry it to the test set unchanged.
    """
    pts = roc_points(y_true, y_score).iloc[1:]
    j = np.round((pts["tpr"] - pts["fpr"]).to_numpy(), 12)  # so that equal J values tie exactly
    k = int(np.argmax(j))
    t = pts["threshold"].to_numpy()
    return float((t[k] + t[k + 1]) / 2) if k + 1 < len(t) else float(t[k])


@dataclass(frozen=True)
class OperatingPoint(Record):
    """Accuracy, sensitivity and specificity at one threshold, with Wilson intervals."""

    threshold: float
    accuracy: float
    accuracy_ci: tuple[float, float]
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    tp: int
    fp: int
    tn: int
    fn: int


def operating_point(
    y_true: Sequence[int] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    threshold: float,
    *,
    level: float = 0.95,
) -> OperatingPoint:
    """Classification at ``score >= threshold`` with Wilson intervals for each proportion."""
    y = np.asarray(y_true).astype(int)
    s = _scores(y, y_score)
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    tn = int((~pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    n = len(y)

    def frac(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return OperatingPoint(
        threshold=float(threshold),
        accuracy=frac(tp + tn, n),
        accuracy_ci=wilson_ci(tp + tn, n, level=level),
        sensitivity=frac(tp, tp + fn),
        sensitivity_ci=wilson_ci(tp, tp + fn, level=level),
        specificity=frac(tn, tn + fp),
        specificity_ci=wilson_ci(tn, tn + fp, level=level),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )
