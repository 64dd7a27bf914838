"""Separation detection and Firth's logistic regression against R.

Reference values: R 4.2.2 with brglm2 0.9 (Debian bookworm's r-base-core, r-cran-brglm2), where
`glm(f, family = binomial, data = d, method = "brglmFit", type = "AS_mean")` is Firth's penalised
likelihood for the logit link; `coef(summary(m))` printed with options(digits = 12):

    d1: y ~ x1 + x2 (complete separation by x1, built so: x1 > 2.5 <=> y = 1)
                   Estimate     Std. Error         z value        Pr(>|z|)
    (Intercept) -6.329792488889 3.834389323459 -1.650795460482 0.0987803473949
    x1           2.420766242133 1.428350310425  1.694798695015 0.0901136151415
    x2           0.251488322056 0.837567260684  0.300260449353 0.7639784989661
    d2: y ~ x1 (quasi-complete: y = 1 above x1 = 3, both outcomes at 3)
    (Intercept) -5.32225575352 3.20777032014 -1.65917607009 0.0970803181527
    x1           1.77408525117 1.03637422498  1.71181915607 0.0869300007262
    d3: y ~ x1 + x2 (no separation; plain glm converges, fitted range 0.104-0.922)
    (Intercept) -0.399886169569 1.296916187885 -0.308336169526 0.757826546524
    x1           0.681788601113 0.610891830132  1.116054541056 0.264398789113
    x2          -1.299082619553 1.223150015427 -1.062079551296 0.288199572427

Plain `glm` on d1 and d2 returns coefficients of -488/199 and -60/20 with fitted probabilities
of 2.2e-16 and 1: the estimates that do not exist.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.firth import detect_separation, firth_logit
from srgan3d.study.logistic import Logistic

D1 = pd.DataFrame({
    "y": [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
    "x1": [0.5, 1.1, 1.6, 2.0, 2.2, 2.4, 2.6, 2.9, 3.3, 3.8, 4.1, 4.9],
    "x2": [1.2, -0.3, 0.8, 2.1, -1.0, 0.4, 0.3, 1.7, -0.6, 0.9, -1.4, 0.2],
})  # fmt: skip
D2 = pd.DataFrame({"y": [0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1], "x1": [1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5]})
D3 = pd.DataFrame({
    "y": [0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1],
    "x1": [0.2, 0.9, 1.1, 1.4, 1.5, 2.0, 2.2, 2.5, 2.7, 3.1, 3.3, 3.9, 1.8, 0.6],
    "x2": [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0],
})  # fmt: skip
R_FIRTH = {
    "d1": ([-6.329792488889, 2.420766242133, 0.251488322056], [3.834389323459, 1.428350310425, 0.837567260684],
           [0.0987803473949, 0.0901136151415, 0.7639784989661]),
    "d2": ([-5.32225575352, 1.77408525117], [3.20777032014, 1.03637422498], [0.0970803181527, 0.0869300007262]),
    "d3": ([-0.399886169569, 0.681788601113, -1.299082619553], [1.296916187885, 0.610891830132, 1.223150015427],
           [0.757826546524, 0.264398789113, 0.288199572427]),
}  # fmt: skip
DATA = {"d1": (D1, ["x1", "x2"]), "d2": (D2, ["x1"]), "d3": (D3, ["x1", "x2"])}


def _design(name: str) -> tuple[np.ndarray, np.ndarray]:
    d, cols = DATA[name]
    return np.c_[np.ones(len(d)), d[cols].to_numpy(float)], d["y"].to_numpy(int)


@pytest.mark.parametrize("name", ["d1", "d2", "d3"])
def test_firth_matches_brglm2(name: str) -> None:
    X, y = _design(name)
    fit = firth_logit(X, y)
    coef, se, p = R_FIRTH[name]
    # brglm2 stops when its step falls below epsilon = 1e-6: its values are exact to about that
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fit.se, se, rtol=1e-5)
    np.testing.assert_allclose(fit.p, p, rtol=1e-5)


def test_separation_kinds_as_built() -> None:
    X, y = _design("d1")
    s = detect_separation(X, y, ["x1", "x2"])
    assert s.kind == "complete" and "x1" in s.variables
    X, y = _design("d2")
    assert detect_separation(X, y, ["x1"]).kind == "quasi-complete"
    X, y = _design("d3")
    assert detect_separation(X, y, ["x1", "x2"]).kind == "none"
    # a binary predictor with no responder where it is 0, both outcomes where it is 1: quasi-complete
    x4 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    y4 = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 1])
    assert detect_separation(np.c_[np.ones(10), x4], y4, ["x"]).kind == "quasi-complete"


def test_logistic_falls_back_to_firth_on_separation() -> None:
    d, cols = DATA["d1"]
    m = Logistic(cols).fit(d, d["y"].to_numpy())
    assert m.separation_.kind == "complete"
    assert m.method_ == "firth"
    table = m.table_.set_index("variable")
    assert np.all(np.isfinite(table[["odds_ratio", "or_ci_low", "or_ci_high", "p_value"]].to_numpy()))
    np.testing.assert_allclose(table["coefficient"], R_FIRTH["d1"][0], rtol=1e-5, atol=1e-7)
    sd = d["x1"].std(ddof=1) if d["x1"].nunique() > 2 else 1.0  # odds ratios per SD of a continuous variable
    np.testing.assert_allclose(table.loc["x1", "or_ci_high"],
                               np.exp((2.420766242133 + 1.959963984540054 * 1.428350310425) * sd), rtol=1e-5)  # fmt: skip
    # no separation: maximum likelihood, as before
    d, cols = DATA["d3"]
    m = Logistic(cols).fit(d, d["y"].to_numpy())
    assert m.separation_.kind == "none" and m.method_ == "ml"
    np.testing.assert_allclose(m.params_.to_numpy(), [-0.646516694959, 0.943844099154, -1.697101788846], rtol=1e-6)


def test_the_fewest_separating_predictors_are_named():
    from srgan3d.study.firth import smallest_separating

    X, y = _design("d1")
    assert smallest_separating(X, y, ["x1", "x2"]) == ("x1",)
    d, cols = DATA["d1"]
    note = Logistic(["x2", "x1"]).fit(d, d["y"].to_numpy()).fit_note()
    assert note.separation == "complete" and note.separating_variables == ("x1",) and note.method == "Firth"
