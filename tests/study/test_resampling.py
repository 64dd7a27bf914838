"""The study's validation loops (`srgan3d.study.resampling`): out-of-fold predictions and
Harrell's optimism bootstrap, shared by the study models, the panel and DLRCR."""

from __future__ import annotations

import numpy as np
import pytest

from srgan3d.study import stats
from srgan3d.study.resampling import SEED_OFFSETS, bootstrap_optimism, out_of_fold, resamples


def test_resamples_are_stratified_seeded_and_one_stream_per_use():
    y = np.array([1] * 7 + [0] * 5)
    draws = resamples(y, 20, seed=4, stream="study bootstrap")
    assert all(y[b].sum() == 7 and len(b) == 12 for b in draws)  # each class drawn to its own size
    again = resamples(y, 20, seed=4, stream="study bootstrap")
    assert all(np.array_equal(a, b) for a, b in zip(draws, again, strict=True))
    other = resamples(y, 20, seed=4, stream="panel bootstrap")
    assert not all(np.array_equal(a, b) for a, b in zip(draws, other, strict=True))
    # the stream is the seed plus its documented offset
    assert all(np.array_equal(a, b) for a, b in
               zip(resamples(y, 5, seed=3, stream="panel bootstrap"), resamples(y, 5, seed=4, stream="study bootstrap"),
                   strict=True))  # fmt: skip
    assert SEED_OFFSETS["panel bootstrap"] - SEED_OFFSETS["study bootstrap"] == 1


def test_optimism_is_the_mean_gap_over_the_resamples_that_fitted():
    draws = [np.array([i]) for i in range(6)]

    def refit(b: np.ndarray) -> dict[str, float] | None:
        i = int(b[0])
        if i == 5:
            return None  # every model failed on this resample
        gaps = {"a": 0.1 * i}
        if i % 2 == 0:
            gaps["b"] = 0.05
        return gaps

    est = bootstrap_optimism({"a": 0.9, "b": 0.8}, refit, draws)
    assert est["a"].optimism == pytest.approx(0.2) and est["a"].n_bootstrap == 5 and est["a"].failed_fits == 1
    assert est["a"].corrected_auc == pytest.approx(0.7)
    assert est["b"].n_bootstrap == 3 and est["b"].failed_fits == 3 and est["b"].corrected_auc == pytest.approx(0.75)
    nothing = bootstrap_optimism({"a": 0.9}, lambda b: None, draws)
    assert np.isnan(nothing["a"].corrected_auc) and nothing["a"].failed_fits == 6


def test_out_of_fold_predicts_each_patient_once_from_a_fit_that_did_not_see_it():
    y = np.array([0, 1] * 10)
    seen: list[tuple[set[int], set[int]]] = []

    def fit_predict(fit_rows: np.ndarray, held: np.ndarray) -> np.ndarray:
        seen.append((set(fit_rows.tolist()), set(held.tolist())))
        if len(seen) == 2:
            raise ValueError("this fold does not fit")
        return np.column_stack([held, -held]).astype(float)

    out = out_of_fold(y, 4, seed=0, fit_predict=fit_predict, columns=2, what="a test model")
    assert len(seen) == 4
    for fit_rows, held in seen:
        assert not fit_rows & held and fit_rows | held == set(range(20))
    failed = sorted(seen[1][1])
    assert np.isnan(out[failed]).all()
    ok = [i for i in range(20) if i not in failed]
    assert out[ok, 0] == pytest.approx(ok) and out[ok, 1] == pytest.approx([-i for i in ok])
    # the folds are the study's (`stats.stratified_folds`), the same for every model
    assert [set(h.tolist()) for _, h in stats.stratified_folds(y, 4, 0)] == [h for _, h in seen]
