"""Survival analysis against R's survival package (published output) and hand calculations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.survival import SurvivalDataError, cox, harrell_c, kaplan_meier, logrank

DATA = Path(__file__).resolve().parents[1] / "data"

# R 4.2.2, survival 3.5.3 (Debian r-cran-survival), on tests/data/rossi.csv:
#   m <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = d, ties = "efron")
#   print(summary(m)$coefficients, digits = 15); summary(m)$logtest; summary(m)$concordance
#   survdiff(Surv(week, arrest) ~ fin, data = d)$chisq
# (the published Fox & Weisberg appendix prints the same to 5 decimals; see tests/data/README.md)
R_ROSSI = pd.DataFrame(
    {
        "coef": [-0.3794221664858867, -0.0574377426840623, 0.3138997878424986, -0.1497956976665371,
                 -0.4337038779373086, -0.0848710825003947, 0.0914970809852960],
        "hr": [0.684256681443380, 0.944180670710969, 1.368752564026787, 0.860883839037031, 0.648104145008846,
               0.918630704341556, 1.095813577991926],
        "se": [0.1913794807135435, 0.0219994706006800, 0.3079927765574182, 0.2122242962486229, 0.3818680576687913,
               0.1957566719066243, 0.0286485499599737],
        "z": [-1.982564510423169, -2.610869312568230, 1.019179057869817, -0.705836703499065, -1.135742749956522,
              -0.433553971232603, 3.193777036294373],
        "p": [0.04741609486577426, 0.00903123990442286, 0.30811796697727778, 0.48028969400902677,
              0.25606424338063510, 0.66461236567925197, 0.00140424527933257],
        "hr_low": [0.470236717852460, 0.904334547176444, 0.748446943270847, 0.567935356930720, 0.306618333612345,
                   0.625910988322172, 1.035979084424910],
        "hr_high": [0.995684063631141, 0.985782464827456, 2.503161511145257, 1.304938978126596, 1.369908243349530,
                    1.348246614460613, 1.159103900614031],
    },
    index=["fin", "age", "race", "wexp", "mar", "paro", "prio"],
)  # fmt: skip
R_LOGTEST = (33.2659458015687, 7, 2.36204505370061e-05)
R_CONCORDANCE = 0.6403292470997135
R_LOGRANK_FIN = 3.83756957654905


def test_cox_matches_r_coxph_on_the_rossi_data():
    df = pd.read_csv(DATA / "rossi.csv")
    res = cox(df, "week", "arrest", list(R_ROSSI.index))
    assert [t.covariate for t in res.terms] == list(R_ROSSI.index)
    # hazard ratios are reported per SD of a continuous covariate (age, prio) and per unit of a
    # binary one: R's per-unit ratios raised to the covariates' sample SDs
    sd = {c: (df[c].std(ddof=1) if df[c].nunique() > 2 else 1.0) for c in R_ROSSI.index}
    assert {c: res.term(c).unit for c in R_ROSSI.index} == {c: "SD" if c in ("age", "prio") else "unit" for c in sd}
    for col in R_ROSSI.columns:
        ours = [getattr(res.term(c), col) for c in R_ROSSI.index]
        want = [R_ROSSI.loc[c, col] ** sd[c] if col.startswith("hr") else R_ROSSI.loc[c, col] for c in R_ROSSI.index]
        np.testing.assert_allclose(ours, want, rtol=1e-6, err_msg=col)
    # the unit fixed from outside (the study passes the training set's SDs to every set)
    fixed = cox(df, "week", "arrest", list(R_ROSSI.index), units={"age": ("SD", 2.0)}).term("age")
    assert (fixed.unit, fixed.unit_size) == ("SD", 2.0)
    np.testing.assert_allclose([fixed.hr, fixed.hr_low, fixed.hr_high], R_ROSSI.loc["age", ["hr", "hr_low", "hr_high"]] ** 2.0,
                               rtol=1e-6)  # fmt: skip
    lr = res.likelihood_ratio
    assert lr.df == R_LOGTEST[1]
    assert lr.statistic == pytest.approx(R_LOGTEST[0], rel=1e-6) and lr.p == pytest.approx(R_LOGTEST[2], rel=1e-6)
    assert res.concordance == pytest.approx(R_CONCORDANCE, rel=1e-6)
    assert res.n == 432 and res.events == 114
    assert type(res).from_dict(res.to_dict()) == res  # a typed leaf of the result tree
    assert logrank(df, "week", "arrest", "fin").statistic == pytest.approx(R_LOGRANK_FIN, rel=1e-6)


def test_kaplan_meier_and_logrank_match_a_hand_calculation():
    # two groups, a tie, censoring; product-limit by hand
    df = pd.DataFrame({"t": [1, 2, 2, 3, 4, 5, 1, 3, 6, 7], "e": [1, 1, 0, 1, 0, 1, 0, 1, 1, 0],
                       "g": ["a"] * 6 + ["b"] * 4})  # fmt: skip
    a, b = kaplan_meier(df, "t", "e", "g", risk_times=[0, 3])
    s_a = dict(zip(a.times, a.survival, strict=True))
    # group a: at t=1 5/6, t=2 (5/6)(4/5), t=3 x(2/3), t=5 x 0
    assert s_a[1.0] == pytest.approx(5 / 6) and s_a[2.0] == pytest.approx(4 / 6)
    assert s_a[3.0] == pytest.approx(4 / 6 * 2 / 3) and s_a[5.0] == pytest.approx(0.0)
    assert a.at_risk == ((0.0, 6), (3.0, 3)) and b.at_risk == ((0.0, 4), (3.0, 3))
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
    assert r.df == 1 and r.statistic == pytest.approx(o_e**2 / var, rel=1e-9)


def test_harrell_c_counts_concordant_pairs():
    t = np.array([1.0, 2, 3, 4, 5])
    e = np.array([1, 1, 1, 0, 1])
    risk = np.array([5.0, 4, 2, 3, 1])  # higher risk, earlier event, except the pair (3, 4)
    # usable pairs: (i, j) with t_i < t_j and e_i = 1: 4 + 3 + 2 + 0 = 9 ... (1,2),(1,3),(1,4),(1,5),
    # (2,3),(2,4),(2,5),(3,4),(3,5): concordant unless risk_i <= risk_j: (3,4) is discordant
    c = harrell_c(t, e, risk, n_bootstrap=50)
    assert c.c_index == pytest.approx(8 / 9)
    assert c.ci_low <= c.c_index <= c.ci_high


@pytest.mark.parametrize(
    ("t", "e", "message"),
    [([1, -2, 3], [1, 0, 1], "row 1: os_time = -2"), ([1, None, 3], [1, 0, 1], "row 1: os_time = empty"),
     ([1, 2, 3], [1, 2, 0], "row 1: os_event = 2 \\(0 = censored or 1 = event\\)")],
)  # fmt: skip
def test_bad_survival_columns_name_the_column_and_rows(t, e, message):
    df = pd.DataFrame({"os_time": t, "os_event": e, "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SurvivalDataError, match=message):
        cox(df, "os_time", "os_event", ["x"])


def test_every_bad_patient_is_named_with_its_value():
    df = pd.DataFrame({"os_time": [10.0, -5, 3, 8], "os_event": [1, 0, 2, 1]},
                      index=pd.Index(["P001", "P002", "P003", "P004"], name="patient_id"))  # fmt: skip
    with pytest.raises(SurvivalDataError) as err:
        kaplan_meier(df, "os_time", "os_event")
    text = str(err.value)
    assert "patient P002: os_time = -5 " in text and "patient P003: os_event = 2" in text
    assert "P001" not in text and "P004" not in text


def test_risk_times_are_round():
    from srgan3d.study.survival import risk_times

    assert risk_times(26.3) == [0, 5, 10, 15, 20, 25]
    assert risk_times(60) == [0, 10, 20, 30, 40, 50, 60]
    assert risk_times(7.5) == [0, 2, 4, 6]
