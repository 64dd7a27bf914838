"""The slice axis as linear operators (`srgan3d.sr.slice_profile`): profiles and their exact
consistency, the B-spline base, the header's geometry, which axes carry detail and teach, protocols."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from srgan3d.io import read_dicom_series, read_volume
from srgan3d.sr.degrade import sinc_upsample, spline_upsample
from srgan3d.sr.slice_profile import (
    AcquisitionProtocol,
    SliceProfile,
    apply_profile,
    bspline_upsample,
    inplane_can_teach,
    measure_axis_detail,
    project_consistent,
    protocol_mismatch,
    slice_geometry,
    teaching_axes,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PROFILES = [
    SliceProfile("boxcar", 2, 1.0),  # contiguous
    SliceProfile("boxcar", 2, 0.7),  # a gap of 0.3 x spacing
    SliceProfile("boxcar", 2, 1.25),  # overlapping slices
    SliceProfile("gaussian", 2, 1.0),  # FWHM = spacing
    SliceProfile("gaussian", 3, 1.2),
]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: f"{p.kind}-{p.factor}-{p.thickness}")
def test_consistency_gives_the_measured_slices_back_exactly_for_every_profile(profile):
    """fp32, 1e-5 on unit-range data: the profile of the projected output is the input."""
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(3, 5, 11, generator=g)
    sr = torch.rand(3, 5, 11 * profile.factor, generator=g)
    out = project_consistent(sr, lr, profile)
    assert torch.allclose(apply_profile(out, profile), lr, atol=1e-5)
    assert torch.allclose(project_consistent(out, lr, profile), out, atol=1e-5)  # a projection
    # the least change: what moved lies in the row space of the profile (A^T z)
    a = torch.from_numpy(profile.matrix(sr.shape[-1])).float()
    moved = (out - sr).reshape(-1, sr.shape[-1]).T
    z = torch.linalg.lstsq(a.T, moved).solution
    assert torch.allclose(a.T @ z, moved, atol=1e-5)


def test_contiguous_boxcar_consistency_adds_each_residual_to_its_children():
    """The boxcar case is the rule used before: each slice's residual added to its 2 children."""
    g = torch.Generator().manual_seed(1)
    lr, sr = torch.rand(4, 6, 7, generator=g), torch.rand(4, 6, 14, generator=g)
    residual = lr - sr.reshape(4, 6, 7, 2).mean(-1)
    expected = sr + residual.repeat_interleave(2, dim=-1)
    assert torch.allclose(project_consistent(sr, lr, SliceProfile("boxcar", 2, 1.0)), expected, atol=1e-6)


def test_profile_rows_are_the_slabs_and_gaussians_they_describe():
    box = SliceProfile("boxcar", 2, 1.0).matrix(8)
    np.testing.assert_allclose(box[1], [0, 0, 0.5, 0.5, 0, 0, 0, 0])
    gap = SliceProfile("boxcar", 2, 0.5).matrix(8)  # a 1-voxel slab centred between two voxels
    np.testing.assert_allclose(gap[1], [0, 0, 0.5, 0.5, 0, 0, 0, 0])
    over = SliceProfile("boxcar", 2, 1.5).matrix(8)  # a 3-voxel slab: half a voxel more each side
    np.testing.assert_allclose(over[1], [0, 1 / 6, 1 / 3, 1 / 3, 1 / 6, 0, 0, 0])
    # a Gaussian of FWHM 4 fine voxels: weights sum to 1, centred, variance sigma^2 + 1/12 (the voxels' box)
    row = SliceProfile("gaussian", 2, 2.0).matrix(64)[16]
    j = np.arange(64)
    sigma = 4 / (2 * np.sqrt(2 * np.log(2)))
    assert row.sum() == pytest.approx(1.0)
    assert (row * j).sum() == pytest.approx(32.5)
    assert (row * (j - 32.5) ** 2).sum() == pytest.approx(sigma**2 + 1 / 12, rel=1e-3)


