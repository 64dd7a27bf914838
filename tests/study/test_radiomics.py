"""Radiomics: the VOI crop and its carriage to the SR grid, the SimpleITK geometry pyradiomics
sees, features against values computed independently, and the extraction's options."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import oblique_affine

from srgan3d.study.config import RadiomicsConfig
from srgan3d.study.radiomics import (
    crop,
    extract_features,
    make_extractor,
    mask_to_sr_grid,
    sr_files,
    sr_images,
    to_sitk,
    voi_box,
)
from srgan3d.volume import Volume, upscaled_affine


def test_the_voi_box_adds_the_margin_and_stops_at_the_edges():
    m = np.zeros((20, 20, 10))
    m[2:5, 10:14, 4:6] = 1
    assert voi_box(m, 3) == (slice(0, 8), slice(7, 17), slice(1, 9))
    with pytest.raises(ValueError, match="empty"):
        voi_box(np.zeros((4, 4, 4)), 1)


def test_a_crop_keeps_the_world_position_of_every_voxel():
    aff = oblique_affine()
    vol = Volume(np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10), aff, {})
    box = (slice(2, 6), slice(3, 9), slice(1, 4))
    c = crop(vol, box)
    assert c.shape == (4, 6, 3) and c.data[0, 0, 0] == vol.data[2, 3, 1]
    ijk = np.array([1, 2, 1, 1.0])
    assert c.affine @ ijk == pytest.approx(aff @ (ijk + np.array([2, 3, 1, 0])))


def test_a_box_mask_is_carried_to_the_sr_grid_as_the_same_region():
    aff = np.diag([2.0, 2.0, 4.0, 1.0])
    m = np.zeros((10, 10, 6), np.uint8)
    m[3:7, 2:5, 1:4] = 1
    sr = mask_to_sr_grid(Volume(m, aff, {}), (2, 2, 2))
    assert sr.shape == (20, 20, 12)
    assert np.allclose(sr.affine, upscaled_affine(aff, (2, 2, 2)))
    # each LR voxel becomes 8 SR voxels, but for the box's 8 corner SR voxels: trilinear weights of
    # 0.75 on each axis give 0.75^3 = 0.42 < 0.5 there (faces 0.75, edges 0.56 stay in)
    assert int(sr.data.sum()) == 8 * int(m.sum()) - 8
    inside = sr.data[6:14, 4:10, 2:8].copy()
    assert inside.sum() == inside.size - 8 and not inside[[0, -1]][:, [0, -1]][:, :, [0, -1]].any()
    assert sr.data.sum() == inside.sum()  # nothing outside the doubled box


def test_simpleitk_sees_the_volumes_world_geometry_in_lps():
    aff = oblique_affine()
    vol = Volume(np.random.default_rng(0).normal(size=(6, 7, 5)).astype(np.float32), aff, {})
    img = to_sitk(vol)
    assert img.GetSize() == (6, 7, 5)  # SimpleITK indexes (x, y, z) like the Volume
    lps = np.diag([-1.0, -1.0, 1.0])
    for ijk in ((0, 0, 0), (5, 1, 3), (2, 6, 4)):
        ras = aff[:3, :3] @ np.array(ijk, float) + aff[:3, 3]
        assert img.TransformIndexToPhysicalPoint(ijk) == pytest.approx(tuple(lps @ ras), abs=1e-6)
        assert img[ijk] == pytest.approx(float(vol.data[ijk]))


def test_first_order_and_shape_features_match_independent_values(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder: [Mean, Maximum]\n  shape: [VoxelVolume]\n"
                      "setting:\n  binWidth: 25\n  label: 1\n")  # fmt: skip
    rng = np.random.default_rng(3)
    data = rng.normal(100, 10, size=(16, 16, 8)).astype(np.float32)
    mask = np.zeros(data.shape, np.uint8)
    mask[4:11, 5:12, 2:6] = 1
    aff = np.diag([0.8, 0.8, 3.0, 1.0])
    f = extract_features(make_extractor(params), Volume(data, aff, {}), Volume(mask, aff, {}))
    inside = data[mask > 0].astype(float)
    assert f["original_firstorder_Mean"] == pytest.approx(inside.mean(), rel=1e-6)
    assert f["original_firstorder_Maximum"] == pytest.approx(inside.max(), rel=1e-6)
    assert f["original_shape_VoxelVolume"] == pytest.approx(mask.sum() * 0.8 * 0.8 * 3.0, rel=1e-9)
    assert not any(k.startswith("diagnostics_") for k in f)


def test_resampling_for_the_common_grid_is_set_or_cleared(tmp_path):
    assert make_extractor(RadiomicsConfig().params, resample_mm=1.25).settings["resampledPixelSpacing"] == [1.25] * 3
    assert "resampledPixelSpacing" not in make_extractor(RadiomicsConfig().params).settings


def test_a_tables_own_sr_image_is_preferred_over_the_extractions_crop(tmp_path):
    made = sr_files(tmp_path, "P1")
    assert sr_images({"patient_id": "P1"}, tmp_path) == made
    given = {"patient_id": "P1", "image_sr": "/data/p1_sr.nii.gz", "mask_sr": "/data/p1_sr_mask.nii.gz"}
    assert [str(p) for p in sr_images(given, tmp_path)] == ["/data/p1_sr.nii.gz", "/data/p1_sr_mask.nii.gz"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peritumoral": (0.0,)}, r"--peritumoral widths must lie in \(0, 50\] mm"),
        ({"peritumoral": (60.0,)}, r"--peritumoral widths"),
        ({"spacing": "isotropic"}, "spacing must be 'native' or 'common'"),
        ({"margin_vox": -1}, "margin must be >= 0"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RadiomicsConfig(**kwargs)


def test_a_missing_parameter_file_is_named_before_extraction(tmp_path):
    cfg = RadiomicsConfig(params=str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="nope.yaml does not exist"):
        cfg.check_params()
    RadiomicsConfig().check_params()  # the shipped file exists
