"""Separation in logistic regression, and Firth's penalised likelihood as its remedy.

When a combination of predictors splits responders from non-responders perfectly (complete
separation) or up to ties on the boundary (quasi-complete), the maximum-likelihood estimate does
not exist: coefficients run off to infinity, odds ratios of 1e13 with CIs [0, inf] come back.
`detect_separation` finds it exactly with the linear program of Konis (2007), the method of R's
`detectseparation`/`brglm2::detect_separation`. `firth_logit` fits Firth's (1993) penalised
likelihood, whose estimates are finite under separation and equal the bias-reduced estimates of
R's `brglm2::brglmFit(type = "AS_mean")` for the logit link; its standard errors are the inverse
Fisher information at the estimate, as brglm2 reports them (Wald CIs and p-values). Both are checked
against R (tests/study/test_firth.py). Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.special import expit

#: What the study does about a separated logistic model, as the report and results.json name it.
FIRTH_REMEDY = "Firth's penalised likelihood (finite estimates; Wald CIs from its information matrix)"


@dataclass(frozen=True)
class Separation:
    """Whether (and how) the outcome is separated by the predictors.

    Attributes:
        kind: "none", "quasi-complete" or "complete".
        direction: a separating direction of the coefficients (intercept first), scaled to the
            standardised predictors, or None.
        variables: the predictors (not the intercept) that take part in the separating direction.
    """

    kind: str
    direction: tuple[float, ...] | None = None
    variables: tuple[str, ...] = ()

    @property
    def separated(self) -> bool:
        return self.kind != "none"


def detect_separation(X: np.ndarray, y: np.ndarray, names: list[str] | None = None, *, tol: float = 1e-7) -> Separation:
    """Konis' linear program on the design `X` (n x p, its first column the intercept).

    With s = 2y - 1, the data are separated when some beta != 0 gives s_i x_i'beta >= 0 for every
    patient: maximise sum_i s_i x_i'beta subject to that and |beta_j| <= 1; an optimum above zero
    is (quasi-)complete separation. Complete separation is when a direction makes every s_i x_i'beta
    strictly positive (the LP maximising the smallest margin finds it). Predictor columns are
    standardised first so that the tolerance means the same for every unit.
    """
    from scipy.optimize import linprog

    X = np.asarray(X, float)
    y = np.asarray(y, int)
    n, p = X.shape
    names = names or [f"x{j}" for j in range(1, p)]
    Z = X.copy()
    sd = Z[:, 1:].std(axis=0)
    sd[sd == 0] = 1.0
    Z[:, 1:] = (Z[:, 1:] - Z[:, 1:].mean(axis=0)) / sd
    A = (2 * y - 1)[:, None] * Z  # row i: s_i x_i
    # complete: maximise t with A beta >= t, |beta| <= 1, t <= 1
    c = np.r_[np.zeros(p), -1.0]
    res = linprog(c, A_ub=np.c_[-A, np.ones(n)], b_ub=np.zeros(n), bounds=[(-1, 1)] * p + [(None, 1)], method="highs")
    if res.status == 0 and -res.fun > tol:
        beta = res.x[:p]
        return Separation("complete", tuple(float(b) for b in beta), _involved(beta, names, tol))
    # quasi-complete: maximise sum(A beta) with A beta >= 0
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(n), bounds=[(-1, 1)] * p, method="highs")
    if res.status == 0 and -res.fun > tol * n:
        beta = res.x
        return Separation("quasi-complete", tuple(float(b) for b in beta), _involved(beta, names, tol))
    return Separation("none")


def smallest_separating(X: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[str, ...]:
    """The fewest predictors (with the intercept) that already separate the outcome: the first
    separated subset, by size, then in column order; all predictors if only all of them do."""
    from itertools import combinations

    X = np.asarray(X, float)
    for k in range(1, len(names) + 1):
        for cols in combinations(range(len(names)), k):
            sub = X[:, [0, *(c + 1 for c in cols)]]
            if detect_separation(sub, y, [names[c] for c in cols]).separated:
                return tuple(names[c] for c in cols)
    return tuple(names)


def _involved(beta: np.ndarray, names: list[str], tol: float) -> tuple[str, ...]:
    scale = max(1.0, float(np.abs(beta).max()))
    return tuple(n for n, b in zip(names, beta[1:], strict=True) if abs(b) > 1e3 * tol * scale)


@dataclass(frozen=True)
class FirthFit:
    """Firth's penalised-likelihood logistic fit: coefficients, standard errors (inverse Fisher
    information at the estimate), Wald z and p, the penalised log-likelihood and iterations."""

    coef: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    loglik: float
    iterations: int

    def conf_int(self, level: float = 0.95) -> np.ndarray:
        q = sps.norm.ppf(0.5 + level / 2)
        return np.c_[self.coef - q * self.se, self.coef + q * self.se]


def _penalised_loglik(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    eta = X @ beta
    ll = float(np.sum(y * eta - np.logaddexp(0, eta)))
    w = expit(eta) * expit(-eta)
    sign, logdet = np.linalg.slogdet(X.T @ (w[:, None] * X))
    return ll + 0.5 * logdet if sign > 0 else -np.inf


def _modified_score(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Firth's modified score U*(b) = X'(y - p + h (1/2 - p)) (the gradient of the penalised
    log-likelihood) and the inverse Fisher information (X'WX)^-1 at `beta`."""
    pr = expit(X @ beta)
    w = pr * (1 - pr)
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    h = w * np.einsum("ij,jk,ik->i", X, cov, X)
    return X.T @ (y - pr + h * (0.5 - pr)), cov


def firth_logit(X: np.ndarray, y: np.ndarray, *, max_iter: int = 200, tol: float = 1e-9, max_step: float = 5.0) -> FirthFit:
    """Maximise Firth's penalised log-likelihood l(b) + 1/2 log|X'WX| (`X` includes the intercept).

    Each iteration takes a Newton step on the penalised likelihood (its Hessian by central
    differences of the exact gradient U*, which converges quadratically) when that Hessian is
    negative definite, else Firth's modified scoring step (X'WX)^-1 U* as logistf does; steps are
    capped at `max_step` and halved until the penalised likelihood does not fall. Converged when
    the largest |U*| is below `tol` times the number of patients."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    beta = np.zeros(X.shape[1])
    current = _penalised_loglik(X, y, beta)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        score, cov = _modified_score(X, y, beta)
        if np.abs(score).max() < tol * len(y):
            break
        step = cov @ score
        eps = 1e-5 * np.maximum(1.0, np.abs(beta))
        H = np.empty((len(beta), len(beta)))
        for j in range(len(beta)):
            e = np.zeros(len(beta))
            e[j] = eps[j]
            H[:, j] = (_modified_score(X, y, beta + e)[0] - _modified_score(X, y, beta - e)[0]) / (2 * eps[j])
        H = (H + H.T) / 2
        if np.all(np.linalg.eigvalsh(H) < 0):
            step = np.linalg.solve(-H, score)
        biggest = float(np.abs(step).max())
        if biggest > max_step:
            step *= max_step / biggest
        for _ in range(30):  # step halving
            if _penalised_loglik(X, y, beta + step) >= current - 1e-12:
                break
            step /= 2
        beta = beta + step
        current = _penalised_loglik(X, y, beta)
    else:
        raise np.linalg.LinAlgError(f"Firth's logistic regression did not converge in {max_iter} iterations")
    _, cov = _modified_score(X, y, beta)
    se = np.sqrt(np.diag(cov))
    z = beta / se
    return FirthFit(beta, se, z, 2 * sps.norm.sf(np.abs(z)), current, iterations)
