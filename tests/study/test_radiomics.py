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


def test_sitk_image_has_the_volume_geometry():
    aff = oblique_affine()
    vol = Volume(np.random.default_rng(0).random((6, 5, 4)).astype(np.float32), aff, {})
    img = to_sitk(vol)
    for ijk in [(0, 0, 0), (5, 0, 0), (2, 4, 3)]:
        ras = aff @ np.array([*ijk, 1.0])
        lps = np.array(img.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk)))
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
        assert img.GetPixel(*ijk) == pytest.approx(vol.data[ijk])


def test_crop_keeps_world_positions_and_mask_moves_to_sr_grid_by_the_affine_rule():
    aff = oblique_affine()
    idx = np.indices((30, 28, 12)).astype(float)
    centre = np.array([14.3, 12.6, 5.2])
    r = np.sqrt(sum(((idx[i] - centre[i]) * s) ** 2 for i, s in enumerate((2.0, 2.0, 4.0))))
    mask = Volume((r < 11).astype(np.float32), aff, {})
    box = voi_box(mask.data, 2)
    sub = crop(mask, box)
    start = np.array([s.start for s in box])
    np.testing.assert_allclose(sub.affine[:3, 3], (aff @ np.r_[start, 1.0])[:3], atol=1e-9)
    sr = mask_to_sr_grid(sub, (2, 2, 2))
    # volume kept within 5%, centroid in world coordinates within a tenth of an LR voxel
    assert sr.data.sum() / 8 == pytest.approx(sub.data.sum(), rel=0.05)

    def centroid(v: Volume) -> np.ndarray:
        c = np.argwhere(v.data > 0.5).mean(axis=0)
        return (v.affine @ np.r_[c, 1.0])[:3]

    assert np.linalg.norm(centroid(sr) - centroid(sub)) < 0.1 * min(mask.spacing_mm)
    with pytest.raises(ValueError, match="empty"):
        voi_box(np.zeros((4, 4, 4)), 1)


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
