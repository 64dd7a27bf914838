"""Through-plane SR (`srgan3d.sr.through_plane`): the thick-slice copy, the gate on smooth slices,
the 2D network and its training, per-scan and per-protocol use (the slice axis's operators are in
test_slice_profile.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smooth_volume
from scipy import ndimage

from srgan3d.io import read_volume, write_volume
from srgan3d.sr import through_plane as tp
from srgan3d.sr.config import ThroughPlaneConfig
from srgan3d.sr.degrade import spline_upsample
from srgan3d.sr.slice_profile import (
    SliceProfile,
    apply_profile,
    bspline_consistent,
    slices_can_learn,
)
from srgan3d.sr.through_plane import (
    PlaneNet,
    PlanePairs,
    apply_plane_net,
    one_cycle_lr,
    thick_slice_copy,
    upscale_through_plane,
)
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.volume import Volume, upscaled_affine


@pytest.fixture
def fast_clock(monkeypatch):
    """2 s per clock call: a 0.1-minute budget lasts a few steps."""
    clock = {"t": 0.0}

    def fake() -> float:
        clock["t"] += 2.0
        return clock["t"]

    monkeypatch.setattr(tp.time, "perf_counter", fake)


def thick_scan(shape: tuple[int, int, int], *, seed: int = 0, spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Volume:
    """A thick-slice scan as a scanner makes one: isotropic texture, each pair of thin slices
    averaged into one slice of `shape[2]` (so its slice axis looks like its in-plane axes made thick)."""
    x = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=(shape[0], shape[1], 2 * shape[2])), 1.0)
    thin = (500 + 2000 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)
    aff = np.diag([spacing[0], spacing[1], spacing[2] / 2, 1.0])
    return thick_slice_copy(Volume(thin, aff), 2)


TINY = ThroughPlaneConfig(minutes=0.1, patch=16, batch_size=2, channels=8, n_blocks=1, validations=2)


# --------------------------------------------------------------------------------------------
# The thick-slice copy, and the gate on slices smoother than the in-plane anatomy


def test_thick_slice_copy_sits_where_the_affine_rule_puts_it():
    aff = np.array([[0.8, 0.1, 0, -20], [0, 0.9, 0.2, 10], [0.1, 0, 1.5, 5], [0, 0, 0, 1]], float)
    vol = Volume(smooth_volume((10, 9, 13)), aff)
    thick = thick_slice_copy(vol, 2)
    assert thick.shape == (10, 9, 6)
    np.testing.assert_allclose(thick.data[..., 1], vol.data[..., 2:4].mean(-1), rtol=1e-6)
    child = (vol.affine @ [3, 4, 2, 1] + vol.affine @ [3, 4, 3, 1]) / 2
    np.testing.assert_allclose(thick.affine @ [3, 4, 1, 1], child, atol=1e-9)
    np.testing.assert_allclose(upscaled_affine(thick.affine, (1, 1, 2)), vol.affine, atol=1e-9)
    along_x = thick_slice_copy(vol, 2, axis=0, profile=SliceProfile("gaussian", 2, 1.0))
    assert along_x.shape == (5, 9, 13)


def test_slices_made_from_a_smoother_truth_than_the_in_plane_anatomy_are_refused(fast_clock):
    """Isotropic texture made thick passes; the same texture smoothed along z first (a band-limited,
    interpolated truth) is refused before any training, and B-spline + consistency runs."""
    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.normal(size=(48, 48, 32)), 1.0)
    box = SliceProfile("boxcar", 2, 1.0)
    iso = thick_slice_copy(Volume(texture.astype(np.float32), np.eye(4)), 2)
    assert slices_can_learn(iso.data, (0, 1), box)[0]
    smooth = Volume((100 + 10 * ndimage.gaussian_filter1d(texture, 2.0, axis=2)).astype(np.float32), np.eye(4))
    thick = thick_slice_copy(smooth, 2)
    ok, why = slices_can_learn(thick.data, (0, 1), box)
    assert not ok and "smoother than the in-plane axes" in why
    out, rec = upscale_through_plane(thick, TINY, axis=2)
    assert rec.method == "bspline-consistent" and rec.fit is None and "band-limited" in rec.reason


# --------------------------------------------------------------------------------------------
# The network and its training


def test_an_untrained_network_returns_its_base():
    base = torch.rand(2, 1, 12, 16)
    assert torch.equal(PlaneNet(channels=8, n_blocks=2)(base), base)


def test_the_learning_rate_follows_the_budget():
    cfg = ThroughPlaneConfig(peak_lr=1e-3, warmup=0.1)
    assert one_cycle_lr(0.05, cfg) == pytest.approx(5e-4)
    assert one_cycle_lr(0.1, cfg) == pytest.approx(1e-3)
    assert one_cycle_lr(0.55, cfg) == pytest.approx(5e-4)
    assert one_cycle_lr(1.0, cfg) == pytest.approx(0.0, abs=1e-12)


def test_pairs_hold_out_planes_and_draw_patches_on_the_slice_grid():
    x = np.stack([smooth_volume((40, 36, 1), seed=k)[:, :, 0] / 2500 for k in range(12)], axis=-1)
    pairs = PlanePairs(SliceProfile("boxcar", 2, 1.0))
    pairs.add_volume(x, holdout_every=6, teach=(0, 1))
    assert len(pairs.held) == 4 and len(pairs.train) == 20  # planes 3 and 9 held out, both orientations
    hr, lr, base = pairs.train[0]
    np.testing.assert_allclose(lr, hr.reshape(hr.shape[0], -1, 2).mean(-1), rtol=1e-5)
    np.testing.assert_allclose(base, spline_upsample(lr[None], (1, 1, 2))[0], atol=1e-5)
    b, h = pairs.sample(np.random.default_rng(0), 6, 16)
    assert b.shape == h.shape == (6, 1, 16, 16)
    only_y = PlanePairs(SliceProfile("boxcar", 2, 1.0))
    only_y.add_volume(x, holdout_every=6, teach=(1,))
    assert len(only_y.train) == 10 and all(p[0].shape == (40, 36) for p in only_y.train)


def test_through_plane_output_keeps_geometry_and_gives_the_slices_back(fast_clock):
    vol = thick_scan((40, 36, 12))
    aff = vol.affine
    out, rec = upscale_through_plane(vol, TINY, axis=2)
    assert rec.fit is not None and 1 <= rec.fit.steps <= 4 and rec.fit.init == "from scratch"
    assert out.shape == (40, 36, 24)
    np.testing.assert_allclose(out.affine, upscaled_affine(aff, (1, 1, 2)))
    np.testing.assert_allclose(out.data.reshape(40, 36, 12, 2).mean(-1), vol.data, rtol=1e-4, atol=0.05)
    vx = Volume(np.transpose(vol.data, (2, 0, 1)).copy(), np.diag([2.0, 1.0, 1.0, 1.0]))
    out_x, _ = upscale_through_plane(vx, TINY, axis=0, profile="gaussian")
    assert out_x.shape == (24, 40, 36)
    prof = SliceProfile("gaussian", 2, 1.0)
    back = apply_profile(torch.from_numpy(np.moveaxis(out_x.data, 0, -1).copy()), prof).numpy()
    np.testing.assert_allclose(np.moveaxis(back, -1, 0), vx.data, rtol=1e-4, atol=0.05)


def test_a_network_that_does_not_beat_bspline_on_held_out_planes_is_not_used(fast_clock):
    """A few steps on a smooth scan gain nothing: B-spline + consistency runs, and the record says why."""
    vol = thick_scan((40, 36, 12), seed=3)
    out, rec = upscale_through_plane(vol, TINY, axis=2)
    if rec.method == "self-supervised":  # a lucky fit: then it did beat the base on held-out planes
        assert rec.fit is not None and rec.fit.gain_db > TINY.min_gain_db
    else:
        assert "held-out in-plane planes the network is" in rec.reason
        ref = upscale_through_plane.__globals__["upscale_bspline_consistent"](vol, rec.geometry)
        np.testing.assert_allclose(out.data, ref.data, rtol=1e-6)


def test_training_in_bf16_runs_where_the_cpu_has_no_bf16_units_too(fast_clock, monkeypatch):
    """The bf16 path forced: it must run (emulated where there are no bf16 units) and say so."""
    monkeypatch.setattr(tp, "use_bf16", lambda device, amp: amp)
    vol = thick_scan((32, 32, 8))
    out, rec = upscale_through_plane(vol, TINY, axis=2)
    assert rec.fit is not None and rec.fit.precision == "bf16" and np.isfinite(out.data).all()


def test_apply_averages_only_the_orientations_that_taught():
    x = np.random.default_rng(0).random((10, 8, 6)).astype(np.float32)
    prof = SliceProfile("boxcar", 2, 1.0)
    net = PlaneNet(channels=4, n_blocks=1)  # untrained: base only, so every orientation agrees
    expected = bspline_consistent(torch.from_numpy(x), prof).numpy()
    for teach in ((0, 1), (0,), (1,)):
        np.testing.assert_allclose(apply_plane_net(net, x, prof, teach=teach), expected, atol=1e-5)
    with pytest.raises(ValueError, match="no in-plane axis"):
        apply_plane_net(net, x, prof, teach=())


# --------------------------------------------------------------------------------------------
# upscale: auto, self-supervised, protocol weights


def _boxcar_reference(data: np.ndarray) -> np.ndarray:
    """B-spline along z (scipy) plus each slice's residual on its two children: computed here."""
    base = ndimage.zoom(data.astype(np.float32), (1, 1, 2), order=3, grid_mode=True, mode="reflect")
    residual = data - base.reshape(*data.shape, 2).mean(-1)
    return base + np.repeat(residual, 2, axis=-1)


