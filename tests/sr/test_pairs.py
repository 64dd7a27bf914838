"""Training pairs and patches (`srgan3d.sr.pairs`): aligned low/high-resolution patches, thin
volumes, slabs of one scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN as TINY
from conftest import smooth_volume

from srgan3d.sr.train import TrainConfig, make_sampler


def test_sampler_patches_are_aligned():
    vol = smooth_volume((48, 40, 32), seed=3) / 2500
    cfg = TrainConfig(
        **{**TINY, "noise_max": 0.0, "blur_max": 0.0, "gaussian_fraction": 0.0, "n_variants": 1}
    )
    sampler = make_sampler([vol], cfg, seed=0)
    lr, hr, base = sampler.sample(6)
    assert lr.shape == (6, 1, 8, 8, 8) and hr.shape == base.shape == (6, 1, 16, 16, 16)
    # The sinc base of the low-resolution copy reproduces the smooth truth at the same place.
    assert float((base - hr).abs().mean()) < 0.05 * float(hr.abs().mean())
    # Each LR voxel is the k-space sample of its 2x2x2 children: close to their mean for smooth data.
    pooled = torch.nn.functional.avg_pool3d(hr, 2)
    assert float((pooled - lr).abs().mean()) < 0.05 * float(lr.abs().mean())


def test_sampler_noise_keeps_patches_aligned():
    """Noise is added to magnitudes in the scan's units; a zero background must not flip sign."""
    vol = smooth_volume((48, 40, 32), seed=4)
    vol[:, :12] = 0  # air
    cfg = TrainConfig(
        **{**TINY, "noise_max": 0.02, "blur_max": 0.0, "gaussian_fraction": 0.0, "n_variants": 2}
    )
    lr, hr, _ = make_sampler([vol], cfg, seed=1).sample(16)
    pooled = torch.nn.functional.avg_pool3d(hr, 2)
    assert float((pooled - lr).abs().mean()) < 0.05 * float(hr.abs().mean())


def test_thin_volumes_get_thin_patches_and_batches_stay_aligned():
    """A thick-slice scan (16 slices -> 8 LR) is sampled with 8-slice patches; in-plane transposes
    and flips move LR, HR and base together."""
    from srgan3d.sr.config import Degradation
    from srgan3d.sr.pairs import PatchSampler

    thin = smooth_volume((48, 40, 16), seed=5) / 2500
    sampler = PatchSampler([thin], Degradation(), patch_size=12, seed=3)
    for _ in range(6):
        lr, hr, base = sampler.sample(3)
        assert lr.shape[2:] == (12, 12, 8) and hr.shape[2:] == base.shape[2:] == (24, 24, 16)
        assert float((torch.nn.functional.avg_pool3d(hr, 2) - lr).abs().mean()) < 0.05 * float(lr.abs().mean())
        # 8 slices are few for a periodic k-space model: the base rings a little at the slab ends.
        assert float((base - hr).abs().mean()) < 0.1 * float(hr.abs().mean())


def test_a_single_scan_is_split_into_slabs_no_patch_crosses(tmp_path):
    from srgan3d.sr.train import split_for_validation
    from srgan3d.volume import Volume

    aff = np.diag([1.5, 1.5, 2.0, 1.0])
    aff[:3, 3] = (-10.0, 5.0, 30.0)
    vol = Volume(np.arange(20 * 18 * 40, dtype=np.float32).reshape(20, 18, 40), aff, {"source": "scan.nii.gz"})
    (train_part,), (held,), note = split_for_validation([vol], holdout=0.3, min_slab=8)
    assert train_part.shape == (20, 18, 28) and held.shape == (20, 18, 12)
    assert "slices 28-39 of axis 2" in note
    # the parts are the scan's own voxels, each at its own place in the world
    np.testing.assert_array_equal(np.concatenate([train_part.data, held.data], axis=2), vol.data)
    np.testing.assert_allclose(held.affine[:3, 3], (vol.affine @ [0, 0, 28, 1])[:3])
    np.testing.assert_allclose(train_part.affine, vol.affine)
    # several scans: by subject, the last in name order
    a, b, c = (Volume(vol.data, aff, {"source": f"{n}.nii.gz"}) for n in ("c", "a", "b"))
    kept, out, note = split_for_validation([a, b, c], holdout=0.3, min_slab=8)
    assert [v.meta["source"] for v in kept] == ["a.nii.gz", "b.nii.gz"] and [v.meta["source"] for v in out] == ["c.nii.gz"]
    assert note == "held out by subject: c.nii.gz"
    with pytest.raises(ValueError, match="too few to split"):
        split_for_validation([Volume(vol.data[:10, :10, :10], aff)], holdout=0.3, min_slab=8)
