"""The model against radiologists' reads: optional cohort columns `reader_1 ... reader_k`, each a
probability of response (0-1) or a 1-5 confidence score (5 = surely a responder). Imports no torch.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.study import stats

READER_COLUMN = re.compile(r"^reader_\d+$")


def reader_columns(table: pd.DataFrame) -> list[str]:
    return sorted((c for c in table.columns if READER_COLUMN.match(str(c))), key=lambda c: int(c.split("_")[1]))


def reader_scale(values: pd.Series, column: str) -> str:
    """"probability" when every value lies in [0, 1], "score" when every value is an integer 1-5;
    otherwise an error naming the column and the rows outside both scales."""
    v = pd.to_numeric(values, errors="coerce")
    if v.notna().all() and v.between(0, 1).all():
        return "probability"
    score = v.notna() & v.isin([1, 2, 3, 4, 5])
    if score.all():
        return "score"
    bad = list(values.index[~score & ~(v.notna() & v.between(0, 1))]) or list(values.index[~score])
    raise ValueError(
        f"column {column!r}: a reader column holds probabilities (0-1) or 1-5 scores; rows "
        f"{', '.join(map(str, bad[:10]))} hold {', '.join(map(str, values[bad].head(5)))}, outside its scale"
    )


def as_probability(values: pd.Series, scale: str) -> np.ndarray:
    v = pd.to_numeric(values).to_numpy(float)
    return v if scale == "probability" else (v - 1) / 4


def compare_readers(
    table: pd.DataFrame, y: np.ndarray, test: np.ndarray, best_name: str, best: np.ndarray
) -> dict[str, Any]:
    """Each reader's test-set AUC with DeLong CI, DeLong of the best model against each reader and
    against the readers' mean (scores mapped to 0-1), and each reader's operating point (a
    probability >= 0.5 or a score >= 3 calls a responder) for the ROC figure."""
    cols = reader_columns(table)
    y = np.asarray(y, int)
    yt = y[test]
    rows, probs = [], {}
    for col in cols:
        scale = reader_scale(table[col], col)
        p = as_probability(table[col], scale)
        probs[col] = p
        called = p[test] >= 0.5
        tp, fp = int((called & (yt == 1)).sum()), int((called & (yt == 0)).sum())
        rows.append({
            "reader": col, "scale": scale, "test": stats.roc_auc_ci(yt, p[test]).to_dict(),
            "delong_best_vs_reader": stats.delong_test(yt, best[test], p[test]).to_dict(),
            "sensitivity": tp / max(1, int((yt == 1).sum())), "specificity": 1 - fp / max(1, int((yt == 0).sum())),
        })  # fmt: skip
    out: dict[str, Any] = {"best_model": best_name, "readers": rows,
                           "best_test": stats.roc_auc_ci(yt, best[test]).to_dict()}  # fmt: skip
    if len(cols) > 1:
        mean = np.mean([probs[c] for c in cols], axis=0)
        out["mean_of_readers"] = {"test": stats.roc_auc_ci(yt, mean[test]).to_dict(),
                                  "delong_best_vs_mean": stats.delong_test(yt, best[test], mean[test]).to_dict()}  # fmt: skip
    return out
