"""The model against radiologists' reads: optional cohort columns `reader_1 ... reader_k`, each a
probability of response (0-1) or a 1-5 confidence score (5 = surely a responder). Imports no torch.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.results import MeanOfReaders, ReaderRead, ReaderResult, ReaderSet

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
    who = "patient" if values.index.name == "patient_id" else "row"
    shown = "; ".join(f"{who} {i}: {column} = {values[i]}" for i in bad[:20]) + (" ..." if len(bad) > 20 else "")
    raise ValueError(
        f"column {column!r}: a reader column holds probabilities (0-1) or 1-5 scores for every patient; "
        f"{shown} (outside both scales). Correct them, or leave the column out"
    )


def as_probability(values: pd.Series, scale: str) -> np.ndarray:
    v = pd.to_numeric(values).to_numpy(float)
    return v if scale == "probability" else (v - 1) / 4


def compare_readers(
    table: pd.DataFrame, y: np.ndarray, sets: dict[str, np.ndarray], best_name: str, best: np.ndarray
) -> ReaderResult:
    """On each test set (`sets`: row indices, the training set left out): each reader's AUC with
    DeLong CI, DeLong of the best model against each reader and against the readers' mean (scores
    mapped to 0-1), and each reader's operating point (a probability >= 0.5 or a score >= 3 calls
    a responder) for the ROC figure. A reader value outside both scales is an error naming it."""
    cols = reader_columns(table)
    y = np.asarray(y, int)
    probs, scales = {}, {}
    for col in cols:
        scales[col] = reader_scale(table[col], col)
        probs[col] = as_probability(table[col], scales[col])
    out = {}
    for name, idx in sets.items():
        yt = y[idx]
        rows = []
        for col in cols:
            p = probs[col][idx]
            called = p >= 0.5
            tp, fp = int((called & (yt == 1)).sum()), int((called & (yt == 0)).sum())
            rows.append(ReaderRead(
                reader=col, scale=scales[col], roc=stats.roc_auc_ci(yt, p),
                delong_best_vs_reader=stats.delong_test(yt, best[idx], p),
                sensitivity=tp / max(1, int((yt == 1).sum())), specificity=1 - fp / max(1, int((yt == 0).sum())),
            ))  # fmt: skip
        mean_of = None
        if len(cols) > 1:
            mean = np.mean([probs[c] for c in cols], axis=0)[idx]
            mean_of = MeanOfReaders(roc=stats.roc_auc_ci(yt, mean),
                                    delong_best_vs_mean=stats.delong_test(yt, best[idx], mean))  # fmt: skip
        out[name] = ReaderSet(best=stats.roc_auc_ci(yt, best[idx]), readers=tuple(rows), mean_of_readers=mean_of)
    return ReaderResult(best_model=best_name, sets=out)
