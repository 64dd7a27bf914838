"""The five-classifier panel: fitted on the training rows only, its best pick chosen there, its
thresholds on out-of-fold predictions, its numbers those of `srgan3d.study.stats`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import toy_radiomics_cohort

from srgan3d.study import stats
from srgan3d.study.cohort import split_patients
from srgan3d.study.config import ModelingConfig, parse_classifiers
from srgan3d.study.modeling import run_modeling
from srgan3d.study.panel import PanelFit, _out_of_fold, _pick, fit_classifier

_cohort = toy_radiomics_cohort


@pytest.mark.slow  # five classifiers with their bootstrap: ~20 s
def test_the_classifier_panel_finds_the_signal_and_picks_its_best_on_training_data():
    from srgan3d.study import stats

    pre, post, clin, y = _cohort(n=120, seed=1)
    res = run_modeling(pre, post, clin, y, ModelingConfig(n_bootstrap=0, seed=0, panel_bootstrap=3))
    panel = res.panel
    assert set(panel.models) == {"lr", "svm", "knn", "xgboost", "mlp"} and not panel.skipped
    test = np.isin(np.arange(len(y)), split_patients(y, test_size=0.2, seed=0)[1])
    for name, images in panel.models.items():
        assert set(images) == {"pre", "post"}
        post_auc = images["post"].roc["test"].auc
        assert post_auc > 0.7, (name, post_auc)  # f1 carries a 2-SD signal after SR
        assert 0 <= images["post"].corrected_auc <= 1
        # the DeLong numbers in the panel are those of srgan3d.stats on the same scores
        p = res.panel_predictions[f"{name}_post"].to_numpy()
        assert images["post"].roc["test"].auc == stats.roc_auc_ci(y[test], p[test]).auc
    best = panel.best
    cv = {(n, i): m.cv_auc for n, ims in panel.models.items() for i, m in ims.items()}
    assert cv[(best.classifier, best.image)] == max(cv.values())
    pairs = {(d.classifier, d.a, d.b) for d in panel.delong["test"]}
    assert ("svm", "post", "pre") in pairs and ("knn", "pre", "clinical") in pairs


def test_unknown_classifier_is_named():
    with pytest.raises(ValueError, match="unknown classifier.*forest.*choose from lr, svm"):
        ModelingConfig(classifiers=("lr", "forest"))


def test_too_few_patients_for_inner_cv_skip_the_panel_with_a_reason():
    from srgan3d.study.panel import run_panel

    pre, post, clin, y = _cohort(n=40, seed=4)
    train = np.arange(30)
    y = y.copy()
    y[train] = 0
    y[0] = 1  # one responder in training
    out, probs, _ = run_panel(pre, post, y, {"train": train, "test": np.arange(30, 40)}, {"pre": ["f0"], "post": ["f1"]}, {},
                           n_bootstrap=0)  # fmt: skip
    assert out.models == {} and all("inner cross-validation" in v for v in out.skipped.values()) and probs.empty


def test_classifier_names_are_read_as_the_option_is_written():
    from srgan3d.study.config import CLASSIFIER_NAMES
    from srgan3d.study.results import CLASSIFIER_LABELS

    assert parse_classifiers(" LR, svm,lr ,") == ("lr", "svm")
    assert parse_classifiers(["xgboost", "MLP"]) == ("xgboost", "mlp")
    assert tuple(CLASSIFIER_LABELS) == CLASSIFIER_NAMES  # the report names every classifier the option takes


def _fit(name: str, image: str, cv_auc: float) -> PanelFit:
    return PanelFit(name=name, image=image, features=["f0"], model=None, cv_auc=cv_auc, params={}, warnings=[])  # type: ignore[arg-type]


def test_the_best_classifier_is_the_highest_training_cv_auc_and_post_sr_wins_a_tie():
    fits = {("lr", "pre"): _fit("lr", "pre", 0.81), ("svm", "post"): _fit("svm", "post", 0.79),
            ("knn", "pre"): _fit("knn", "pre", 0.70)}  # fmt: skip
    assert _pick(fits).key == "lr_pre"
    fits[("lr", "post")] = _fit("lr", "post", 0.81)
    best = _pick(fits)
    assert best.key == "lr_post" and best.cv_auc == 0.81 and "test sets play no part" in best.rule
    assert _pick({}) is None


def test_out_of_fold_predictions_come_from_fits_that_did_not_see_the_patient():
    pre, _, _, y = _cohort(n=60, seed=2)
    train = np.arange(45)
    fit = fit_classifier("lr", "pre", pre.iloc[train], y[train], ["f0", "f1"], seed=0, folds=5)
    oof = _out_of_fold(fit, pre, y, train, seed=0, folds=5)
    assert np.isnan(oof[45:]).all() and np.isfinite(oof[train]).all()
    # each fold by hand: refit with the chosen hyperparameters on the other folds
    for fit_rows, held in stats.stratified_folds(y[train], 5, 0):
        rows = train[fit_rows]
        refit = fit_classifier("lr", "pre", pre.iloc[rows], y[rows], ["f0", "f1"], seed=0, folds=5, params=fit.params)
        assert oof[train[held]] == pytest.approx(refit.predict_proba(pre.iloc[train[held]]), abs=1e-12)
    # and not the in-sample fit's predictions
    assert not np.allclose(oof[train], fit.predict_proba(pre.iloc[train]))


def test_fixed_hyperparameters_reproduce_the_grid_searchs_fit():
    pre, _, _, y = _cohort(n=60, seed=5)
    searched = fit_classifier("svm", "pre", pre, y, ["f0", "f1", "f2"], seed=1, folds=4)
    fixed = fit_classifier("svm", "pre", pre, y, ["f0", "f1", "f2"], seed=1, folds=4, params=searched.params)
    assert fixed.predict_proba(pre) == pytest.approx(searched.predict_proba(pre), abs=1e-12)


def test_the_panels_delong_comparisons_are_those_of_stats_on_its_predictions():
    pre, post, clin, y = _cohort(n=100, seed=6)
    res = run_modeling(pre, post, clin, y, ModelingConfig(n_bootstrap=0, seed=0, panel_bootstrap=0,
                                                          classifiers=("lr", "knn")))  # fmt: skip
    test = np.isin(np.arange(len(y)), split_patients(y, test_size=0.2, seed=0)[1])
    pred = res.panel_predictions
    (d,) = [d for d in res.panel.delong["test"] if (d.classifier, d.a, d.b) == ("knn", "post", "pre")]
    ref = stats.delong_test(y[test], pred["knn_post"].to_numpy()[test], pred["knn_pre"].to_numpy()[test])
    assert (d.difference, d.p_value, d.ci_low) == pytest.approx((ref.difference, ref.p_value, ref.ci_low), abs=1e-12)
    m = res.panel.models["knn"]["post"]
    # the threshold is chosen on the out-of-fold training predictions, and the operating point uses it
    train = ~test
    assert m.threshold == stats.held_out_threshold(y[train], res.panel_oof["knn_post"].to_numpy()[train],
                                                   pred["knn_post"].to_numpy()[train])  # fmt: skip
    op = stats.operating_point(y[test], pred["knn_post"].to_numpy()[test], m.threshold)
    assert m.operating_points["test"] == op
