"""Survival analysis against R's survival package (published output) and hand calculations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.survival import SurvivalDataError, cox, harrell_c, kaplan_meier, logrank

DATA = Path(__file__).resolve().parents[1] / "data"

# R: summary(coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = Rossi))
# (Efron ties), as printed in Fox & Weisberg's appendix; see tests/data/README.md.
R_ROSSI = pd.DataFrame(
    {
        "coef": [-0.37942, -0.05744, 0.31390, -0.14980, -0.43370, -0.08487, 0.09150],
        "hr": [0.68426, 0.94418, 1.36875, 0.86088, 0.64810, 0.91863, 1.09581],
        "se": [0.19138, 0.02200, 0.30799, 0.21222, 0.38187, 0.19576, 0.02865],
        "z": [-1.983, -2.611, 1.019, -0.706, -1.136, -0.434, 3.194],
    },
    index=["fin", "age", "race", "wexp", "mar", "paro", "prio"],
)


def test_cox_matches_r_coxph_on_the_rossi_data():
    df = pd.read_csv(DATA / "rossi.csv")
    res = cox(df, "week", "arrest", list(R_ROSSI.index))
    assert list(res.columns) == ["coef", "se", "z", "p", "hr", "hr_low", "hr_high"]
    for col, tol in (("coef", 5e-6), ("hr", 5e-6), ("se", 5e-6), ("z", 5e-4)):
        np.testing.assert_allclose(res.loc[R_ROSSI.index, col], R_ROSSI[col], atol=tol, rtol=0, err_msg=col)
    np.testing.assert_allclose(res.loc[["fin", "age", "prio"], "p"], [0.04742, 0.00903, 0.00140], atol=5e-6)
    lr = res.attrs["log_likelihood_ratio_test"]
    assert lr["df"] == 7 and lr["statistic"] == pytest.approx(33.27, abs=0.005)
    assert res.attrs["concordance"] == pytest.approx(0.64, abs=0.005)
    assert res.attrs["n"] == 432 and res.attrs["events"] == 114
    # the 95% CI of the hazard ratio is exp(coef +- 1.96 se)
    np.testing.assert_allclose(res["hr_low"], np.exp(res["coef"] - 1.959964 * res["se"]), rtol=1e-6)


def test_kaplan_meier_and_logrank_match_a_hand_calculation():
    # two groups, a tie, censoring; product-limit by hand
    df = pd.DataFrame({"t": [1, 2, 2, 3, 4, 5, 1, 3, 6, 7], "e": [1, 1, 0, 1, 0, 1, 0, 1, 1, 0],
                       "g": ["a"] * 6 + ["b"] * 4})  # fmt: skip
    a, b = kaplan_meier(df, "t", "e", "g", risk_times=[0, 3])
    s_a = dict(zip(a.times, a.survival, strict=True))
    # group a: at t=1 5/6, t=2 (5/6)(4/5), t=3 x(2/3), t=5 x 0
    assert s_a[1.0] == pytest.approx(5 / 6) and s_a[2.0] == pytest.approx(4 / 6)
    assert s_a[3.0] == pytest.approx(4 / 6 * 2 / 3) and s_a[5.0] == pytest.approx(0.0)
    assert a.at_risk == {0.0: 6, 3.0: 3} and b.at_risk == {0.0: 4, 3.0: 3}
    # log-rank by hand: sum over event times of (observed - expected) in group a, and its variance
    o_e, var = 0.0, 0.0
    for t in sorted(df.loc[df.e == 1, "t"].unique()):
        at = df[df.t >= t]
        n, n1 = len(at), int((at.g == "a").sum())
        d = int(((df.t == t) & (df.e == 1)).sum())
        d1 = int(((df.t == t) & (df.e == 1) & (df.g == "a")).sum())
        o_e += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    r = logrank(df, "t", "e", "g")
    assert r["df"] == 1 and r["statistic"] == pytest.approx(o_e**2 / var, rel=1e-9)


def test_harrell_c_counts_concordant_pairs():
    t = np.array([1.0, 2, 3, 4, 5])
    e = np.array([1, 1, 1, 0, 1])
    risk = np.array([5.0, 4, 2, 3, 1])  # higher risk, earlier event, except the pair (3, 4)
    # usable pairs: (i, j) with t_i < t_j and e_i = 1: 4 + 3 + 2 + 0 = 9 ... (1,2),(1,3),(1,4),(1,5),
    # (2,3),(2,4),(2,5),(3,4),(3,5): concordant unless risk_i <= risk_j: (3,4) is discordant
    c = harrell_c(t, e, risk, n_bootstrap=50)
    assert c["c_index"] == pytest.approx(8 / 9)
    assert c["ci_low"] <= c["c_index"] <= c["ci_high"]


@pytest.mark.parametrize(
    ("t", "e", "message"),
    [([1, -2, 3], [1, 0, 1], "negative times in rows 1"), ([1, None, 3], [1, 0, 1], "rows 1"),
     ([1, 2, 3], [1, 2, 0], "events must be 0 \\(censored\\) or 1 \\(event\\); rows 1")],
)  # fmt: skip
def test_bad_survival_columns_name_the_column_and_rows(t, e, message):
    df = pd.DataFrame({"os_time": t, "os_event": e, "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SurvivalDataError, match=message):
        cox(df, "os_time", "os_event", ["x"])
