"""Staging systems against the best model (`srgan3d.study.comparators`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import toy_radiomics_cohort

from srgan3d.study.config import ModelingConfig
from srgan3d.study.modeling import run_modeling

_cohort = toy_radiomics_cohort


def test_staging_comparator_orientation_is_fixed_on_training_data():
    pre, post, clin, y = _cohort(n=120, seed=5)
    rng = np.random.default_rng(0)
    stage = pd.DataFrame({"bclc": np.clip(np.round(2 - y + rng.normal(0, 0.7, len(y))), 0, 4)}, index=pre.index)
    from srgan3d.study.comparators import compare_staging

    res = run_modeling(pre, post, clin, y, ModelingConfig(n_bootstrap=0, seed=3, classifiers=("lr",), panel_bootstrap=0))
    sets = res.split.indices(list(pre.index))
    best = res.predictions["radiomics_post_sr"].to_numpy()
    (row,) = compare_staging(stage, y, sets, "radiomics_post_sr", best)
    assert row.comparator == "bclc" and row.direction == "higher = non-response"
    assert row.roc["test"].auc > 0.6 and 0 <= row.delong_vs_best["test"].p_value <= 1
