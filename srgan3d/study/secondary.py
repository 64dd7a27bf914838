"""The study's secondary analyses, beside its four models: radscores per peritumoral region,
staging systems as comparators and the nomogram of the combined model. Imports no torch.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.config import ModelingConfig
from srgan3d.study.logistic import Logistic
from srgan3d.study.radscore import Radscore
from srgan3d.study.results import (
    TRAIN,
    ComparatorResult,
    Nomogram,
    NomogramPredictor,
    RegionImage,
    RegionResult,
    tested_sets,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Peritumoral regions


def region_models(
    pre: pd.DataFrame, post: pd.DataFrame, groups: dict[str, list[str]], y: np.ndarray,
    sets: dict[str, np.ndarray], config: ModelingConfig,
) -> tuple[RegionResult, ...]:  # fmt: skip
    """A radscore per region (tumour, each ring, tumour + rings) and image, fitted on the training
    set like the main radscores; AUC with DeLong CI on each other set and post- vs pre-SR DeLong
    per region and set. A region whose fit fails is reported with its reason."""
    y = np.asarray(y, int)
    train = sets[TRAIN]
    tested = tested_sets(sets)
    rows = []
    for region, cols in groups.items():
        try:
            preds: dict[str, np.ndarray] = {}
            images: dict[str, RegionImage] = {}
            for image, X in (("pre", pre[cols]), ("post", post[cols])):
                r = Radscore(seed=config.seed, config=config).fit(X.iloc[train], y[train])
                p = r.predict_proba(X)
                preds[image] = p
                images[image] = RegionImage(features=tuple(r.features_), train_auc=stats.roc_auc_ci(y[train], p[train]).auc,
                                            roc={s: stats.roc_auc_ci(y[i], p[i]) for s, i in tested.items()})  # fmt: skip
            delong = {s: stats.delong_test(y[i], preds["post"][i], preds["pre"][i]) for s, i in tested.items()}
            rows.append(RegionResult(region=region, n_features=len(cols), images=images, delong_post_vs_pre=delong))
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.warning("region %s: model failed: %s", region, exc)
            rows.append(RegionResult(region=region, n_features=len(cols), error=f"{type(exc).__name__}: {exc}"))
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# Staging systems as comparators


def compare_staging(
    comparators: pd.DataFrame, y: np.ndarray, sets: dict[str, np.ndarray], best_name: str, best: np.ndarray,
    orders: dict[str, str] | None = None,
) -> tuple[ComparatorResult, ...]:  # fmt: skip
    """AUC with DeLong CI of each ordinal comparator on each test set, and DeLong of the best model
    against it. The direction (does a higher stage mean response or non-response?) is fixed on the
    training set: a comparator whose training AUC is below 0.5 is negated."""
    y = np.asarray(y, int)
    train = sets[TRAIN]
    tested = tested_sets(sets)
    rows = []
    for col in comparators.columns:
        v = comparators[col].to_numpy(float)
        sign = 1.0 if stats.roc_auc_ci(y[train], v[train]).auc >= 0.5 else -1.0
        score = sign * v
        rows.append(ComparatorResult(
            comparator=col, direction="higher = response" if sign > 0 else "higher = non-response",
            best_model=best_name, roc={s: stats.roc_auc_ci(y[i], score[i]) for s, i in tested.items()},
            delong_vs_best={s: stats.delong_test(y[i], best[i], score[i]) for s, i in tested.items()},
            order=(orders or {}).get(col, ""),
        ))  # fmt: skip
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# Nomogram


def nomogram(model: Logistic, X_train: pd.DataFrame) -> Nomogram:
    """Points of a logistic model's nomogram over the training range of each predictor.

    Predictor j contributes points_j(x) = 100 * b_j * (x - ref_j) / R, where ref_j is the end of
    its training range that gives 0 points and R the largest |b_j| * range over predictors (that
    predictor spans 0-100). The linear predictor is then ``offset + total_points * R / 100`` with
    ``offset = b_0 + sum_j b_j * ref_j``: `nomogram_linear_predictor`.
    """
    b = model.params_
    rows = []
    spans = {}
    for v in model.variables:
        lo, hi = float(X_train[v].min()), float(X_train[v].max())
        spans[v] = (lo, hi)
    R = max(abs(float(b[v])) * (hi - lo) for v, (lo, hi) in spans.items()) or 1.0
    offset = float(b["const"])
    for v in model.variables:
        lo, hi = spans[v]
        ref = lo if b[v] >= 0 else hi
        offset += float(b[v]) * ref
        rows.append(NomogramPredictor(variable=v, coefficient=float(b[v]), min=lo, max=hi, ref=ref,
                                      points_per_unit=100.0 * float(b[v]) / R,
                                      max_points=100.0 * abs(float(b[v])) * (hi - lo) / R))  # fmt: skip
    return Nomogram(predictors=tuple(rows), scale=R / 100.0, offset=offset)


def nomogram_points(nomo: Nomogram, X: pd.DataFrame) -> np.ndarray:
    """Total points of each row."""
    total = np.zeros(len(X))
    for r in nomo.predictors:
        total += r.points_per_unit * (X[r.variable].to_numpy(float) - r.ref)
    return total


def nomogram_linear_predictor(nomo: Nomogram, total_points: np.ndarray) -> np.ndarray:
    return nomo.offset + np.asarray(total_points) * nomo.scale
