"""The radiomics signature (radscore): feature screening, the redundancy filter and a
LASSO-logistic model with a cross-validated penalty, fitted on the training rows only.
Imports neither torch nor pyradiomics.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit

from srgan3d.study.config import ModelingConfig
from srgan3d.study.resampling import simplest_within


@dataclass
class Radscore:
    """Feature selection and LASSO-logistic signature, fitted on training rows only.

    Steps: drop features that are not finite or constant; Mann-Whitney screening; redundancy
    removal by |Spearman|; standardisation; L1-penalised logistic regression with C chosen by
    stratified cross-validated ROC AUC. The radscore is the model's linear predictor
    ``intercept + sum(coef * (x - mean) / sd)`` over the features with non-zero coefficients.
    """

    seed: int = 0
    config: ModelingConfig = field(default_factory=ModelingConfig)
    # fitted (set by `fit`): training mean and SD of the kept features
    mean_: np.ndarray = field(init=False, repr=False)
    sd_: np.ndarray = field(init=False, repr=False)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Radscore:
        y = np.asarray(y, int)
        Z = self._screen(X, y)
        coef, intercept, self.C_, self.fallback_ = self._lasso(Z, y)
        nz = coef != 0
        self.features_ = [f for f, k in zip(self.screened_, nz, strict=True) if k]
        self.coef_ = coef[nz]
        self.intercept_ = intercept
        self.mean_, self.sd_ = self.mean_[nz], self.sd_[nz]
        return self

    def _screen(self, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        """Finite non-constant features, Mann-Whitney screening, the redundancy filter; sets
        `screened_`, `screen_p_`, `mean_`, `sd_` and returns the standardised candidates."""
        cfg = self.config
        Xv = X.to_numpy(float)
        finite = np.all(np.isfinite(Xv), axis=0)
        sd = np.nanstd(Xv, axis=0)
        keep = finite & (sd > 1e-12 * np.maximum(1.0, np.abs(np.nanmean(Xv, axis=0))))
        self.n_features_in_ = X.shape[1]
        self.n_variance_kept_ = int(keep.sum())
        cols = X.columns[keep]
        Xk = Xv[:, keep]
        pvals = sps.mannwhitneyu(Xk[y == 1], Xk[y == 0], axis=0, alternative="two-sided").pvalue
        order = np.argsort(pvals, kind="mergesort")
        passed = order[pvals[order] < cfg.screen_p]
        self.n_screen_passed_ = int(len(passed))
        if len(passed) < cfg.min_screened:
            passed = order[: cfg.min_screened]
        passed = passed[: cfg.max_screened]
        # redundancy: walk features from the smallest p, keep one unless too correlated to a kept one
        rho = sps.spearmanr(Xk[:, passed]).statistic if len(passed) > 1 else np.ones((1, 1))
        rho = np.atleast_2d(rho)
        kept: list[int] = []
        for i in range(len(passed)):
            if all(abs(rho[i, j]) <= cfg.max_abs_spearman for j in kept):
                kept.append(i)
        candidates = passed[kept]
        self.screened_ = [str(cols[i]) for i in candidates]
        self.screen_p_ = {str(cols[i]): float(pvals[i]) for i in candidates}
        Xc = Xk[:, candidates]
        self.mean_ = Xc.mean(axis=0)
        self.sd_ = Xc.std(axis=0, ddof=0)
        return (Xc - self.mean_) / self.sd_

    def _lasso(self, Z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        """LASSO-logistic regression with a cross-validated penalty (ROC AUC; of the penalties whose
        mean AUC is within `TIE_TOLERANCE_AUC` of the best, the strongest): coefficients, intercept,
        C, and whether the fallback was taken."""
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        cfg = self.config
        cv = StratifiedKFold(n_splits=min(cfg.cv_folds, int(np.bincount(y).min())), shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            lasso = LogisticRegressionCV(
                Cs=np.logspace(np.log10(0.005), 1, cfg.n_cs), l1_ratios=(1.0,), solver="liblinear", cv=cv,
                scoring="roc_auc", max_iter=5000,
                random_state=self.seed,  # liblinear draws random numbers: seed them for reproducibility
                use_legacy_attributes=False,
            ).fit(Z, y)  # fmt: skip
        # the strongest penalty whose cross-validated AUC is within TIE_TOLERANCE_AUC of the best: settings
        # that noise alone could reorder are a tie, and the sparser model wins it
        mean_auc = np.asarray(lasso.scores_, float).reshape(-1, len(lasso.Cs_))  # (folds x l1 ratios, Cs)
        k = simplest_within(np.nanmean(mean_auc, axis=0), [(float(c),) for c in lasso.Cs_])
        C = float(lasso.Cs_[k])
        m = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=5000, random_state=self.seed).fit(Z, y)
        coef, intercept = m.coef_.ravel(), float(m.intercept_[0])
        if np.any(coef != 0):
            return coef, intercept, C, False
        # The CV optimum shrank every coefficient to zero; take the strongest penalty that keeps
        # one feature rather than a constant score (recorded in `fallback_`).
        for c in lasso.Cs_:
            m = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=5000, random_state=self.seed).fit(Z, y)
            if np.any(m.coef_ != 0):
                return m.coef_.ravel(), float(m.intercept_[0]), float(c), True
        return coef, intercept, C, True

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Radscore of each row (log-odds scale)."""
        Z = (X[self.features_].to_numpy(float) - self.mean_) / self.sd_
        return self.intercept_ + Z @ self.coef_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return expit(self.decision_function(X))

    def formula(self) -> str:
        terms = [_signed(self.intercept_)] + [
            f"{_signed(c)} x z({f})" for f, c in zip(self.features_, self.coef_, strict=True)
        ]
        return "radscore = " + " ".join(terms)

    def coefficients(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "feature": ["(intercept)", *self.features_],
                "coefficient": [self.intercept_, *self.coef_],
                "train_mean": [np.nan, *self.mean_],
                "train_sd": [np.nan, *self.sd_],
                "screen_p": [np.nan, *(self.screen_p_[f] for f in self.features_)],
            }
        )


def _signed(c: float) -> str:
    """'+0.1234', or the scientific form where 4 decimals would print a non-zero value as 0.0000."""
    return f"{c:+.2e}" if c != 0 and abs(c) < 5e-5 else f"{c:+.4f}"
