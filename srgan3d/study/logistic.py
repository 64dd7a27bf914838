"""Logistic regression with odds ratios, 95% CIs and p-values: maximum likelihood (statsmodels),
or Firth's penalised likelihood where the training data are separated (`srgan3d.study.firth`).
The clinical model, RCR and DLRCR are fitted with it. Imports neither torch nor pyradiomics.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from srgan3d.study.results import FitNote

log = logging.getLogger(__name__)


@dataclass
class Logistic:
    """Logistic regression with odds ratios, 95% CIs and p-values.

    Maximum likelihood (statsmodels; Wald CIs and p) when the estimate exists. When the predictors
    separate the outcome (complete or quasi-complete separation, found exactly by
    `srgan3d.study.firth.detect_separation`), the maximum-likelihood estimate does not exist and
    Firth's penalised likelihood is fitted instead: `separation_` says which, `method_` is "ml" or
    "firth", and every odds ratio stays finite.
    """

    variables: list[str]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Logistic:
        import statsmodels.api as sm

        from srgan3d.study.firth import detect_separation, firth_logit

        design = sm.add_constant(X[self.variables].astype(float), has_constant="add")
        self._units = effect_units(X[self.variables])
        yv = np.asarray(y, float)
        self.separation_ = detect_separation(design.to_numpy(), yv.astype(int), list(self.variables))
        self._data = (design.to_numpy(), yv.astype(int))  # for `fit_note`
        if not self.separation_.separated:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res = sm.Logit(yv, design).fit(disp=0, maxiter=200, method="newton")
                except (np.linalg.LinAlgError, ValueError) as exc:  # near-singular: Firth still fits
                    log.debug("maximum likelihood failed (%s); Firth's penalised likelihood instead", exc)
                    res = None
            if res is not None and np.all(np.isfinite(res.bse)):
                self.method_ = "ml"
                self.params_ = res.params
                ci = res.conf_int(0.05)
                self.table_ = self._table(res.params.to_numpy(), ci[0].to_numpy(), ci[1].to_numpy(), res.pvalues.to_numpy())
                return self
        self.method_ = "firth"
        fit = firth_logit(design.to_numpy(), yv)
        self.params_ = pd.Series(fit.coef, index=design.columns)
        ci = fit.conf_int(0.95)
        self.table_ = self._table(fit.coef, ci[:, 0], ci[:, 1], fit.p)
        return self

    def _table(self, coef: np.ndarray, lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> pd.DataFrame:
        """Coefficients per unit of each modelled variable; odds ratios per its `effect_units`
        (per training SD for a continuous variable, per unit for a binary one)."""
        units = [("unit", 1.0), *(self._units[v] for v in self.variables)]
        size = np.array([u[1] for u in units])
        with np.errstate(over="ignore"):  # a near-separated ML fit: an infinite CI bound is the honest answer
            odds, low, high = np.exp(coef * size), np.exp(lo * size), np.exp(hi * size)
        return pd.DataFrame({"variable": ["const", *self.variables], "coefficient": coef, "odds_ratio": odds,
                             "or_ci_low": low, "or_ci_high": high, "p_value": p, "unit": [u[0] for u in units],
                             "unit_size": size})  # fmt: skip

    def fit_note(self) -> FitNote:
        """How the model was fitted, for results.json and the report."""
        from srgan3d.study.firth import FIRTH_REMEDY, smallest_separating

        s = self.separation_
        by = smallest_separating(*self._data, list(self.variables)) if s.separated else ()
        return FitNote(separation=s.kind, separating_variables=tuple(by),
                       method="maximum likelihood" if self.method_ == "ml" else "Firth",
                       remedy=FIRTH_REMEDY if self.method_ == "firth" else None)  # fmt: skip

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        b = self.params_
        return b["const"] + X[self.variables].astype(float).to_numpy() @ b[self.variables].to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return expit(self.decision_function(X))


def effect_units(X: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """The unit each variable's odds or hazard ratio is reported per: ("SD", its sample SD) for a
    continuous variable (more than two distinct values), ("unit", 1.0) for a binary one. Per unit
    of a variable that spans 1 to 100,000 says nothing; per SD is comparable across variables."""
    out: dict[str, tuple[str, float]] = {}
    for v in X.columns:
        x = X[v].astype(float).to_numpy()
        sd = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
        out[str(v)] = ("SD", sd) if len(np.unique(x)) > 2 and sd > 0 else ("unit", 1.0)
    return out
