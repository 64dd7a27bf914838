"""Survival analysis beside the response study: Cox proportional hazards with Efron ties (as R's
`survival::coxph`), Kaplan-Meier curves with the log-rank test, and Harrell's C-index with a
bootstrap CI. lifelines does the fitting; this module validates the input, names things as the
report needs them, and imports no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from srgan3d.study.config import DEFAULT_TIME_UNIT, TIME_UNITS
from srgan3d.study.logistic import effect_units
from srgan3d.study.results import (
    GROUP_COVARIATE,
    TRAIN,
    ChiSquareTest,
    CIndex,
    CoxResult,
    CoxTerm,
    KaplanMeier,
    SurvivalEndpoint,
    SurvivalResult,
    SurvivalSet,
)
from srgan3d.study.stats import round_ticks

log = logging.getLogger(__name__)


class SurvivalDataError(ValueError):
    """Survival columns that cannot be analysed; the message names the column, the rows and the fix."""


def _shown(v: object) -> str:
    """A cell as the user wrote it: numbers plainly (-5, 2.5), empty cells as 'empty'."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
        return "empty"
    try:
        return f"{float(v):g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(str(v))


def check_survival(df: pd.DataFrame, duration: str, event: str) -> None:
    """Durations present, finite and non-negative; events 0/1. Raises `SurvivalDataError` naming
    every bad value with its patient (the index, when it is ``patient_id``) or row, and the fix."""
    for col in (duration, event):
        if col not in df.columns:
            raise SurvivalDataError(f"survival column {col!r} is not in the table ({', '.join(map(str, df.columns))})")
    who = "patient" if df.index.name == "patient_id" else "row"
    t = pd.to_numeric(df[duration], errors="coerce").to_numpy(float)
    e = pd.to_numeric(df[event], errors="coerce")
    problems = []
    for i in np.flatnonzero(~np.isfinite(t) | (t < 0)):
        problems.append(f"{who} {df.index[i]}: {duration} = {_shown(df[duration].iloc[i])} (a time >= 0 is needed)")
    for i in np.flatnonzero(~e.isin([0, 1]).to_numpy()):
        problems.append(f"{who} {df.index[i]}: {event} = {_shown(df[event].iloc[i])} (0 = censored or 1 = event)")
    if problems:
        shown = "; ".join(problems[:20]) + (f"; ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise SurvivalDataError(f"bad survival values: {shown}. Correct them or drop those patients")


def cox(
    df: pd.DataFrame, duration: str, event: str, covariates: Sequence[str],
    units: Mapping[str, tuple[str, float]] | None = None,
) -> CoxResult:  # fmt: skip
    """Cox proportional-hazards regression (Efron's method for ties, as R's coxph).

    Returns a `CoxResult`: one `CoxTerm` per covariate (Wald statistics per unit of the covariate,
    the hazard ratio and its 95% CI per SD of a continuous covariate or per unit of a binary one,
    `srgan3d.study.logistic.effect_units`; `units` fixes them, e.g. to the training set's SDs so
    that every set's ratios are per the same unit), Harrell's C of the linear predictor, the likelihood-ratio test, n and events.
    """
    from lifelines import CoxPHFitter

    check_survival(df, duration, event)
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        raise SurvivalDataError(f"covariate(s) {', '.join(missing)} not in the table")
    data = df[[duration, event, *covariates]].astype(float)
    fitter = CoxPHFitter()  # lifelines' partial likelihood uses Efron's approximation for ties
    fitter.fit(data, duration_col=duration, event_col=event)
    s = fitter.summary
    units = {**effect_units(data[list(covariates)]), **(units or {})}
    terms = tuple(
        CoxTerm(covariate=str(c), coef=float(s.loc[c, "coef"]), se=float(s.loc[c, "se(coef)"]), z=float(s.loc[c, "z"]),
                p=float(s.loc[c, "p"]), hr=float(np.exp(s.loc[c, "coef"] * units[str(c)][1])),
                hr_low=float(np.exp(s.loc[c, "coef lower 95%"] * units[str(c)][1])),
                hr_high=float(np.exp(s.loc[c, "coef upper 95%"] * units[str(c)][1])),
                unit=units[str(c)][0], unit_size=units[str(c)][1])
        for c in s.index
    )  # fmt: skip
    lr = fitter.log_likelihood_ratio_test()
    return CoxResult(
        terms=terms, concordance=float(fitter.concordance_index_),
        likelihood_ratio=ChiSquareTest(float(lr.test_statistic), int(lr.degrees_freedom), float(lr.p_value)),
        n=int(len(data)), events=int(data[event].sum()),
    )  # fmt: skip


def kaplan_meier(
    df: pd.DataFrame, duration: str, event: str, group: str | None = None, *, risk_times: Sequence[float] | None = None
) -> list[KaplanMeier]:
    """Kaplan-Meier curve of each group (or of everyone), with numbers at risk at `risk_times`
    (default: 0 and quartiles of the follow-up)."""
    from lifelines import KaplanMeierFitter

    check_survival(df, duration, event)
    t_all = df[duration].astype(float)
    if risk_times is None:
        risk_times = [0.0, *np.round(np.quantile(t_all, [0.25, 0.5, 0.75]), 1)]
    groups = [("all", df)] if group is None else [(str(g), sub) for g, sub in df.groupby(group, sort=True)]
    out = []
    for name, sub in groups:
        t, e = sub[duration].astype(float).to_numpy(), sub[event].astype(int).to_numpy()
        km = KaplanMeierFitter().fit(t, e)
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_survival_function_
        out.append(
            KaplanMeier(
                group=name,
                times=tuple(float(v) for v in sf.index),
                survival=tuple(float(v) for v in sf.to_numpy()),
                ci_low=tuple(float(v) for v in ci.iloc[:, 0]),
                ci_high=tuple(float(v) for v in ci.iloc[:, 1]),
                at_risk=tuple((float(rt), int((t >= rt).sum())) for rt in risk_times),
                median=float(km.median_survival_time_),
            )
        )
    return out


def logrank(df: pd.DataFrame, duration: str, event: str, group: str) -> ChiSquareTest:
    """Log-rank test across the groups of `group` (chi-square with groups - 1 df)."""
    from lifelines.statistics import multivariate_logrank_test

    check_survival(df, duration, event)
    r = multivariate_logrank_test(df[duration].astype(float), df[group], df[event].astype(int))
    return ChiSquareTest(float(r.test_statistic), int(r.degrees_of_freedom), float(r.p_value))


def harrell_c(
    time: ArrayLike, event: ArrayLike, risk: ArrayLike, *, n_bootstrap: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> CIndex:  # fmt: skip
    """Harrell's C of a risk score (higher risk = earlier event), with a percentile bootstrap CI."""
    from lifelines.utils import concordance_index

    t, e, r = (np.asarray(v, float) for v in (time, event, risk))
    c = float(concordance_index(t, -r, e))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_bootstrap):
        b = rng.integers(0, len(t), len(t))
        try:
            boots.append(concordance_index(t[b], -r[b], e[b]))
        except ZeroDivisionError:  # a resample with no comparable pair
            continue
    a = (1 - level) / 2
    lo, hi = (np.quantile(boots, [a, 1 - a]) if boots else (np.nan, np.nan))
    return CIndex(c_index=c, ci_low=float(lo), ci_high=float(hi), n_bootstrap=len(boots))


#: Clinical names of the common endpoints; any other `NAME_time` / `NAME_event` pair keeps its NAME.
ENDPOINT_LABELS = {
    "os": "overall survival", "pfs": "progression-free survival", "ttp": "time to progression",
    "rfs": "recurrence-free survival", "dfs": "disease-free survival", "efs": "event-free survival",
    "tts": "time to surgery", "dss": "disease-specific survival", "css": "cancer-specific survival",
}  # fmt: skip
#: The time units `--time-unit` accepts.


def survival_endpoints(columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """Every endpoint a table's columns name: (label, time column, event column) for each
    ``NAME_time`` or ``NAME_event`` column, in table order; a half pair is returned too (and
    skipped with its reason by `study_survival`). Known names get their clinical label
    (`ENDPOINT_LABELS`: ``ttp`` -> time to progression); others keep theirs."""
    names: list[str] = []
    for c in columns:
        for suffix in ("_time", "_event"):
            if c.endswith(suffix) and len(c) > len(suffix):
                name = c[: -len(suffix)]
                if name not in names:
                    names.append(name)
    return [(ENDPOINT_LABELS.get(n.lower(), n.replace("_", " ")), f"{n}_time", f"{n}_event") for n in names]


def risk_times(t_max: float, most: int = 6) -> list[float]:
    """Round times from 0 to `t_max`, at most `most` steps apart (`stats.round_ticks`): the KM axis
    ticks and the columns of the numbers-at-risk table."""
    return round_ticks(0.0, t_max, t_max / most) if t_max > 0 else [0.0]


def study_survival(
    table: pd.DataFrame, p_held: np.ndarray, threshold: float, best_name: str, covariates: Sequence[str],
    sets: dict[str, np.ndarray], *, time_unit: str = DEFAULT_TIME_UNIT,
) -> SurvivalResult | None:  # fmt: skip
    """Survival of the risk groups the best response model makes (predicted responder: probability
    at or above its out-of-fold training threshold), in each set of the split, for each endpoint
    whose columns the table has: KM per group with the log-rank test and numbers at risk, Cox
    hazard ratios of the group and the clinical covariates, and Harrell's C of the model.

    `p_held` holds held-out predictions: out-of-fold for the training patients, the fitted model's
    for every other set, so that no set's groups come from a model that saw those patients. An
    endpoint whose columns are unusable is skipped with the reason (naming each patient and value);
    so is a set too small for a part of it. `sets`: row indices of each set, in report order;
    `time_unit`: the unit of the time columns, for the axis and the medians."""
    endpoints = []
    if time_unit not in TIME_UNITS:
        raise ValueError(f"--time-unit must be one of {', '.join(TIME_UNITS)}, not {time_unit!r}")
    for name, tcol, ecol in survival_endpoints(list(table.columns)):
        base = SurvivalEndpoint(endpoint=name, time=tcol, event=ecol, best_model=best_name, threshold=threshold,
                                time_unit=time_unit)  # fmt: skip
        try:
            if tcol not in table.columns or ecol not in table.columns:
                raise SurvivalDataError(f"{name} needs both {tcol!r} and {ecol!r}")
            df = table[[tcol, ecol, *covariates]].copy()
            check_survival(df, tcol, ecol)
        except SurvivalDataError as exc:
            log.warning("%s skipped: %s", name, exc)
            endpoints.append(replace(base, skipped=str(exc)))
            continue
        df[[tcol, ecol]] = df[[tcol, ecol]].astype(float)
        df[GROUP_COVARIATE] = (np.asarray(p_held) >= threshold).astype(int)
        df["group"] = np.where(df[GROUP_COVARIATE] == 1, "predicted responder", "predicted non-responder")
        per_set = {}
        # ratios per SD of the training set's values in every set, so that the sets compare
        units = effect_units(df.iloc[sets[TRAIN]][list(covariates)].astype(float)) if TRAIN in sets else None
        for set_name, rows in sets.items():
            per_set[set_name] = _survival_of_set(df.iloc[rows], tcol, ecol, covariates, np.asarray(p_held)[rows], units)
        endpoints.append(replace(base, sets=per_set))
    return SurvivalResult(endpoints=tuple(endpoints)) if endpoints else None


def _survival_of_set(
    df: pd.DataFrame, tcol: str, ecol: str, covariates: Sequence[str], p_best: np.ndarray,
    units: Mapping[str, tuple[str, float]] | None = None,
) -> SurvivalSet:  # fmt: skip
    n, events = len(df), int(df[ecol].sum())
    try:
        km = kaplan_meier(df, tcol, ecol, "group", risk_times=risk_times(float(df[tcol].max())))
        if df["group"].nunique() < 2:
            raise ValueError(f"every patient of this set is a {df['group'].iloc[0]}: no second group to compare")
        return SurvivalSet(
            n=n, events=events, kaplan_meier=tuple(km), logrank=logrank(df, tcol, ecol, "group"),
            cox=cox(df, tcol, ecol, [GROUP_COVARIATE, *covariates], units),
            c_index=harrell_c(df[tcol], df[ecol], 1 - p_best, n_bootstrap=200),
        )  # fmt: skip
    except (SurvivalDataError, ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        return SurvivalSet(n=n, events=events, skipped=f"{type(exc).__name__}: {exc}")
