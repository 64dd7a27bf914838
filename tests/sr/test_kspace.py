"""k-space on the device and data consistency (`srgan3d.sr.kspace`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srgan3d.sr.degrade import degrade_array, sinc_upsample
from srgan3d.sr.kspace import data_consistency, kspace_downsample_t, sinc_upsample_t

SHAPES = [(16, 12, 10), (15, 13, 9), (8, 9, 6)]  # even and odd lengths: the Nyquist bin differs


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 1, 2), (3, 2, 1)])
def test_torch_kspace_matches_the_numpy_reference(shape, factors):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    up = sinc_upsample_t(torch.from_numpy(x), factors).numpy()
    np.testing.assert_allclose(up, sinc_upsample(x, factors), atol=1e-5)
    hr = np.random.default_rng(1).random(tuple(n * f for n, f in zip(shape, factors, strict=True)), dtype=np.float32)
    down = kspace_downsample_t(torch.from_numpy(hr), factors).numpy()
    np.testing.assert_allclose(down, degrade_array(hr, factors), atol=1e-5)


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 1, 2)])
def test_data_consistency_reproduces_the_input_when_degraded(factors):
    """Degrading the projected output gives the input back (to 1e-5 relative), whatever the
    network produced; and the projection changes nothing that already fits."""
    rng = np.random.default_rng(2)
    lr = torch.from_numpy(rng.random((12, 10, 8), dtype=np.float32) * 100 + 50)
    wild = torch.from_numpy(rng.normal(size=tuple(n * f for n, f in zip(lr.shape, factors, strict=True))).astype(np.float32)) * 80
    out = data_consistency(wild, lr, factors)
    back = kspace_downsample_t(out, factors)
    assert float((back - lr).abs().max() / lr.abs().max()) < 1e-5
    base = sinc_upsample_t(lr, factors)
    assert torch.allclose(data_consistency(base, lr, factors), base, atol=1e-3)
    # Idempotent: a projection.
    assert torch.allclose(data_consistency(out, lr, factors), out, atol=1e-3)
