"""The nomogram of a logistic model: points per predictor over its training range, total points
and the linear predictor they map to. Imports no torch.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from srgan3d.study.logistic import Logistic
from srgan3d.study.results import (
    Nomogram,
    NomogramPredictor,
)

log = logging.getLogger(__name__)


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
