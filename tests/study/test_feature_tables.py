"""Features computed elsewhere: both layouts, and every problem named with patient and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.feature_tables import FeatureTableError, check_same_features, read_feature_table


def _cohort(tmp_path, n=4) -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": [f"P{k}" for k in range(n)],
        "image": [str(tmp_path / "img" / f"P{k}.nii.gz") for k in range(n)],
        "mask": [str(tmp_path / "msk" / f"P{k}.nii.gz") for k in range(n)],
    })  # fmt: skip


def test_pyradiomics_batch_layout_is_matched_by_image_and_mask(tmp_path):
    cohort = _cohort(tmp_path)
    batch = pd.DataFrame({
        # relative paths, resolved against the feature table's folder; rows in another order
        "Image": ["img/P2.nii.gz", "img/P0.nii.gz", "img/P1.nii.gz", "img/P3.nii.gz"],
        "Mask": ["msk/P2.nii.gz", "msk/P0.nii.gz", "msk/P1.nii.gz", "msk/P3.nii.gz"],
        "Label": [1, 1, 1, 1], "diagnostics_Versions_PyRadiomics": ["v3"] * 4,
        "diagnostics_Mask-original_VoxelNum": [10, 11, 12, 13],
        "original_firstorder_Mean": [2.0, 0.0, 1.0, 3.0], "wavelet-LLH_glcm_Contrast": [0.2, 0.0, 0.1, 0.3],
    })  # fmt: skip
    batch.to_csv(tmp_path / "batch.csv", index=False)
    ft = read_feature_table(tmp_path / "batch.csv", cohort)
    assert ft.layout.startswith("pyradiomics batch")
    assert list(ft.features.columns) == ["original_firstorder_Mean", "wavelet-LLH_glcm_Contrast"]
    assert ft.features["original_firstorder_Mean"].to_dict() == {"P0": 0.0, "P1": 1.0, "P2": 2.0, "P3": 3.0}
    assert list(ft.features.index) == ["P0", "P1", "P2", "P3"] and ft.excluded == []


def test_every_table_problem_is_named_at_once(tmp_path):
    cohort = _cohort(tmp_path)
    pd.DataFrame({
        "patient_id": ["P0", "P1", "P1", "X9"],
        "original_shape_Volume": [1.0, 2.0, 2.0, 3.0],
        "original_glcm_Idm": ["0.1", "0.2", "high", "0.3"],
    }).to_csv(tmp_path / "f.csv", index=False)  # fmt: skip
    with pytest.raises(FeatureTableError) as err:
        read_feature_table(tmp_path / "f.csv", cohort)
    msg = str(err.value)
    assert "row 4: patient P1 is a duplicate of row 3; keep one row per patient" in msg
    assert "row 5: patient X9 is not in the cohort table" in msg
    assert "column 'original_glcm_Idm' is not numeric (patient P1, row 4: 'high'); drop it or give numbers" in msg
    pd.DataFrame({"Image": ["elsewhere/P0.nii.gz"], "Mask": ["elsewhere/Q.nii.gz"], "f": [1.0]}).to_csv(
        tmp_path / "b.csv", index=False)  # fmt: skip
    with pytest.raises(FeatureTableError, match=r"row 2: Image elsewhere/P0.nii.gz / Mask elsewhere/Q.nii.gz match no patient"):
        read_feature_table(tmp_path / "b.csv", cohort)


def test_patients_without_usable_features_are_left_out_with_the_reason(tmp_path):
    cohort = _cohort(tmp_path)
    pd.DataFrame({"patient_id": ["P0", "P1", "P3"], "a": [1.0, np.nan, 2.0], "b": [1.0, 2.0, np.inf]}).to_csv(
        tmp_path / "f.csv", index=False)  # fmt: skip
    ft = read_feature_table(tmp_path / "f.csv", cohort)
    assert list(ft.features.index) == ["P0"]
    assert [(e.patient_id, e.reason) for e in ft.excluded] == [
        ("P1", "NaN or infinite feature(s) in f.csv: a"), ("P2", "no features in f.csv"),
        ("P3", "NaN or infinite feature(s) in f.csv: b")]  # fmt: skip


def test_pre_and_post_tables_must_hold_the_same_features(tmp_path):
    cohort = _cohort(tmp_path, 2)
    pd.DataFrame({"patient_id": ["P0", "P1"], "a": [1.0, 2.0], "b": [1.0, 2.0]}).to_csv(tmp_path / "pre.csv", index=False)
    pd.DataFrame({"patient_id": ["P0", "P1"], "a": [1.0, 2.0], "c": [1.0, 2.0]}).to_csv(tmp_path / "post.csv", index=False)
    pre, post = read_feature_table(tmp_path / "pre.csv", cohort), read_feature_table(tmp_path / "post.csv", cohort)
    with pytest.raises(FeatureTableError, match=r"(?s)1 feature\(s\) only in pre.csv: b.*1 feature\(s\) only in post.csv: c"):
        check_same_features(pre, post)
