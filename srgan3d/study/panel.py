"""The five-classifier radiomics panel of the companion papers, on the study's one split.

For each image (pre-SR, post-SR) the features are the ones its radscore selected on the training
set (screening, redundancy filter, LASSO: `srgan3d.study.radscore.Radscore`); every classifier
sees exactly those, standardised with training statistics inside its pipeline. Hyperparameters
are chosen by a grid search with stratified inner cross-validation on the training rows only
(scored by ROC AUC; settings within `resampling.TIE_TOLERANCE_AUC` of the best are a tie, won by the
simpler one, so that noise in the features cannot flip the choice); the SVM's probabilities are Platt-calibrated on training folds only. The
"best" classifier is the one with the highest training-set cross-validated AUC, never chosen on
the test set. Imports neither torch nor pyradiomics.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from srgan3d.serialisation import plain
from srgan3d.study import resampling, stats
from srgan3d.study.config import CLASSIFIER_NAMES, SEED_SPREAD
from srgan3d.study.resampling import bootstrap_optimism, resamples
from srgan3d.study.results import (
    TRAIN,
    ClassifierComparison,
    ClassifierResult,
    PanelPick,
    PanelResult,
    tested_sets,
)

if TYPE_CHECKING:
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)
IMAGES = ("pre", "post")
#: A classifier's hyperparameters (scikit-learn's `step__name` keys, as the grid search names them).
HyperParams: TypeAlias = "dict[str, float | int | str | tuple[int, ...] | None]"


def _complexity(name: str, params: HyperParams, n_features: int) -> tuple[float, ...]:
    """How complex a setting is (smaller = simpler), to break inner-CV ties: a stronger penalty,
    a smoother kernel, more neighbours, shallower or slower trees, a smaller network."""
    p = {k.split("__", 1)[-1]: v for k, v in params.items()}

    def num(key: str) -> float:
        v = p[key]
        return float(sum(v)) if isinstance(v, tuple) else float(v)  # type: ignore[arg-type]

    if name == "lr":
        return (num("C"),)
    if name == "svm":
        gamma = 1.0 / max(n_features, 1) if p["gamma"] == "scale" else num("gamma")  # standardised features
        return (num("C"), gamma)
    if name == "knn":
        return (-num("n_neighbors"), float(p["weights"] == "distance"))
    if name == "xgboost":
        return (num("max_depth"), num("learning_rate"))
    if name == "mlp":
        return (num("hidden_layer_sizes"), -num("alpha"))
    return (0.0,)


def _simplest_near_best(name: str, n_features: int) -> Callable[[Mapping[str, object]], int]:
    """GridSearchCV's `refit` rule: of the settings whose mean inner-CV AUC is within
    `resampling.TIE_TOLERANCE_AUC` of the best, the simplest (`_complexity`)."""

    def pick(cv_results: Mapping[str, object]) -> int:
        settings: list[HyperParams] = list(cv_results["params"])  # type: ignore[call-overload]
        complexity = [_complexity(name, prm, n_features) for prm in settings]
        return resampling.simplest_within(np.asarray(cv_results["mean_test_score"], float), complexity)

    return pick


def _search(name: str, seed: int, folds: int, n_features: int = 1) -> GridSearchCV:
    """A grid search (inner CV on the rows it is fitted on) over one classifier's pipeline; ties
    within `resampling.TIE_TOLERANCE_AUC` go to the simpler setting."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grid: dict[str, list[Any]]
    if name == "lr":
        from sklearn.linear_model import LogisticRegression

        clf, grid = LogisticRegression(max_iter=5000), {"C": [0.01, 0.1, 1.0, 10.0]}
    elif name == "svm":
        from sklearn.svm import SVC

        clf, grid = SVC(kernel="rbf", random_state=seed), {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01, 0.1]}
    elif name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        clf, grid = KNeighborsClassifier(), {"n_neighbors": [5, 9, 15], "weights": ["uniform", "distance"]}
    elif name == "xgboost":
        from xgboost import XGBClassifier

        clf = XGBClassifier(n_estimators=100, tree_method="hist", n_jobs=1, random_state=seed, verbosity=0)
        grid = {"max_depth": [2, 3], "learning_rate": [0.05, 0.2]}
    elif name == "mlp":
        from sklearn.neural_network import MLPClassifier

        # lbfgs: small tabular data; enough iterations to converge on them (a fit that still does not is said)
        clf = MLPClassifier(solver="lbfgs", max_iter=5000, random_state=seed)
        grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [0.1, 1.0, 10.0]}
    else:  # parse_classifiers guards this
        raise ValueError(f"unknown classifier {name!r}")
    step = type(clf).__name__.lower()
    pipe = make_pipeline(StandardScaler(), clf)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return GridSearchCV(pipe, {f"{step}__{k}": v for k, v in grid.items()}, scoring="roc_auc", cv=cv,
                        refit=_simplest_near_best(name, n_features))  # fmt: skip


