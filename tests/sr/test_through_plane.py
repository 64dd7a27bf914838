"""Self-supervised through-plane SR: the slice profile, the pairs, the geometry and the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import smooth_volume

from srgan3d.sr import through_plane as tp
from srgan3d.sr.through_plane import (
    PlaneSampler,
    ThroughPlaneConfig,
    cubic_upsample_last,
    slice_average,
    slice_profile_consistency,
    thick_slice_copy,
    upscale_through_plane,
)
from srgan3d.volume import Volume, upscaled_affine


def test_slice_profile_consistency_gives_the_input_back_and_keeps_what_already_fits():
    torch.manual_seed(0)
    lr = torch.rand(4, 1, 1, 6, 7)
    sr = torch.rand(4, 1, 1, 6, 14)
    out = slice_profile_consistency(sr, lr, 2)
    assert torch.allclose(slice_average(out, 2), lr, atol=1e-6)
    assert torch.allclose(slice_profile_consistency(out, lr, 2), out, atol=1e-6)  # a projection
    # only the in-profile part changes: the within-pair differences stay the network's
    d_in, d_out = sr[..., 0::2] - sr[..., 1::2], out[..., 0::2] - out[..., 1::2]
    assert torch.allclose(d_in, d_out, atol=1e-6)


def test_cubic_base_reproduces_straight_lines_on_the_affine_rule_grid():
    coarse = torch.arange(12, dtype=torch.float32)[None]  # sample i at coarse position i
    fine = cubic_upsample_last(coarse, 2)[0]
    positions = (torch.arange(24) + 0.5) / 2 - 0.5  # where the affine rule puts fine voxel j
    assert torch.allclose(fine[3:-3], positions[3:-3], atol=1e-5)


def test_training_pairs_are_the_boxcar_of_their_truth():
    planes = np.stack([smooth_volume((60, 52, 1), seed=k)[:, :, 0] / 2500 for k in range(3)])
    cfg = ThroughPlaneConfig(patch=(40, 24), batch_size=5)
    lr, hr = PlaneSampler(planes, cfg).sample()
    assert hr.shape == (5, 1, 1, 40, 24) and lr.shape == (5, 1, 1, 40, 12)
    np.testing.assert_allclose(lr.numpy(), hr.numpy().reshape(5, 1, 1, 40, 12, 2).mean(-1), rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 2"):
        ThroughPlaneConfig(patch=(40, 25))


def test_thick_slice_copy_sits_where_the_affine_rule_puts_it():
    aff = np.array([[0.8, 0.1, 0, -20], [0, 0.9, 0.2, 10], [0.1, 0, 1.5, 5], [0, 0, 0, 1]], float)
    vol = Volume(smooth_volume((10, 9, 13)), aff)
    thick = thick_slice_copy(vol, 2)
    assert thick.shape == (10, 9, 6)
    np.testing.assert_allclose(thick.data[..., 1], vol.data[..., 2:4].mean(-1), rtol=1e-6)
    # coarse voxel i's centre is the mean of its children's, and upscaling it gives the thin grid back
    child = (vol.affine @ [3, 4, 2, 1] + vol.affine @ [3, 4, 3, 1]) / 2
    np.testing.assert_allclose(thick.affine @ [3, 4, 1, 1], child, atol=1e-9)
    np.testing.assert_allclose(upscaled_affine(thick.affine, (1, 1, 2)), vol.affine, atol=1e-9)


def test_through_plane_output_keeps_the_slice_profile_geometry_and_budget(monkeypatch):
    clock = {"t": 0.0}

    def fake_clock() -> float:  # 2 s a call: a 0.1-minute budget lasts a few steps
        clock["t"] += 2.0
        return clock["t"]

    monkeypatch.setattr(tp.time, "perf_counter", fake_clock)
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    vol = Volume(smooth_volume((40, 36, 8)), aff)
    cfg = ThroughPlaneConfig(minutes=0.1, patch=(24, 24), batch_size=2, channels=8, n_blocks=1, upsample_channels=8,
                             init=None)  # fmt: skip
    out, fit = upscale_through_plane(vol, cfg, axis=2)
    assert 1 <= fit.steps <= 3 and fit.init == "from scratch"
    assert out.shape == (40, 36, 16)
    np.testing.assert_allclose(out.affine, upscaled_affine(aff, (1, 1, 2)))
    np.testing.assert_allclose(out.data.reshape(40, 36, 8, 2).mean(-1), vol.data, rtol=1e-4, atol=0.05)
    # along another axis too: slices along X
    out_x, _ = upscale_through_plane(Volume(np.transpose(vol.data, (2, 0, 1)).copy(), np.eye(4)), cfg, axis=0)
    assert out_x.shape == (16, 40, 36)
    np.testing.assert_allclose(out_x.data.reshape(8, 2, 40, 36).mean(1), np.transpose(vol.data, (2, 0, 1)), rtol=1e-4, atol=0.05)


def test_upscale_method_self_supervised_records_how_in_the_manifest(tmp_path):
    from srgan3d.io import read_volume, write_volume
    from srgan3d.sr.upscale import UpscaleConfig, upscale_files

    vol = Volume(smooth_volume((56, 52, 8), seed=2), np.diag([1.2, 1.2, 2.4, 1.0]))
    src = write_volume(vol, tmp_path / "thick.nii.gz")
    cfg = UpscaleConfig(method="self-supervised", through_plane=True, device="cpu", self_supervised_minutes=0.05)
    res = upscale_files([src], tmp_path / "o", cfg)
    row = res.rows[0]
    assert row.status == "ok", row.error
    assert row.values["method"] == "self-supervised" and row.values["scale"] == "1x1x2"
    assert row.values["slice_profile"].startswith("boxcar 2.4 mm") and int(row.values["self_supervised_steps"]) >= 1
    out = read_volume(row.output)
    assert out.shape == (56, 52, 16)
    np.testing.assert_allclose(out.data.reshape(56, 52, 8, 2).mean(-1), read_volume(src).data, rtol=1e-3, atol=1.0)
    with pytest.raises(ValueError, match="upscales along one axis only"):
        UpscaleConfig(method="self-supervised", scale=(2, 2, 2))


def test_a_small_field_of_view_gets_patches_that_fit(monkeypatch):
    clock = {"t": 0.0}

    def fake_clock() -> float:
        clock["t"] += 2.0
        return clock["t"]

    monkeypatch.setattr(tp.time, "perf_counter", fake_clock)
    vol = Volume(smooth_volume((30, 26, 6)), np.diag([1.0, 1.0, 2.0, 1.0]))
    cfg = ThroughPlaneConfig(minutes=0.1, channels=8, n_blocks=1, upsample_channels=8, init=None)  # 48x48 patches
    out, fit = upscale_through_plane(vol, cfg, axis=2)
    assert out.shape == (30, 26, 12) and fit.steps >= 1
