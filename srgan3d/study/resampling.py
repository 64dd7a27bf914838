"""The study's two validation loops, one home for every model that needs them (the four study
models, the classifier panel, DLRCR):

- `out_of_fold`: each training patient predicted by a fit that did not see it, over the folds of
  `stats.stratified_folds`. Operating thresholds and the training set's survival risk groups are
  chosen on these predictions.
- `bootstrap_optimism`: Harrell's optimism bootstrap. Each stratified resample of the development
  patients (`resamples`) is refitted; the model's AUC on the resample minus its AUC on the original
  patients is its optimism; the corrected AUC is the apparent AUC minus the mean optimism.

Seeds. Every seeded draw of a study derives from its one ``--seed`` by a fixed offset, so that no
two draws share a stream (`SEED_OFFSETS`): the drawn split uses the seed itself, the study models'
bootstrap seed + 1, the panel's bootstrap seed + 2, the out-of-fold folds seed + 3. Resamples are
drawn first, in order, then fitted (in `workers` processes): the numbers do not depend on the
number of workers. (Seeded by the study's seed itself, apart from these: the LASSO's and the
panel's inner cross-validation, the deep models, the readers' and the C-index's bootstrap CIs.)
Imports neither torch nor any fitting library.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from srgan3d.study.config import TIE_TOLERANCE_AUC
from srgan3d.study.stats import stratified_folds

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

#: Offsets added to the study's seed for each seeded draw (see the module's docstring).
SEED_OFFSETS = {"split": 0, "study bootstrap": 1, "panel bootstrap": 2, "folds": 3}


def resamples(y: np.ndarray, n: int, seed: int, stream: str) -> list[np.ndarray]:
    """`n` bootstrap resamples of the rows of `y`, stratified by class (each class drawn with
    replacement to its own size), from the seed's `stream` (a key of `SEED_OFFSETS`)."""
    rng = np.random.default_rng(seed + SEED_OFFSETS[stream])
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return [np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(n)]


@dataclass(frozen=True)
class OptimismEstimate:
    """One model's bootstrap: the mean optimism over the resamples whose refit succeeded."""

    apparent_auc: float
    optimism: float
    n_bootstrap: int
    failed_fits: int

    @property
    def corrected_auc(self) -> float:
        return self.apparent_auc - self.optimism


def bootstrap_optimism(
    apparent: Mapping[K, float], refit: Callable[[np.ndarray], Mapping[K, float] | None], draws: list[np.ndarray],
    *, workers: int = 1, progress: bool = False,
) -> dict[K, OptimismEstimate]:  # fmt: skip
    """Harrell's optimism of each model of `apparent` (its AUC fitted on all patients).

    `refit(b)` refits the models on resample `b` and returns each one's AUC on `b` minus its AUC on
    the original patients: a model missing from its answer (or an answer of None: every model)
    failed on that resample and is left out of its mean. `refit` must pickle (a module-level
    function or a `functools.partial` of one) when `workers` > 1.
    """
    from tqdm.auto import tqdm

    gaps: dict[K, list[float]] = {k: [] for k in apparent}
    if workers > 1 and len(draws) > 1:
        from joblib import Parallel, delayed

        runs = Parallel(n_jobs=workers, return_as="generator")(delayed(refit)(b) for b in draws)
    else:
        runs = (refit(b) for b in draws)
    for one in tqdm(runs, total=len(draws), desc="bootstrap", unit="fit", disable=not progress):
        for k, v in (one or {}).items():
            gaps[k].append(v)
    return {k: OptimismEstimate(apparent_auc=apparent[k], optimism=float(np.mean(v)) if v else float("nan"),
                                n_bootstrap=len(v), failed_fits=len(draws) - len(v))
            for k, v in gaps.items()}  # fmt: skip


def out_of_fold(
    y: np.ndarray, n_folds: int, seed: int, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
    columns: int | None = None, what: str = "model",
    errors: tuple[type[BaseException], ...] = (ValueError, np.linalg.LinAlgError),
) -> np.ndarray:  # fmt: skip
    """Out-of-fold predictions of the rows of `y` (the training patients).

    `fit_predict(fit_rows, held_rows)` fits on `fit_rows` and predicts `held_rows` (positions in
    `y`): a vector, or `columns` columns. A fold whose fit raises one of `errors` leaves its
    patients without a prediction (NaN), with a warning naming `what`.
    """
    out = np.full(len(y) if columns is None else (len(y), columns), np.nan)
    for k, (fit_rows, held) in enumerate(stratified_folds(y, n_folds, seed), start=1):
        try:
            out[held] = fit_predict(fit_rows, held)
        except errors as exc:
            log.warning("out-of-fold fit %d of %s failed (%s); its %d patients have no out-of-fold prediction",
                        k, what, exc, len(held))  # fmt: skip
    return out


def simplest_within(scores: np.ndarray, complexity: list[tuple[float, ...]], tol: float = TIE_TOLERANCE_AUC) -> int:
    """The index of the simplest setting whose mean inner-CV score lies within `tol` of the best
    (`complexity`: a sortable key per setting, smaller = simpler; a tie in complexity goes to the
    higher score, then to the first). Settings whose score is not finite are never chosen."""
    s = np.asarray(scores, float)
    finite = np.isfinite(s)
    if not finite.any():
        return 0
    best = float(np.max(s[finite]))
    near = [i for i in range(len(s)) if finite[i] and s[i] >= best - tol]
    return min(near, key=lambda i: (complexity[i], -s[i], i))