@dataclass
class PanelFit:
    """One classifier fitted on one image's training rows."""

    name: str
    image: str
    features: list[str]
    model: Pipeline  # predict_proba on the features
    cv_auc: float
    params: HyperParams
    warnings: list[str]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X[self.features].to_numpy(float))[:, 1]


def fit_classifier(
    name: str, image: str, X: pd.DataFrame, y: np.ndarray, features: list[str], *, seed: int, folds: int,
    params: HyperParams | None = None,
) -> PanelFit:  # fmt: skip
    """Fit `name` on these (training) rows. With `params` the hyperparameters are fixed (the
    bootstrap refits), otherwise chosen by the inner grid search. Convergence warnings are kept."""
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, int)
    Xv = X[features].to_numpy(float)
    search = _search(name, seed, folds, len(features))
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", ConvergenceWarning)
        if params is None:
            search.fit(Xv, y)
            k = int(search.best_index_)
            best, chosen = search.best_estimator_, dict(search.cv_results_["params"][k])
            cv_auc = float(search.cv_results_["mean_test_score"][k])
        else:
            best = clone(search.estimator).set_params(**params).fit(Xv, y)
            cv_auc, chosen = float("nan"), dict(params)
        if name == "svm":  # probabilities by Platt scaling on training folds only
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            best = CalibratedClassifierCV(clone(best), method="sigmoid", cv=cv).fit(Xv, y)
        caught = sorted({str(x.message).split(".")[0] for x in w if issubclass(x.category, ConvergenceWarning)})
    return PanelFit(name, image, list(features), best, cv_auc, chosen, caught)


def _inner_folds(y: np.ndarray, wanted: int) -> int:
    return int(min(wanted, np.bincount(np.asarray(y, int), minlength=2).min()))