def test_bspline_base_is_scipys_cubic_spline_on_the_affine_rule_grid():
    rng = np.random.default_rng(0)
    lr = rng.random((4, 5, 9)).astype(np.float32)
    np.testing.assert_allclose(bspline_upsample(torch.from_numpy(lr), 2).numpy(), spline_upsample(lr, (1, 1, 2)), atol=1e-5)
    # straight lines come back where the affine rule puts the fine samples
    coarse = torch.arange(12, dtype=torch.float32)[None]
    positions = (torch.arange(24) + 0.5) / 2 - 0.5
    assert torch.allclose(bspline_upsample(coarse, 2)[0, 8:-8], positions[8:-8], atol=1e-3)  # away from the mirrored ends


def test_thickness_and_overlap_read_from_a_real_dicom_series():
    vol = read_dicom_series(DATA / "ct_3slice")
    assert vol.meta["slice_thickness_mm"] == pytest.approx(1.25)
    geo = slice_geometry(vol.spacing_mm, vol.meta, axis=2, factor=2)
    assert geo.spacing_mm == pytest.approx(1.0, abs=1e-4) and geo.thickness_mm == pytest.approx(1.25)
    assert geo.thickness_from == "DICOM SliceThickness" and geo.gap_mm == pytest.approx(-0.25, abs=1e-4)
    assert geo.profile.thickness == pytest.approx(1.25, abs=1e-4)
    assert "overlap 0.25 mm" in geo.profile.describe(geo.spacing_mm)
    # --slice-thickness wins; a NIfTI without it: thickness = spacing
    assert slice_geometry(vol.spacing_mm, vol.meta, axis=2, factor=2, thickness_mm=0.8).gap_mm == pytest.approx(0.2, abs=1e-4)
    assert slice_geometry((1.0, 1.0, 3.0), {"format": "nifti"}, axis=2, factor=2).thickness_from == "assumed = spacing"


def test_scanner_interpolation_in_plane_is_read_from_the_acquisition_matrix():
    meta = {"format": "dicom", "acquisition_matrix": [0, 256, 192, 0], "rows": 512, "columns": 512}
    geo = slice_geometry((0.7, 0.7, 3.0), meta, axis=2, factor=2)
    assert geo.inplane_factor == 2 and geo.acquired_inplane_mm == pytest.approx((1.4, 1.4))
    assert slice_geometry((0.7, 0.7, 3.0), {**meta, "rows": 256, "columns": 256}, axis=2, factor=2).inplane_factor == 1


def test_axis_detail_tells_an_interpolated_in_plane_from_an_acquired_one():
    real = read_volume(DATA / "totalseg_example_mr_sm.nii.gz").data.astype(np.float32)
    ok, why = inplane_can_teach(measure_axis_detail(real), (0, 1))
    assert ok, why
    interpolated = sinc_upsample(real, (2, 2, 1))  # a scanner's zero-filled 2x in-plane
    ok, why = inplane_can_teach(measure_axis_detail(interpolated), (0, 1))
    assert not ok and "interpolated in-plane" in why


def test_an_axis_coarser_than_the_target_does_not_teach():
    assert teaching_axes((1.5, 1.5, 5.0), 2, 2) == (0, 1)
    assert teaching_axes((3.0, 1.5, 8.0), 0, 2) == (1,)  # 8 mm has nothing finer than 1.5 mm to show
    assert teaching_axes((1.5, 1.5, 5.0), 2, 8) == ()  # a 0.625 mm target: 1.5 mm is too coarse


def test_protocol_mismatch_names_what_differs():
    p = AcquisitionProtocol("boxcar", 2, spacing_mm=5.0, thickness_mm=5.0, inplane_mm=(1.5, 1.5))
    assert protocol_mismatch(p, replace(p, spacing_mm=5.2)) is None
    diff = protocol_mismatch(p, replace(p, thickness_mm=3.0, profile="gaussian"))
    assert "profile gaussian (the weights': boxcar)" in diff and "thickness 3 mm (the weights': 5 mm)" in diff
