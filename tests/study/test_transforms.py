"""Skewed positive clinical variables on log10 by a stated rule, ratios per SD, and no ratio or
coefficient printed as 1.000 / 0.0000 when it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from srgan3d.study.config import ModelingConfig, parse_transforms
from srgan3d.study.report_format import fmt_coef, fmt_ratio
from srgan3d.study.transforms import SKEW_LIMIT, apply_transforms, choose_transforms


def _clin(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "afp_ng_ml": 10 ** rng.normal(2.0, 1.2, n),  # lognormal: a lab value spanning decades
        "age_years": rng.normal(60, 9, n),
        "pvt": rng.integers(0, 2, n).astype(float),
        "shift": rng.normal(0, 1, n) ** 3,  # skewed but not positive
    })  # fmt: skip


def test_the_skewness_rule_picks_only_heavily_skewed_positive_variables():
    clin = _clin()
    recs = {r.variable: r for r in choose_transforms(clin, {})}
    # the rule's skewness is the adjusted Fisher-Pearson G1 (scipy's bias-corrected skew, an independent code)
    for col in ("afp_ng_ml", "age_years", "shift"):
        assert recs[col].skewness == pytest.approx(stats.skew(clin[col], bias=False), abs=1e-4)  # recorded to 4 decimals
    assert recs["afp_ng_ml"].skewness > SKEW_LIMIT and recs["afp_ng_ml"].transform == "log10"
    assert recs["afp_ng_ml"].modelled_as == "log10(afp_ng_ml)" and "skewness" in recs["afp_ng_ml"].reason
    assert recs["age_years"].transform == "none" and recs["pvt"].transform == "none" and recs["pvt"].skewness is None
    assert recs["shift"].transform == "none" and "not all values positive" in recs["shift"].reason
    out = apply_transforms(clin, tuple(recs.values()))
    assert list(out.columns) == ["afp_ng_ml", "age_years", "pvt", "shift", "log10(afp_ng_ml)"]
    pd.testing.assert_frame_equal(out[list(clin.columns)], clin)  # the measured values stay
    np.testing.assert_allclose(out["log10(afp_ng_ml)"], np.log10(clin["afp_ng_ml"]))


def test_the_user_overrides_the_rule_and_bad_requests_are_named():
    clin = _clin()
    recs = {r.variable: r for r in choose_transforms(clin, parse_transforms(["afp_ng_ml=none,age_years=log10"]))}
    assert recs["afp_ng_ml"].transform == "none" and "--transform afp_ng_ml=none" in recs["afp_ng_ml"].reason
    assert recs["age_years"].transform == "log10"
    with pytest.raises(ValueError, match="shift has values <= 0"):
        choose_transforms(clin, {"shift": "log10"})
    with pytest.raises(ValueError, match="bilirubin, which is not among the clinical variables"):
        choose_transforms(clin, {"bilirubin": "log10"})
    with pytest.raises(ValueError, match=r"--transform 'afp=ln': write COLUMN=log10 or COLUMN=none"):
        ModelingConfig(transforms=("afp=ln",))


@pytest.mark.parametrize(
    ("est", "lo", "hi", "shown"),
    [
        (1.2345, 1.01, 1.5, "1.234 [1.010-1.500]"),
        (1.0000123, 0.99999, 1.00003, "1.00001 [0.99999-1.00003]"),  # 5 decimals: the first that tells them from 1
        (1.0, 0.5, 2.0, "1.000 [0.500-2.000]"),  # exactly 1 stays 1.000
    ],
)
def test_ratios_never_print_as_one_when_they_are_not(est, lo, hi, shown):
    assert fmt_ratio(est, lo, hi) == shown


def test_coefficients_never_print_as_zero_when_they_are_not():
    assert fmt_coef(1.2e-5) == "1.20e-05" and fmt_coef(-3e-7) == "-3.00e-07"
    assert fmt_coef(0.0) == "0.0000" and fmt_coef(0.01234) == "0.0123"