def run_panel(
    pre: pd.DataFrame,
    post: pd.DataFrame,
    y: np.ndarray,
    sets: dict[str, np.ndarray],
    features: dict[str, list[str]],
    reference: dict[str, np.ndarray],
    *,
    classifiers: Sequence[str] = CLASSIFIER_NAMES,
    seed: int = 0,
    cv_folds: int = 5,
    n_bootstrap: int = 25,
    development: np.ndarray | None = None,
    workers: int = 1,
) -> tuple[PanelResult, pd.DataFrame, pd.DataFrame]:
    """Fit the panel on the training set and evaluate it on every other set.

    Args:
        pre, post: features per patient (all rows; only training rows are ever fitted on).
        y: labels; sets: row indices of each set of the study's split (``train`` among them).
        features: the training-selected features of each image ("pre", "post").
        reference: probabilities of the comparator models on all rows (e.g. the clinical model),
            each compared with every classifier by DeLong on each test set.
        n_bootstrap: resamples of the optimism correction (hyperparameters and features fixed as
            chosen on the training set; 0 = skip), over the `development` rows (default: all), in
            `workers` processes.
    Returns: the panel's results, each classifier's probabilities (a column ``{name}_{image}``
        per fitted classifier, one row per patient), and its out-of-fold probabilities of the
        training rows (same columns; NaN for the other rows), on which its threshold is chosen.
    """
    y = np.asarray(y, int)
    train = sets[TRAIN]
    tested = tested_sets(sets)
    folds = _inner_folds(y[train], cv_folds)
    probs = pd.DataFrame(index=pre.index)

    def result(models: dict[str, dict[str, ClassifierResult]], skipped: dict[str, str],
               delong: dict[str, list[ClassifierComparison]], best: PanelPick | None) -> PanelResult:  # fmt: skip
        return PanelResult(classifiers=tuple(classifiers), features={k: tuple(v) for k, v in features.items()},
                           inner_cv_folds=folds, n_bootstrap=n_bootstrap, models=models, skipped=skipped,
                           delong={k: tuple(v) for k, v in delong.items()}, best=best)  # fmt: skip

    if folds < 2:
        msg = (f"only {folds} training patient(s) in the smaller class: inner cross-validation needs at least 2 "
               "per class; the classifier panel was skipped")  # fmt: skip
        log.warning(msg)
        return result({}, {c: msg for c in classifiers}, {}, None), probs, probs.copy()
    data = {"pre": pre, "post": post}
    fits, skipped = _fit_panel(data, y, train, features, classifiers, seed=seed, folds=folds)
    corrected: dict[tuple[str, str], float] = {}
    if n_bootstrap > 0 and fits:
        dev = np.arange(len(y)) if development is None else development
        dev_data = {k: v.iloc[dev] for k, v in data.items()}
        corrected = _optimism(dev_data, y[dev], fits, seed=seed, folds=folds, n_bootstrap=n_bootstrap, workers=workers)
    models: dict[str, dict[str, ClassifierResult]] = {}
    oof = pd.DataFrame(index=pre.index)
    for (name, image), fit in fits.items():
        key = f"{name}_{image}"
        probs[key] = fit.predict_proba(data[image])
        oof[key] = _out_of_fold(fit, data[image], y, train, seed=seed, folds=cv_folds)
        res = _classifier_result(fit, data[image], y, train, tested, probs[key].to_numpy(), oof[key].to_numpy(),
                                 corrected.get((name, image), math.nan))  # fmt: skip
        spread, settings = _seed_spread(fit, data[image], y, train, tested, seed=seed, folds=folds)
        models.setdefault(name, {})[image] = replace(res, seed_spread=spread, seed_settings=settings)
    delong = _panel_delong(probs, y, tested, classifiers, fits, reference)
    return result(models, skipped, delong, _pick(fits)), probs, oof


def _fit_panel(
    data: dict[str, pd.DataFrame], y: np.ndarray, train: np.ndarray, features: dict[str, list[str]],
    classifiers: Sequence[str], *, seed: int, folds: int,
) -> tuple[dict[tuple[str, str], PanelFit], dict[str, str]]:  # fmt: skip
    """Every classifier on every image's training rows; one that fails (or an image without
    features) is skipped with its reason, the rest go on."""
    fits: dict[tuple[str, str], PanelFit] = {}
    skipped: dict[str, str] = {}
    for name in classifiers:
        for image in IMAGES:
            if not features.get(image):
                skipped[f"{name}/{image}"] = f"no features were selected for the {image}-SR image"
                continue
            try:
                fits[(name, image)] = fit_classifier(name, image, data[image].iloc[train], y[train], features[image],
                                                     seed=seed, folds=folds)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one classifier failing leaves the rest of the study
                skipped[f"{name}/{image}"] = f"{type(exc).__name__}: {exc}"
                log.warning("classifier %s on the %s-SR features failed: %s", name, image, exc)
    return fits, skipped