def test_through_plane_auto_without_weights_uses_bspline_consistent_and_says_so_once(tmp_path, caplog):
    srcs = [write_volume(Volume(smooth_volume((16, 14, 6), seed=k), np.diag([1.0, 1.0, 4.0, 1.0])),
                         tmp_path / f"s{k}.nii.gz") for k in range(2)]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        res = upscale_files(srcs, tmp_path / "o", UpscaleConfig(through_plane=True, device="cpu"))
    assert all(r.status == "ok" for r in res.rows), [r.error for r in res.rows]
    assert sum("no through-plane weights given" in r.getMessage() for r in caplog.records) == 1
    row = res.rows[0]
    assert row.method == "bspline-consistent" and row.scale == (1, 1, 2)
    assert row.slice_profile.startswith("boxcar 4 mm") and row.slice_thickness_from == "assumed = spacing"
    out = read_volume(row.output)
    np.testing.assert_allclose(out.data, _boxcar_reference(read_volume(srcs[0]).data), rtol=1e-4, atol=0.05)


def test_upscale_method_self_supervised_records_how_in_the_manifest(tmp_path, fast_clock):
    vol = thick_scan((56, 52, 8), seed=2, spacing=(1.2, 1.2, 2.4))
    src = write_volume(vol, tmp_path / "thick.nii.gz")
    cfg = UpscaleConfig(method="self-supervised", through_plane=True, device="cpu", self_supervised_minutes=0.1,
                        slice_profile="gaussian", slice_thickness_mm=2.0)  # fmt: skip
    row = upscale_files([src], tmp_path / "o", cfg).rows[0]
    assert row.status == "ok", row.error
    assert row.method in ("self-supervised", "bspline-consistent")
    assert row.slice_profile == "gaussian 2 mm at 2.4 mm spacing (gap 0.4 mm)"
    assert row.slice_thickness_from == "--slice-thickness" and row.held_out_gain_db is not None
    assert (row.self_supervised_steps or 0) >= 1 and row.through_plane_reason
    assert read_volume(row.output).shape == (56, 52, 16)
    with pytest.raises(ValueError, match="upscales along one axis only"):
        UpscaleConfig(method="self-supervised", scale=(2, 2, 2))


