"""The networks' intensity scaling (`srgan3d.sr.intensity`): robust range onto [0, 1] and back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import smooth_volume

from srgan3d.sr.intensity import IntensityScaling


def test_the_foreground_range_maps_to_zero_one_and_back():
    rng = np.random.default_rng(0)
    x = np.zeros((40, 40, 20), np.float32)
    x[5:35, 5:35, 3:17] = rng.uniform(200, 1200, (30, 30, 14))
    s = IntensityScaling.fit(x)
    fg = x[x > 0]
    # the percentiles of the foreground (air below 5% of the bright end left out), by numpy itself
    assert s.lo == pytest.approx(np.percentile(fg, 0.5)) and s.hi == pytest.approx(np.percentile(fg, 99.5))
    y = s.forward(x)
    assert y.dtype == np.float32 and np.mean((y[x > 0] >= 0) & (y[x > 0] <= 1)) > 0.98
    assert np.allclose(s.inverse(y), x, atol=1e-3)


def test_a_constant_or_non_finite_volume_still_scales():
    s = IntensityScaling.fit(np.full((8, 8, 8), 7.0, np.float32))
    assert s.hi > s.lo and np.allclose(s.inverse(s.forward(np.float32([7.0]))), 7.0)
    x = np.arange(512, dtype=np.float32).reshape(8, 8, 8)
    x[0, 0, 0] = np.nan
    s = IntensityScaling.fit(x)
    assert np.isfinite([s.lo, s.hi]).all()


def test_intensity_scaling_inverse_is_exact():
    x = smooth_volume((20, 20, 10)) * 3.7 - 100
    s = IntensityScaling.fit(x)
    y = s.forward(x)
    assert 0.0 < float(np.median(y)) < 1.0
    np.testing.assert_allclose(s.inverse(y), x, rtol=1e-5, atol=1e-3)
