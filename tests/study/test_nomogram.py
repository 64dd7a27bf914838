"""The nomogram (`srgan3d.study.nomogram`): its points give back the model's linear predictor."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import toy_radiomics_cohort

from srgan3d.study.cohort import split_patients
from srgan3d.study.config import ModelingConfig
from srgan3d.study.modeling import run_modeling

_cohort = toy_radiomics_cohort


@pytest.mark.slow
def test_nomogram_points_reproduce_the_linear_predictor():
    from srgan3d.study.nomogram import nomogram, nomogram_linear_predictor, nomogram_points

    pre, post, clin, y = _cohort(n=120, seed=2)
    res = run_modeling(pre, post, clin, y, ModelingConfig(n_bootstrap=0, seed=3, classifiers=()))
    model = res.fitted.combined
    X = clin.assign(radscore_post_sr=res.fitted.radscore_post.decision_function(post))
    nomo = nomogram(model, X.iloc[split_patients(y, test_size=0.2, seed=3)[0]])
    total = nomogram_points(nomo, X)
    np.testing.assert_allclose(nomogram_linear_predictor(nomo, total), model.decision_function(X), rtol=1e-10, atol=1e-10)
    assert max(r.max_points for r in nomo.predictors) == pytest.approx(100)
    assert nomo.predictors[0].variable in model.variables