def _seed_spread(
    fit: PanelFit, X: pd.DataFrame, y: np.ndarray, train: np.ndarray, tested: dict[str, np.ndarray], *, seed: int,
    folds: int,
) -> tuple[dict[str, tuple[float, float]], int]:  # fmt: skip
    """The classifier's whole fit (grid search, then the classifier) redone with `SEED_SPREAD`
    inner-CV seeds (the study's seed and the next ones): the lowest and highest AUC on each tested
    set, and how many distinct settings the seeds chose. A seed whose fit fails is left out."""
    aucs: dict[str, list[float]] = {s: [] for s in tested}
    settings = {str(sorted(fit.params.items()))}
    for k in range(SEED_SPREAD):
        try:
            again = fit if k == 0 else fit_classifier(fit.name, fit.image, X.iloc[train], y[train], fit.features,
                                                      seed=seed + k, folds=folds)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one seed failing leaves the others
            log.debug("seed %d refit of %s/%s failed: %s", seed + k, fit.name, fit.image, exc)
            continue
        settings.add(str(sorted(again.params.items())))
        p = again.predict_proba(X)
        for s, i in tested.items():
            aucs[s].append(stats.roc_auc_ci(y[i], p[i]).auc)
    return {s: (float(min(v)), float(max(v))) for s, v in aucs.items() if v}, len(settings)


def _classifier_result(
    fit: PanelFit, X: pd.DataFrame, y: np.ndarray, train: np.ndarray, tested: dict[str, np.ndarray], p: np.ndarray,
    oof: np.ndarray, corrected_auc: float,
) -> ClassifierResult:  # fmt: skip
    """One classifier's results: its threshold (Youden point of its out-of-fold training
    probabilities), AUC and operating point on each tested set."""
    thr = stats.held_out_threshold(y[train], oof[train], p[train])
    return ClassifierResult(
        cv_auc=fit.cv_auc, params={k.split("__", 1)[1]: plain(v) for k, v in fit.params.items()},
        warnings=tuple(fit.warnings), train_auc=stats.roc_auc_ci(y[train], p[train]).auc, threshold=thr,
        roc={s: stats.roc_auc_ci(y[i], p[i]) for s, i in tested.items()},
        operating_points={s: stats.operating_point(y[i], p[i], thr) for s, i in tested.items()},
        corrected_auc=corrected_auc,
        separation=_separation(X.iloc[train], y[train], fit.features) if fit.name == "lr" else None,
    )  # fmt: skip


def _panel_delong(
    probs: pd.DataFrame, y: np.ndarray, tested: dict[str, np.ndarray], classifiers: Sequence[str],
    fits: dict[tuple[str, str], PanelFit], reference: dict[str, np.ndarray],
) -> dict[str, list[ClassifierComparison]]:  # fmt: skip
    """On each tested set: each classifier post- against pre-SR, and each against every reference model."""
    delong: dict[str, list[ClassifierComparison]] = {s: [] for s in tested}
    for s, i in tested.items():
        for name in classifiers:
            if (name, "pre") in fits and (name, "post") in fits:
                a, b = probs[f"{name}_post"].to_numpy()[i], probs[f"{name}_pre"].to_numpy()[i]
                delong[s].append(ClassifierComparison.of(name, "post", "pre", stats.delong_test(y[i], a, b)))
            for image in IMAGES:
                if (name, image) not in fits:
                    continue
                p = probs[f"{name}_{image}"].to_numpy()[i]
                for ref_name, ref in reference.items():
                    d = stats.delong_test(y[i], p, np.asarray(ref)[i])
                    delong[s].append(ClassifierComparison.of(name, image, ref_name, d))
    return delong


def _pick(fits: dict[tuple[str, str], PanelFit]) -> PanelPick | None:
    """The best classifier and image: the highest training cross-validated AUC (post-SR on a tie)."""
    if not fits:
        return None
    (name, image), fit = max(fits.items(), key=lambda kv: (kv[1].cv_auc, kv[0][1] == "post"))
    return PanelPick(classifier=name, image=image, cv_auc=fit.cv_auc,
                     rule="highest training-set cross-validated AUC (inner CV); the test sets play no part")