def test_protocol_weights_train_apply_and_refuse_another_protocol_by_name(tmp_path, fast_clock):
    """`srgan3d train --through-plane` on two scans of one protocol, then upscale: the matching
    scan runs through the network, the other protocol's scan fails by name, the batch goes on."""
    from typer.testing import CliRunner

    from srgan3d.cli import app

    scans = tmp_path / "protocol"
    scans.mkdir()
    for k in range(2):
        write_volume(thick_scan((40, 36, 10), seed=k, spacing=(1.5, 1.5, 3.0)), scans / f"p{k}.nii.gz")
    res = CliRunner().invoke(app, ["train", "--through-plane", str(scans), "-o", str(tmp_path / "run"),
                                   "--minutes", "0.1", "--no-amp"])  # fmt: skip
    assert res.exit_code == 0, res.output
    weights = tmp_path / "run" / "run.pt"
    card = __import__("json").loads(weights.with_suffix(".json").read_text())
    assert card["kind"] == "through-plane" and card["protocol"]["spacing_mm"] == 3.0
    assert len(card["training_data"]) == 2 and "gain_db" in card["held_out"] and len(card["sha256"]) == 64
    assert weights.with_suffix(".md").is_file()
    same = write_volume(thick_scan((40, 36, 10), seed=7, spacing=(1.5, 1.5, 3.0)), tmp_path / "same.nii.gz")
    other = write_volume(thick_scan((40, 36, 10), seed=8, spacing=(1.5, 1.5, 5.0)), tmp_path / "other.nii.gz")
    res = upscale_files([same, other], tmp_path / "o", UpscaleConfig(through_plane=True, weights=str(weights),
                                                                       method="generator", device="cpu"))  # fmt: skip
    by = {Path(r.input).name: r for r in res.rows}
    assert by["same.nii.gz"].status == "ok", by["same.nii.gz"].error
    assert by["same.nii.gz"].method == "through-plane-network" and by["same.nii.gz"].weights == "run"
    assert read_volume(by["same.nii.gz"].output).shape == (40, 36, 20)
    assert by["other.nii.gz"].status == "failed"
    assert "other.nii.gz" in by["other.nii.gz"].error and "another protocol" in by["other.nii.gz"].error
    assert "spacing 5 mm (the weights': 3 mm)" in by["other.nii.gz"].error


def test_a_study_box_upscaled_through_plane_is_the_whole_scan_inside_the_box():
    from srgan3d.sr.engine import upscale_box_through_plane

    aff = np.array([[1.0, 0.1, 0, -20], [0, 1.0, 0.2, 10], [0.1, 0, 3.0, 5], [0, 0, 0, 1]], float)
    vol = Volume(smooth_volume((30, 28, 20)), aff)
    box = (slice(5, 20), slice(6, 18), slice(4, 14))
    sr, note, factors = upscale_box_through_plane(vol, box, method="auto")
    assert factors == (1, 1, 2) and note.startswith("bspline-consistent (through-plane")
    whole = _boxcar_reference(vol.data)
    np.testing.assert_allclose(sr.data, whole[5:20, 6:18, 8:28], rtol=1e-3, atol=0.5)
    np.testing.assert_allclose(sr.affine @ [0, 0, 0, 1], upscaled_affine(aff, (1, 1, 2)) @ [5, 6, 8, 1], atol=1e-9)
    with pytest.raises(ValueError, match="takes auto, self-supervised or bspline-consistent"):
        upscale_box_through_plane(vol, box, method="generator")
