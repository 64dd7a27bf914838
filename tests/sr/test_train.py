from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import TINY_TRAIN as TINY
from typer.testing import CliRunner

from srgan3d.cli import app
from srgan3d.io import write_volume
from srgan3d.sr.export import export_weights
from srgan3d.sr.synthetic import make_phantom
from srgan3d.sr.train import TrainConfig, load_training_volumes, train
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import load_generator


def test_train_resume_export_and_use(tmp_path):
    ph = make_phantom((48, 48, 32), (2.0, 2.0, 2.0), seed=5)
    val = write_volume(ph.image, tmp_path / "val.nii.gz")
    cfg = TrainConfig(**TINY, pretrain_steps=4, gan_steps=3, val_every=7, checkpoint_every=3)
    result = train([], tmp_path / "run", cfg, val=[val])
    assert result.step == 7 and "psnr_sinc" in result.validation and not result.stopped_by_budget
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert {"params", "params_ema", "params_d", "opt_g", "opt_d"} <= set(state)
    with (tmp_path / "run" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["stage"] for r in rows] == ["pixel"] * 4 + ["gan"] * 3
    assert float(rows[-1]["d_loss"]) > 0 and rows[-1]["val_psnr"]
    with pytest.raises(FileExistsError, match="--resume"):
        train([], tmp_path / "run", cfg)
    longer = TrainConfig(**TINY, pretrain_steps=4, gan_steps=5, val_every=100, checkpoint_every=100)
    assert train([], tmp_path / "run", longer, resume=True).step == 9
    weights = export_weights(tmp_path / "run", tmp_path / "w" / "mine_x2.pt", description="test run")
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["steps"] == 9 and card["stage"] == "gan" and [e["file"] for e in card["validation_data"]] == [str(val)]
    model, info = load_generator(weights)
    assert info.sha256 == card["sha256"]
    res = upscale_files([val], tmp_path / "sr", UpscaleConfig(weights=str(weights), device="cpu"))
    assert res.rows[0].status == "ok"


def test_train_cli_reports_bad_input(tmp_path):
    res = CliRunner().invoke(app, ["train", str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "run")])
    assert res.exit_code == 2 and "no such file" in res.output
    # Patches shrink to a thin scan's slices, but 6 slices are 3 after a 2x reduction: too few.
    small = write_volume(make_phantom((16, 16, 6), (2.0, 2.0, 2.0), seed=1).image, tmp_path / "small.nii.gz")
    res = CliRunner().invoke(app, ["train", str(small), "-o", str(tmp_path / "run2"), "--patch-size", "12"])
    assert res.exit_code == 2 and "small.nii.gz" in res.output and "too few to train on" in res.output


def test_multiscale_training_volumes(tmp_path):
    vol = write_volume(make_phantom((60, 48, 36), (1.0, 1.0, 1.0), seed=2).image, tmp_path / "hr.nii.gz")
    vols = load_training_volumes([vol], hr_scales=(1, 2, 3), min_shape=14)
    # 1/3 of 36 slices is 12 < 14: that copy is left out; the 1/2 copy is the k-space-cropped scan.
    assert [v.shape for v in vols] == [(60, 48, 36), (30, 24, 18)]
    assert vols[1].min() >= 0
    assert abs(float(vols[1].mean()) - float(vols[0].mean())) < 0.02 * float(vols[0].mean())
    ph = load_training_volumes([], phantoms=6, phantom_coarsening=2.5, seed=1, min_shape=20)
    shapes = [v.shape for v in ph]
    assert all(64 <= s[0] <= 160 and s[2] >= 20 for s in shapes) and len(set(shapes)) > 1
    with pytest.raises(ValueError, match="hr_scales"):
        TrainConfig(hr_scales=(0,))


