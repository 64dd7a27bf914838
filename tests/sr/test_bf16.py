"""The bf16 path, forced on any CPU (`force_bf16`): CI machines without bf16 units run it too.

Where the CPU has no bf16 units bf16 is emulated (slowly), so these runs are tiny. Emulation does
not run the same kernels as AMX-BF16 / AVX512-BF16 hardware: these tests hold the code path (what
is autocast, what stays fp32, the guard), and the tolerances are bf16's, not the emulator's.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from conftest import smooth_volume
from typer.testing import CliRunner

from srgan3d.cli import app
from srgan3d.io import write_volume
from srgan3d.sr import train as train_module
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling
from srgan3d.sr.export import export_weights
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.synthetic import make_phantom
from srgan3d.sr.train import NonFiniteError, TrainConfig, train
from srgan3d.sr.weights import WeightsError, load_generator, non_finite_tensors, save_weights

TINY = dict(channels=8, n_blocks=1, upsample_channels=8, patch_size=8, batch_size=2, val_crop=16, phantoms=1)

# bf16 keeps 8 significant bits: unit roundoff u = 2^-8 of a value's magnitude. The test generator's
# six convolutions each round their inputs to bf16, so two computations that differ only in the
# order of their sums (windows of other shapes, other kernels) differ by a few u of the output's
# scale; 8 u bounds that with room, and is still 30x tighter than the detail the network adds.
BF16_U = 2.0**-8


def _random_detail_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return model.eval()


def test_tiled_equals_whole_volume_in_bf16(force_bf16):
    model = _random_detail_generator()
    x = IntensityScaling.fit(smooth_volume((50, 41, 23))).forward(smooth_volume((50, 41, 23)))
    engine = GeneratorEngine(model, device=torch.device("cpu"), window=(24, 24, 24), overlap=0.5)
    assert engine.precision == "bf16"
    tiled = engine.run_network(x).numpy()
    with torch.inference_mode():
        whole_fp32 = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            whole_bf16 = model(torch.from_numpy(x)[None, None])[0, 0].float().numpy()
    scale = float(np.abs(whole_fp32).max())
    assert scale > 0.05  # the detail branch really contributes
    assert np.abs(tiled - whole_bf16).max() < 8 * BF16_U * scale
    # bf16 really ran (it is not fp32 in disguise), and stays within bf16's error of fp32.
    assert 0 < np.abs(whole_bf16 - whole_fp32).max() < 8 * BF16_U * scale


def test_gan_steps_in_bf16_are_finite(tmp_path, force_bf16):
    val = write_volume(make_phantom((48, 48, 32), (2.0, 2.0, 2.0), seed=5).image, tmp_path / "val.nii.gz")
    cfg = TrainConfig(**TINY, pretrain_steps=2, gan_steps=4, val_every=1, checkpoint_every=2)
    result = train([], tmp_path / "run", cfg, val=[val])
    assert result.step == 6
    with (tmp_path / "run" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["stage"] for r in rows] == ["pixel"] * 2 + ["gan"] * 4
    for r in rows:
        for key in ("l1", "g_adv", "d_loss", "val_psnr"):
            assert math.isfinite(float(r[key])), (r["step"], key, r[key])
    assert all(float(r["d_loss"]) > 0 for r in rows[2:])
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    for key in ("params", "params_ema", "params_d"):
        assert non_finite_tensors(state[key]) == []
    card = json.loads(export_weights(tmp_path / "run", tmp_path / "g_x2.pt").with_suffix(".json").read_text())
    assert card["training_precision"] == "bf16"
    assert "trained in bf16" in (tmp_path / "g_x2.md").read_text()


def _nan_at(call: int):
    """A gradient loss that turns NaN at its `call`-th use (1-based): one per training step."""
    calls = {"n": 0}
    real = train_module.gradient_loss

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = real(a, b)
        return out * float("nan") if calls["n"] >= call else out

    return loss


def test_injected_nan_stops_training_and_no_file_holds_nan(tmp_path, force_bf16, monkeypatch):
    val = write_volume(make_phantom((48, 48, 32), (2.0, 2.0, 2.0), seed=5).image, tmp_path / "val.nii.gz")
    monkeypatch.setattr(train_module, "gradient_loss", _nan_at(3))
    cfg = TrainConfig(**TINY, pretrain_steps=1, gan_steps=3, val_every=1, checkpoint_every=1)
    with pytest.raises(NonFiniteError) as err:
        train([], tmp_path / "run", cfg, val=[val])
    msg = str(err.value)
    assert "step 3" in msg and "gan stage" in msg and "gradient (edge) loss" in msg and "--no-amp" in msg
    # Steps 1 and 2 were checkpointed; nothing after the NaN was written, and nothing holds NaN.
    written = sorted(p.name for p in (tmp_path / "run").glob("*.pt"))
    assert written == ["best.pt", "checkpoint.pt"]
    for name in written:
        state = torch.load(tmp_path / "run" / name, weights_only=True)
        assert state["step"] == 2 or name == "best.pt"
        for key in ("params", "params_ema", "params_d"):
            assert non_finite_tensors(state[key]) == []


def test_injected_nan_in_fp32_names_the_learning_rate(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "gradient_loss", _nan_at(1))
    cfg = TrainConfig(**TINY, pretrain_steps=2, amp=False, checkpoint_every=1)
    with pytest.raises(NonFiniteError, match=r"step 1 \(pixel stage\).*learning rate"):
        train([], tmp_path / "run", cfg)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_train_reports_the_non_finite_step(tmp_path, force_bf16, monkeypatch):
    monkeypatch.setattr(train_module, "gradient_loss", _nan_at(1))
    scan = write_volume(make_phantom((40, 40, 24), (2.0, 2.0, 2.0), seed=3).image, tmp_path / "scan.nii.gz")
    args = ["train", str(scan), "-o", str(tmp_path / "run"), "--patch-size", "8", "--batch-size", "1",
            "--pretrain-steps", "1", "--gan-steps", "0"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert "step 1 (pixel stage)" in res.output and "--no-amp" in res.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_non_finite_weights_are_neither_written_nor_loaded(tmp_path):
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    good = save_weights(model, tmp_path / "good_x2.pt", {"description": "finite"})
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(WeightsError, match=r"bad_x2\.pt.*head\.weight.*--no-amp"):
        save_weights(model, tmp_path / "bad_x2.pt", {})
    assert not (tmp_path / "bad_x2.pt").exists()
    # A file made elsewhere, with a card whose checksum matches: refused by name on loading.
    state = torch.load(good, weights_only=True)
    state["tail.bias"] = torch.full_like(state["tail.bias"], float("inf"))
    torch.save(state, tmp_path / "inf_x2.pt")
    card = json.loads(good.with_suffix(".json").read_text())
    from srgan3d.sr.weights import sha256_file

    card["sha256"] = sha256_file(tmp_path / "inf_x2.pt")
    (tmp_path / "inf_x2.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match=r"inf_x2\.pt.*tail\.bias"):
        load_generator(tmp_path / "inf_x2.pt")


def test_export_refuses_a_checkpoint_with_nan(tmp_path):
    cfg = TrainConfig(**TINY, pretrain_steps=1, amp=False, checkpoint_every=1)
    train([], tmp_path / "run", cfg)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state["params_ema"]["head.bias"] = state["params_ema"]["head.bias"] * float("nan")
    torch.save(state, ckpt)
    with pytest.raises(WeightsError, match=r"checkpoint\.pt.*head\.bias"):
        export_weights(tmp_path / "run", tmp_path / "w" / "x_x2.pt")
    assert not (tmp_path / "w" / "x_x2.pt").exists()
