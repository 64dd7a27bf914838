"""PSNR and SSIM over a mask (`srgan3d.sr.metrics`), against scikit-image and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srgan3d.sr.metrics import foreground_mask, psnr, ssim


def _pair(seed=0, shape=(20, 18, 16)):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0, 100, shape)
    return ref, ref + rng.normal(0, 3, shape)


def test_psnr_is_scikit_images_over_the_voxels_of_the_mask():
    ref, test = _pair()
    assert psnr(ref, test) == pytest.approx(peak_signal_noise_ratio(ref, test, data_range=np.ptp(ref)), abs=1e-12)
    mask = ref > 50
    expected = peak_signal_noise_ratio(ref[mask], test[mask], data_range=np.ptp(ref[mask]))
    assert psnr(ref, test, mask=mask) == pytest.approx(expected, abs=1e-12)
    # by hand: an error of 1 everywhere over a range of 100 is 40 dB
    flat = np.linspace(0, 100, 1000).reshape(10, 10, 10)
    assert psnr(flat, flat + 1) == pytest.approx(40.0, abs=1e-12)
    assert psnr(flat, flat + 1, data_range=10) == pytest.approx(20.0, abs=1e-12)
    assert psnr(flat, flat) == float("inf")


def test_ssim_is_scikit_images_map_averaged_over_the_mask():
    ref, test = _pair(1)
    mask = np.zeros(ref.shape, bool)
    mask[5:15, 4:12, 3:13] = True
    # the range is the reference's inside the mask, as for PSNR
    _, smap = structural_similarity(ref, test, data_range=np.ptp(ref[mask]), full=True, win_size=7)
    assert ssim(ref, test, mask=mask) == pytest.approx(smap[mask].mean(), abs=1e-12)
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    assert ssim(ref, test) < ssim(ref, ref + np.random.default_rng(2).normal(0, 0.5, ref.shape)) < 1.0


def test_shapes_that_differ_are_refused():
    ref, test = _pair()
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(ref, test[:-1])
    with pytest.raises(ValueError, match="mask shape"):
        ssim(ref, test, mask=np.ones((2, 2, 2), bool))


def test_the_foreground_is_above_five_percent_of_the_bright_end():
    x = np.zeros((10, 10, 10))
    x[2:8, 2:8, 2:8] = 100.0
    x[0, 0, 0] = 4.0  # air noise under 5% of the body's level
    m = foreground_mask(x)
    assert m.sum() == 216 and not m[0, 0, 0]