def _separation(X: pd.DataFrame, y: np.ndarray, features: list[str]) -> str:
    """Separation of the training rows by the logistic regression's features (none, quasi-complete,
    complete). Its L2 penalty keeps the estimates finite either way; the report says which."""
    from srgan3d.study.firth import detect_separation

    design = np.c_[np.ones(len(X)), X[features].to_numpy(float)]
    return detect_separation(design, y, list(features)).kind


def _out_of_fold(fit: PanelFit, X: pd.DataFrame, y: np.ndarray, train: np.ndarray, *, seed: int, folds: int) -> np.ndarray:
    """The classifier's out-of-fold probabilities of the training rows (NaN elsewhere): refitted
    with its chosen hyperparameters on the study's folds (`resampling.out_of_fold`), each fold
    predicted by the fit that did not see it. Its operating threshold is chosen on these."""

    def fit_predict(fit_rows: np.ndarray, held: np.ndarray) -> np.ndarray:
        rows = train[fit_rows]
        refit = fit_classifier(fit.name, fit.image, X.iloc[rows], y[rows], fit.features, seed=seed,
                               folds=_inner_folds(y[rows], folds), params=fit.params)  # fmt: skip
        return refit.predict_proba(X.iloc[train[held]])

    out = np.full(len(y), np.nan)
    # any failure of one fold's refit leaves its patients without a prediction, the rest go on
    out[train] = resampling.out_of_fold(y[train], folds, seed, fit_predict, what=f"{fit.name}/{fit.image}",
                                        errors=(Exception,))  # fmt: skip
    return out


def _refit_optimism(
    data: dict[str, pd.DataFrame], y: np.ndarray, specs: list[tuple[str, str, list[str], HyperParams]],
    seed: int, folds: int, b: np.ndarray,
) -> dict[tuple[str, str], float]:  # fmt: skip
    """One bootstrap resample `b`: each classifier refitted on it (features and hyperparameters
    fixed); its AUC there minus its AUC on the original rows. A refit that fails is left out."""
    out = {}
    for name, image, features, params in specs:
        X = data[image]
        try:
            refit = fit_classifier(name, image, X.iloc[b], y[b], features, seed=seed, folds=folds, params=params)
        except Exception as exc:  # noqa: BLE001 - a resample that cannot be fitted is left out
            log.debug("bootstrap refit of %s/%s failed: %s", name, image, exc)
            continue
        on_boot = stats.roc_auc_ci(y[b], refit.predict_proba(X.iloc[b])).auc
        out[(name, image)] = on_boot - stats.roc_auc_ci(y, refit.predict_proba(X)).auc
    return out


def _optimism(
    data: dict[str, pd.DataFrame], y: np.ndarray, fits: dict[tuple[str, str], PanelFit], *, seed: int, folds: int,
    n_bootstrap: int, workers: int = 1,
) -> dict[tuple[str, str], float]:  # fmt: skip
    """Harrell's optimism-corrected AUC over these patients (`resampling.bootstrap_optimism`, the
    panel's seed stream), each classifier refitted on each stratified resample with its features
    and hyperparameters fixed."""
    apparent: dict[tuple[str, str], float] = {}
    for (name, image), fit in fits.items():
        full = fit_classifier(name, image, data[image], y, fit.features, seed=seed, folds=folds, params=fit.params)
        apparent[(name, image)] = stats.roc_auc_ci(y, full.predict_proba(data[image])).auc
    draws = resamples(y, n_bootstrap, seed, "panel bootstrap")
    specs = [(name, image, fit.features, fit.params) for (name, image), fit in fits.items()]
    refit = partial(_refit_optimism, data, y, specs, seed, folds)
    return {k: e.corrected_auc for k, e in bootstrap_optimism(apparent, refit, draws, workers=workers).items()}
