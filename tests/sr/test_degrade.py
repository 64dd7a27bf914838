from __future__ import annotations

import numpy as np
import pytest
from conftest import smooth_volume
from scipy import ndimage

from srgan3d.sr.degrade import crop_to_multiple, degrade_array, degrade_volume, sinc_upsample, spline_upsample
from srgan3d.volume import Volume, upscaled_affine


def _shifted_error(hr, up, shift, axis):
    moved = ndimage.shift(up, [shift if a == axis else 0 for a in range(3)], order=3, mode="nearest")
    inner = (slice(6, -6),) * 3
    return float(np.sqrt(np.mean((moved - hr)[inner] ** 2)))


@pytest.mark.parametrize("model", ["kspace", "gaussian"])
@pytest.mark.parametrize("back", ["sinc", "tricubic"])
def test_degraded_grid_matches_the_affine_rule(model, back):
    """Degrade, interpolate back on the affine rule's grid: the error is smallest at zero shift
    along every axis (a plain k-space crop would put the minimum half a voxel away)."""
    hr = smooth_volume((48, 48, 48), seed=1)
    lr = degrade_array(hr, 2, model=model)
    up = sinc_upsample(lr, 2) if back == "sinc" else spline_upsample(lr, 2, order=3)
    for axis in range(3):
        errors = {s: _shifted_error(hr, up, s, axis) for s in (-0.5, -0.25, 0.0, 0.25, 0.5)}
        assert min(errors, key=errors.get) == 0.0, errors


def test_plain_kspace_crop_would_be_misaligned():
    """Guard for the test above: the same check on a naive crop (sampling at s*i) is off-centre."""
    hr = smooth_volume((48, 48, 48), seed=2)
    spec = np.fft.fftshift(np.fft.fftn(hr))
    naive = np.fft.ifftn(np.fft.ifftshift(spec[12:36, 12:36, 12:36])).real / 8
    up = sinc_upsample(naive.astype(np.float32), 2)
    errors = {s: _shifted_error(hr, up, s, 0) for s in (-0.5, 0.0, 0.5)}
    assert min(errors, key=errors.get) != 0.0


def test_shapes_mean_and_identity():
    x = smooth_volume((32, 30, 20))
    lr = degrade_array(x, (2, 3, 1))
    assert lr.shape == (16, 10, 20)
    assert lr.mean() == pytest.approx(x.mean(), rel=1e-5)
    # Band-limited round trip: k-space degradation undoes zero-filled upsampling exactly.
    np.testing.assert_allclose(degrade_array(sinc_upsample(lr, (2, 3, 1)), (2, 3, 1)), lr, atol=1e-3)
    assert degrade_array(x, (1, 1, 2), model="gaussian").shape == (32, 30, 10)
    with pytest.raises(ValueError, match="not a multiple"):
        degrade_array(x[:31], 2)


def test_rician_noise_is_seeded_and_positive():
    x = smooth_volume((16, 16, 16))
    a = degrade_array(x, 2, noise_sigma=20.0, seed=5)
    b = degrade_array(x, 2, noise_sigma=20.0, seed=5)
    c = degrade_array(x, 2, noise_sigma=20.0, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a >= 0).all()
    assert np.std(a - degrade_array(x, 2)) == pytest.approx(20.0, rel=0.2)


def test_degrade_volume_carries_the_coarse_affine():
    aff = np.diag([0.7, 0.8, 1.5, 1.0])
    aff[:3, 3] = [10, 20, 30]
    hr = crop_to_multiple(Volume(smooth_volume((33, 32, 17)), aff), (2, 2, 2))
    assert hr.shape == (32, 32, 16)
    lr = degrade_volume(hr, 2)
    np.testing.assert_allclose(upscaled_affine(lr.affine, 2), hr.affine, atol=1e-12)
