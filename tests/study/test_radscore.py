"""The radiomics signature (`srgan3d.study.radscore`): screening by Mann-Whitney (scipy's p-values),
the redundancy filter, LASSO on standardised features, and the radscore as the documented linear
predictor of the training-set z-scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression

from srgan3d.study.config import ModelingConfig
from srgan3d.study.radscore import Radscore


def _features(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    signal = y + rng.normal(0, 0.8, n)
    X = pd.DataFrame({f"noise_{k}": rng.normal(size=n) for k in range(30)})
    X["signal"] = signal * 10 + 100
    X["signal_copy"] = X["signal"] * 2 + rng.normal(0, 1e-3, n)  # redundant: |Spearman| ~ 1
    X["constant"] = 5.0
    X["broken"] = np.where(np.arange(n) == 3, np.inf, rng.normal(size=n))
    return X, y


def test_screening_keeps_the_signal_once_and_drops_what_cannot_be_modelled():
    X, y = _features()
    r = Radscore(seed=1).fit(X, y)
    assert r.n_features_in_ == 34 and r.n_variance_kept_ == 32  # the constant and the non-finite out
    assert "signal" in r.screened_ and "signal_copy" not in r.screened_  # the copy is redundant with it
    expected_p = sps.mannwhitneyu(X.signal[y == 1], X.signal[y == 0], alternative="two-sided").pvalue
    assert r.screen_p_["signal"] == pytest.approx(expected_p, rel=1e-12)
    assert "signal" in r.features_ and r.coef_[r.features_.index("signal")] > 0


def test_the_radscore_is_the_lasso_linear_predictor_of_training_z_scores():
    X, y = _features(seed=2)
    r = Radscore(seed=0, config=ModelingConfig(seed=0)).fit(X, y)
    Z = (X[r.features_] - X[r.features_].mean()) / X[r.features_].std(ddof=0)
    np.testing.assert_allclose(r.decision_function(X), r.intercept_ + Z.to_numpy() @ r.coef_, rtol=1e-10)
    # at the chosen C, the same L1 fit by scikit-learn on the screened, standardised candidates
    Zc = (X[r.screened_] - X[r.screened_].mean()) / X[r.screened_].std(ddof=0)
    m = LogisticRegression(C=r.C_, l1_ratio=1.0, solver="liblinear", max_iter=5000, random_state=0).fit(Zc, y)
    kept = dict(zip(r.screened_, m.coef_.ravel(), strict=True))
    assert {f for f, c in kept.items() if c != 0} == set(r.features_)
    np.testing.assert_allclose(r.coef_, [kept[f] for f in r.features_], rtol=1e-10)
    table = r.coefficients()
    assert table.feature.iloc[0] == "(intercept)" and list(table.feature.iloc[1:]) == r.features_
    assert r.formula().startswith("radscore = ")
