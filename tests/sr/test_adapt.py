"""Fine-tuning a copy of the generator on each scan (`srgan3d.sr.adapt`, `upscale --adapt`)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import smooth_volume

from srgan3d.io import read_volume
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import load_generator
from srgan3d.volume import Volume


def test_adapt_fine_tunes_a_copy_per_scan_and_records_it(tmp_path, tiny_weights):

    from srgan3d.io import write_volume
    from srgan3d.sr.adapt import adapt_generator

    vol = Volume(smooth_volume((32, 32, 20), seed=3) * 500 + 100, np.diag([1.0, 1.0, 2.0, 1.0]), {})
    model, _ = load_generator(tiny_weights)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, info = adapt_generator(model, vol, steps=5, batch_size=2, patch_size=8)
    assert info["steps"] == 5 and info["seconds"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the input model changed"
    assert any(not torch.equal(before[k], v) for k, v in adapted.state_dict().items())

    src = write_volume(vol, tmp_path / "in" / "a.nii.gz")
    cfg = UpscaleConfig(method="generator", weights=str(tiny_weights), adapt_steps=3)
    res = upscale_files([src], tmp_path / "out", cfg)
    assert res.rows[0].status == "ok", res.rows[0].error
    row = next(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert row["adapt_steps"] == "3" and float(row["adapt_seconds"]) >= 0  # a time, however short
    assert read_volume(row["output"]).shape == (64, 64, 40)
    with pytest.raises(ValueError, match="adapt"):
        upscale_files([src], tmp_path / "o2", UpscaleConfig(method="tricubic", adapt_steps=3))
    with pytest.raises(ValueError, match="too small"):
        adapt_generator(model, Volume(np.ones((6, 6, 6), np.float32), np.eye(4), {}), steps=1)
