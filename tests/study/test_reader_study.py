"""The models against radiologists' reads (`srgan3d.study.reader_study`): scales told apart, scores
mapped to 0-1, operating points and AUCs counted by hand, bad values named by patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.reader_study import as_probability, compare_readers, reader_columns, reader_scale


def _table() -> tuple[pd.DataFrame, np.ndarray]:
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    table = pd.DataFrame(
        {
            "reader_2": [5, 4, 2, 1, 3, 2, 4, 1],  # 1-5 confidence scores
            "reader_10": [0.9, 0.6, 0.4, 0.2, 0.7, 0.1, 0.8, 0.3],  # probabilities
            "reader_notes": ["", "", "", "", "", "", "", ""],
        },
        index=pd.Index([f"P{i}" for i in range(8)], name="patient_id"),
    )
    return table, y


def test_reader_columns_scales_and_the_score_mapping():
    table, _ = _table()
    assert reader_columns(table) == ["reader_2", "reader_10"]  # numbered, not sorted as text
    assert reader_scale(table["reader_2"], "reader_2") == "score"
    assert reader_scale(table["reader_10"], "reader_10") == "probability"
    np.testing.assert_allclose(as_probability(table["reader_2"], "score"), [1, 0.75, 0.25, 0, 0.5, 0.25, 0.75, 0])


def test_a_value_outside_both_scales_is_named_with_its_patient():
    table, _ = _table()
    bad = table["reader_2"].astype(float).copy()
    bad["P3"] = 7
    with pytest.raises(ValueError, match=r"column 'reader_2'.*patient P3: reader_2 = 7\.0"):
        reader_scale(bad, "reader_2")


def test_each_reader_against_the_model_on_the_test_set_by_hand():
    table, y = _table()
    best = np.array([0.8, 0.7, 0.6, 0.3, 0.4, 0.2, 0.9, 0.1])
    sets = {"test": np.arange(8)}
    res = compare_readers(table, y, sets, "radiomics_post_sr", best).sets["test"]
    r2, r10 = res.readers
    # reader_2 calls a responder at a score >= 3: P0, P1, P4, P6 -> 3 of 4 responders, 3 of 4 non-responders right
    assert (r2.sensitivity, r2.specificity) == (0.75, 0.75)
    # reader_10 at p >= 0.5: P0, P1, P4, P6 -> the same calls
    assert (r10.sensitivity, r10.specificity) == (0.75, 0.75)
    # AUC by counting responder/non-responder pairs (ties one half): reader_10 ranks 14 of 16 pairs right
    assert r10.roc.auc == pytest.approx(14 / 16)
    # reader_2 (scores 5,4,2,4 against 1,3,2,1): 14 pairs right, one tie (2 vs 2) -> 14.5 / 16
    assert r2.roc.auc == pytest.approx(14.5 / 16)
    assert res.best.auc == pytest.approx(1.0)  # every responder above every non-responder
    mean = (as_probability(table["reader_2"], "score") + table["reader_10"].to_numpy()) / 2
    pos, neg = mean[y == 1], mean[y == 0]
    by_hand = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert res.mean_of_readers is not None and res.mean_of_readers.roc.auc == pytest.approx(by_hand)
    assert 0 <= r2.delong_best_vs_reader.p_value <= 1
