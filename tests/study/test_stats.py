"""`srgan3d.study.stats` against published values of pROC (R), dcurves and statsmodels.

Reference data and values: tests/data/README.md (copied from the project's shared reference folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srgan3d.study import stats

REF = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def asah() -> pd.DataFrame:
    df = pd.read_csv(REF / "aSAH.csv")
    df["y"] = (df["outcome"] == "Poor").astype(int)
    return df


@pytest.fixture(scope="module")
def dca_df() -> pd.DataFrame:
    return pd.read_csv(REF / "dca_df_binary.csv")


def test_stats_imports_neither_torch_nor_pyradiomics():
    import subprocess

    code = "import sys, srgan3d.study.stats; print(sorted(m for m in ('torch', 'radiomics') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_auc_and_delong_variance_match_proc(asah):
    """R: roc(aSAH$outcome, aSAH$wfns); var(r, method = "delong"); same for s100b (pROC 1.19)."""
    wfns = stats.roc_auc_ci(asah["y"], asah["wfns"])
    s100b = stats.roc_auc_ci(asah["y"], asah["s100b"])
    assert wfns.auc == pytest.approx(0.823678861788618, rel=1e-9)
    assert s100b.auc == pytest.approx(0.73136856368563685, rel=1e-9)
    assert wfns.variance == pytest.approx(0.00146991470882363, rel=1e-7)
    assert s100b.variance == pytest.approx(0.00266868245717244, rel=1e-7)
    # pROC's ci.auc(method="delong"): AUC +- qnorm(0.975) * sqrt(var)
    assert wfns.ci_low == pytest.approx(
        0.823678861788618 - 1.959963984540054 * 0.00146991470882363**0.5, rel=1e-7
    )
    assert wfns.ci_high == pytest.approx(
        0.823678861788618 + 1.959963984540054 * 0.00146991470882363**0.5, rel=1e-7
    )
    assert (wfns.n_positive, wfns.n_negative) == (41, 72)


def test_paired_delong_test_matches_proc(asah):
    """R: roc.test(roc(outcome, wfns), roc(outcome, s100b), method = "delong")."""
    r = stats.delong_test(asah["y"], asah["wfns"], asah["s100b"])
    assert r.z == pytest.approx(2.20898359144091, rel=1e-7)
    assert r.p_value == pytest.approx(0.0271757822291882, rel=1e-7)
    assert r.ci_low == pytest.approx(0.0104061769564846, rel=1e-6)
    assert r.ci_high == pytest.approx(0.174214419249478, rel=1e-7)
    swapped = stats.delong_test(asah["y"], asah["s100b"], asah["wfns"])
    assert swapped.z == pytest.approx(-r.z, rel=1e-12)
    assert swapped.p_value == pytest.approx(r.p_value, rel=1e-12)


def test_delong_identical_scores_give_z0_p1():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.5, 0.6])
    r = stats.delong_test(y, s, s)
    assert (r.z, r.p_value, r.difference) == (0.0, 1.0, 0.0)


def test_auc_ties_count_one_half_and_ci_is_clipped():
    # one positive and one negative tied, the rest separated: AUC = (3 + 0.5) / 4
    y = [0, 0, 1, 1]
    r = stats.roc_auc_ci(y, [0.1, 0.5, 0.5, 0.9])
    assert r.auc == pytest.approx(0.875)
    perfect = stats.roc_auc_ci(y, [0.1, 0.2, 0.8, 0.9])
    assert perfect.auc == 1.0 and perfect.ci_high == 1.0


def test_auc_agrees_with_sklearn_on_random_data():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties
    assert stats.roc_auc_ci(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_bad_labels_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="only 0 and 1"):
        stats.roc_auc_ci([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one class"):
        stats.roc_auc_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        stats.roc_auc_ci([0, 1, 1], [0.1, 0.2])


def test_net_benefit_matches_dcurves(dca_df):
    """Values of the dcurves tests and docs (dca(cancer ~ cancerpredmarker + famhistory, dca_df_binary))."""
    y = dca_df["cancer"].to_numpy()
    t = [0.05, 0.10, 0.20, 0.30, 0.50]
    dc = stats.decision_curve(
        y, {"marker": dca_df["cancerpredmarker"], "famhistory": dca_df["famhistory"]}, t
    )
    np.testing.assert_allclose(dc["marker"], [0.105544, 0.087407, 0.067333, 0.054667, 0.021333], atol=5e-7)
    np.testing.assert_allclose(
        dc["famhistory"], [0.025614, 0.018519, 0.001667, -0.020000, -0.089333], atol=5e-7
    )
    np.testing.assert_allclose(
        dc["treat_all"], [0.094737, 0.044444, -0.075000, -0.228571, -0.720000], atol=5e-7
    )
    assert (dc["treat_none"] == 0).all()
    at25 = stats.decision_curve(y, {"marker": dca_df["cancerpredmarker"]}, [0.25]).iloc[0]
    assert at25["treat_all"] == pytest.approx(-0.1466667, abs=5e-8)
    assert at25["marker"] == pytest.approx(0.0640000, abs=5e-8)


def test_net_benefit_treats_at_equal_threshold():
    # risk exactly at the threshold is treated: 1 TP, 1 FP out of 4 at pt = 0.5 -> 1/4 - 1/4 * 1
    assert stats.net_benefit([1, 0, 0, 1], [0.5, 0.5, 0.1, 0.2], [0.5])[0] == pytest.approx(0.0)
    assert stats.net_benefit([1, 0, 0, 1], [0.5, 0.4, 0.1, 0.2], [0.5])[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        stats.net_benefit([1, 0], [0.5, 0.4], [1.0])


def test_calibration_slope_and_intercept_match_an_unpenalised_logistic_fit():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    lp = rng.normal(size=400)
    y = (rng.random(400) < 1 / (1 + np.exp(-(0.3 + 0.6 * lp)))).astype(int)
    prob = 1 / (1 + np.exp(-lp))
    cal = stats.calibration(y, prob)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    assert cal.slope == pytest.approx(ref.coef_[0, 0], rel=1e-5)
    assert cal.brier == pytest.approx(np.mean((prob - y) ** 2))
    # calibration-in-the-large solves sum(y) = sum(expit(a + lp)) for a
    from scipy.optimize import brentq

    a = brentq(lambda a: y.sum() - (1 / (1 + np.exp(-(a + lp)))).sum(), -5, 5, xtol=1e-14)
    assert cal.intercept == pytest.approx(a, abs=1e-6)
    assert cal.curve["n"].sum() == 400 and len(cal.curve) == 10 and cal.hl_df == 8


def test_hosmer_lemeshow_by_hand():
    # 4 bins of 2: predicted (0.1,0.1) (0.3,0.3) (0.6,0.6) (0.9,0.9); observed 0, 1, 1, 2 positives
    y = [0, 0, 0, 1, 1, 0, 1, 1]
    p = [0.1, 0.1, 0.3, 0.3, 0.6, 0.6, 0.9, 0.9]
    cal = stats.calibration(y, p, n_bins=4)
    # sum (O - E)^2 / (n pbar (1 - pbar)) per bin
    hand = (0 - 0.2) ** 2 / 0.18 + (1 - 0.6) ** 2 / 0.42 + (1 - 1.2) ** 2 / 0.48 + (2 - 1.8) ** 2 / 0.18
    assert cal.hl_statistic == pytest.approx(hand)
    from scipy.stats import chi2

    assert cal.hl_p_value == pytest.approx(chi2.sf(hand, 2))


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(8, 10), (0, 12), (25, 25), (17, 40)]:
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert stats.wilson_ci(k, n) == pytest.approx((lo, hi), abs=1e-12)
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662
    lo, hi = stats.wilson_ci(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_youden_threshold_and_operating_point():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]
    # cuts: above 0.6 -> tpr 2/3 fpr 0 (J=0.667); above 0.2 -> tpr 1 fpr 1/3 (J=0.667); tie -> higher.
    # pROC 1.18.0 (R 4.2.2): coords(roc(y, s, direction = "<"), "best", best.method = "youden")
    # gives thresholds 0.30 and 0.65 (the tie), and 0.635 for the second example
    assert stats.youden_threshold(y, s) == pytest.approx(0.65, abs=1e-12)
    y2 = [0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    s2 = [0.05, 0.31, 0.12, 0.44, 0.52, 0.18, 0.61, 0.77, 0.90, 0.29, 0.66, 0.08]
    assert stats.youden_threshold(y2, s2) == pytest.approx(0.635, abs=1e-12)
    op = stats.operating_point(y, s, 0.4)
    assert (op.tp, op.fp, op.tn, op.fn) == (3, 1, 2, 0)
    assert op.sensitivity == 1.0 and op.specificity == pytest.approx(2 / 3)
    assert op.accuracy_ci == stats.wilson_ci(5, 6)


def test_decision_ranges_by_hand():
    """A decision curve written by hand: the model beats both defaults at 0.2-0.3 and 0.6, and is
    the highest of the two models only at 0.3 and 0.6."""
    t = pd.Index([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], name="threshold")
    dc = pd.DataFrame({"treat_all": [0.30, 0.10, -0.05, -0.2, -0.4, -0.6], "treat_none": 0.0,
                       "a": [0.25, 0.15, 0.10, 0.00, -0.01, 0.02], "b": [0.35, 0.20, 0.05, 0.01, 0.0, 0.0]}, index=t)  # fmt: skip
    r = stats.decision_ranges(dc, ["a", "b"])
    assert r["a"] == {"useful": [(0.2, 0.3), (0.6, 0.6)], "highest": [(0.3, 0.3), (0.6, 0.6)]}
    assert r["b"] == {"useful": [(0.1, 0.4)], "highest": [(0.1, 0.2), (0.4, 0.4)]}


def test_round_ticks_by_hand():
    assert stats.round_ticks(17.0, 74.0, 9.0) == [20, 30, 40, 50, 60, 70]  # step 10: the first multiple of 1,2,2.5,5 x 10 >= 9
    assert stats.round_ticks(-3.2, 2.4, 0.8) == [-3, -2, -1, 0, 1, 2]
    assert stats.round_ticks(0.0, 100.0, 6.0) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert stats.round_ticks(1.3, 1.9, 5.0) == [1.3, 1.9]  # no two multiples fit: the ends
