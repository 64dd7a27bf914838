"""Staging systems (BCLC, Child-Pugh, ...) as comparators of the best model: each one's AUC on
the tested sets, its direction fixed on the training set, and DeLong against the best model.
Imports no torch.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.results import (
    TRAIN,
    ComparatorResult,
    tested_sets,
)

log = logging.getLogger(__name__)


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