def test_fine_tune_from_weights(tmp_path):
    cfg = TrainConfig(**TINY, pretrain_steps=3, val_every=100, checkpoint_every=100)
    train([], tmp_path / "base", cfg)
    base = export_weights(tmp_path / "base", tmp_path / "w" / "base_x2.pt")
    gan = TrainConfig(**TINY, pretrain_steps=0, gan_steps=2, val_every=100, checkpoint_every=100)
    train([], tmp_path / "ft", gan, init=base)
    state = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    before = torch.load(base, weights_only=True)
    # Started from the weights: two small steps move the parameters only a little.
    drift = max(float((state["params"][k] - before[k]).abs().max()) for k in before)
    assert 0 < drift < 0.05
    card = json.loads(
        export_weights(tmp_path / "ft", tmp_path / "w" / "ft_x2.pt").with_suffix(".json").read_text()
    )
    assert card["stage"] == "gan" and card["initialised_from"]["name"] == "base_x2"
    wider = TrainConfig(**{**TINY, "channels": 16}, pretrain_steps=0, gan_steps=1)
    with pytest.raises(ValueError, match="architecture keys"):
        train([], tmp_path / "ft2", wider, init=base)
    # The CLI takes the architecture from the weights' card, so a default recipe fine-tunes them.
    scan = write_volume(make_phantom((40, 40, 24), (2.0, 2.0, 2.0), seed=3).image, tmp_path / "scan.nii.gz")
    res = CliRunner().invoke(
        app,
        ["train", str(scan), "-o", str(tmp_path / "ft3"), "--init", str(base), "--patch-size", "8",
         "--batch-size", "1", "--pretrain-steps", "1", "--gan-steps", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output


def test_patch_prediction_with_dc_discards_the_in_band_part_of_the_detail():
    from srgan3d.sr.kspace import kspace_downsample_t, sinc_upsample_t
    from srgan3d.sr.pairs import predict_patch

    lr = torch.rand(2, 1, 8, 8, 6)
    base = sinc_upsample_t(lr, (2, 2, 2))
    smooth = sinc_upsample_t(torch.rand(2, 1, 8, 8, 6), (2, 2, 2))  # detail entirely in band
    out = predict_patch(smooth, base, (2, 2, 2), dc=True)
    assert torch.allclose(out, base, atol=1e-4)
    assert not torch.allclose(predict_patch(smooth, base, (2, 2, 2), dc=False), base, atol=1e-2)
    assert torch.allclose(kspace_downsample_t(out, (2, 2, 2)), lr, atol=1e-4)


def test_validation_keeps_the_best_checkpoint_and_export_can_take_it(tmp_path):
    ph = make_phantom((48, 48, 32), (2.0, 2.0, 2.0), seed=6)
    val = write_volume(ph.image, tmp_path / "val.nii.gz")
    cfg = TrainConfig(**TINY, pretrain_steps=6, val_every=2, checkpoint_every=6, lr_g=3e-3)
    train([], tmp_path / "run", cfg, val=[val])
    with (tmp_path / "run" / "log.csv").open() as f:
        validated = [(int(r["step"]), float(r["val_psnr"])) for r in csv.DictReader(f) if r["val_psnr"]]
    assert [s for s, _ in validated] == [2, 4, 6]
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    step, value = max(validated, key=lambda t: t[1])
    assert best["step"] == step and abs(best["psnr"] - value) < 1e-3
    weights = export_weights(tmp_path / "run", tmp_path / "w" / "best_x2.pt", checkpoint="best")
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["steps"] == step and card["checkpoint"] == "best"
    with pytest.raises(ValueError, match="'last' or 'best'"):
        export_weights(tmp_path / "run", tmp_path / "w" / "x.pt", checkpoint="middle")


def test_minutes_bound_the_wall_time(tmp_path, monkeypatch):
    """A run with a time budget stops at the first step past it, checkpoints and validates there."""
    from srgan3d.sr import train as train_module

    clock = {"t": 0.0}

    def fake_clock() -> float:  # each call is 10 s later: the budget of 0.5 minutes lasts 3 steps
        clock["t"] += 10.0
        return clock["t"]

    ph = make_phantom((48, 48, 32), (2.0, 2.0, 2.0), seed=5)
    val = write_volume(ph.image, tmp_path / "val.nii.gz")
    monkeypatch.setattr(train_module.time, "perf_counter", fake_clock)
    cfg = TrainConfig(**TINY, pretrain_steps=50, val_every=100, checkpoint_every=100, minutes=0.5)
    result = train([], tmp_path / "run", cfg, val=[val])
    assert 1 <= result.step < 50 and result.stopped_by_budget
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == result.step and result.validation["psnr"] > 0
    with pytest.raises(ValueError, match="minutes must be > 0"):
        TrainConfig(minutes=0)


def test_a_site_fine_tune_records_its_gains_and_auto_needs_both(tmp_path):
    """Fine-tuning from weights without --val: the scan is split, the starting weights are scored
    on the held-out slab, and the card records the gain against zero-fill and against them;
    `--method auto` takes the weights only when both gains are positive."""
    from srgan3d.sr.weights import SITE_KEY, WeightsInfo, auto_eligibility

    base_cfg = TrainConfig(**TINY, pretrain_steps=2, val_every=100, checkpoint_every=100, holdout=0)
    train([], tmp_path / "base", base_cfg)
    base = export_weights(tmp_path / "base", tmp_path / "w" / "base_x2.pt")
    scan = write_volume(make_phantom((40, 40, 48), (2.0, 2.0, 2.0), seed=3).image, tmp_path / "site.nii.gz")
    cfg = TrainConfig(**{**TINY, "phantoms": 0}, pretrain_steps=4, val_every=2, checkpoint_every=100)
    train([scan], tmp_path / "ft", cfg, init=base)
    run_info = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert run_info["validation_split"].startswith("held out by slab: slices 32-47 of axis 2")
    start = json.loads((tmp_path / "ft" / "init_validation.json").read_text())
    card = json.loads(export_weights(tmp_path / "ft", tmp_path / "w" / "site_x2.pt", checkpoint="best")
                      .with_suffix(".json").read_text())  # fmt: skip
    site = card[SITE_KEY]
    best = json.loads((tmp_path / "ft" / "best.json").read_text())
    assert site["psnr_init_db"] == pytest.approx(start["psnr"], abs=1e-4)
    assert site["gain_vs_init_db"] == pytest.approx(best["psnr"] - start["psnr"], abs=1e-3)
    assert site["gain_vs_sinc_db"] == pytest.approx(best["psnr"] - best["psnr_sinc"], abs=1e-3)

    def verdict(**gains: float) -> tuple[bool, str]:
        info = WeightsInfo("x", tmp_path, {SITE_KEY: {**site, "ssim": 0.9, "ssim_sinc": 0.8, **gains}})
        return auto_eligibility(info)

    assert verdict(gain_vs_sinc_db=0.3, gain_vs_init_db=0.2)[0]
    ok, why = verdict(gain_vs_sinc_db=0.3, gain_vs_init_db=-0.1)
    assert not ok and "against the weights it was fine-tuned from" in why
    ok, why = verdict(gain_vs_sinc_db=-0.2, gain_vs_init_db=0.4)
    assert not ok and "against zero-filled k-space" in why
