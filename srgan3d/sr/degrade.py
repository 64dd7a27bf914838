"""High- to low-resolution simulation, and the interpolation baselines, on one grid convention.

Every function here uses the field-of-view rule of `srgan3d.volume.upscaled_affine`: coarse voxel
i along an axis scaled by s is centred at fine index s*i + (s-1)/2. A plain crop of k-space would
sample at fine index s*i instead; the half-voxel shift that causes costs about 3 dB of PSNR for
every method, so the k-space functions apply the matching phase ramp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft
from scipy import ndimage

from srgan3d.volume import Volume, _as_factors, downscaled_affine, upscaled_affine

DegradeModel = Literal["kspace", "gaussian"]


def _freqs(n: int) -> np.ndarray:
    """Integer DFT frequencies of an n-point transform, in FFT order."""
    return np.fft.fftfreq(n, d=1.0 / n)


def _shift_ramp(n: int, shift: float, axis: int, ndim: int) -> np.ndarray:
    """Multiplier that moves a signal of length n by `shift` samples: x(t) -> x(t + shift)."""
    ramp = np.exp(2j * np.pi * _freqs(n) * shift / n).astype(np.complex64)
    shape = [1] * ndim
    shape[axis] = n
    return ramp.reshape(shape)


def kspace_downsample_axis(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Keep the central 1/s of k-space along `axis`, sampled on the field-of-view grid.

    The length along `axis` must be a multiple of s. The result has length n/s and the mean
    intensity of the input.
    """
    if s == 1:
        return x
    n = x.shape[axis]
    if n % s:
        raise ValueError(f"length {n} along axis {axis} is not a multiple of the factor {s}")
    m = n // s
    spec = scipy.fft.fft(x, axis=axis, workers=-1)
    spec *= _shift_ramp(n, (s - 1) / 2.0, axis, x.ndim)
    keep = np.concatenate([np.arange(0, (m + 1) // 2), np.arange(n - m // 2, n)])
    lr = np.take(spec, keep, axis=axis)
    if m % 2 == 0:
        # Sampling on the coarse grid folds fine bins +m/2 and -m/2 into coarse bin m/2: sum them,
        # so that a real input stays real and sinc upsampling followed by this is the identity.
        idx = [slice(None)] * x.ndim
        idx[axis] = m // 2
        plus = np.take(spec, [m // 2], axis=axis)
        minus = np.take(spec, [n - m // 2], axis=axis)
        lr[tuple(idx)] = (plus + minus).squeeze(axis)
    out = scipy.fft.ifft(lr, axis=axis, workers=-1).real / s
    return out.astype(np.float32)


def kspace_upsample_axis(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Zero-filled k-space (sinc) interpolation by s along `axis`, on the field-of-view grid."""
    if s == 1:
        return x
    m = x.shape[axis]
    n = m * s
    spec = scipy.fft.fft(x, axis=axis, workers=-1)
    shape = list(x.shape)
    shape[axis] = n
    big = np.zeros(shape, dtype=np.complex64)

    def put(dst: slice, src: slice, scale: float = 1.0) -> None:
        d = [slice(None)] * x.ndim
        r = [slice(None)] * x.ndim
        d[axis], r[axis] = dst, src
        big[tuple(d)] = spec[tuple(r)] * scale

    half = (m + 1) // 2
    put(slice(0, half), slice(0, half))
    put(slice(n - m // 2, n), slice(m - m // 2, m))
    if m % 2 == 0:
        # Split the coarse Nyquist bin evenly between +m/2 and -m/2.
        put(slice(m // 2, m // 2 + 1), slice(m // 2, m // 2 + 1), 0.5)
        put(slice(n - m // 2, n - m // 2 + 1), slice(m // 2, m // 2 + 1), 0.5)
    big *= _shift_ramp(n, -(s - 1) / 2.0, axis, x.ndim)
    out = scipy.fft.ifft(big, axis=axis, workers=-1).real * s
    return out.astype(np.float32)


def gaussian_downsample_axis(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Gaussian slice profile of FWHM s fine voxels, sampled at the coarse voxel centres."""
    if s == 1:
        return x
    n = x.shape[axis]
    if n % s:
        raise ValueError(f"length {n} along axis {axis} is not a multiple of the factor {s}")
    sigma = s / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    blurred = ndimage.gaussian_filter1d(x.astype(np.float32), sigma, axis=axis, mode="reflect")
    centres = s * np.arange(n // s) + (s - 1) / 2.0
    lo = np.floor(centres).astype(int)
    w = (centres - lo).astype(np.float32)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = len(centres)
    w = w.reshape(shape)
    return (np.take(blurred, lo, axis=axis) * (1 - w) + np.take(blurred, hi, axis=axis) * w).astype(
        np.float32
    )


def add_rician_noise(x: np.ndarray, sigma: float, *, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of standard deviation `sigma` per channel."""
    if sigma <= 0:
        return x.astype(np.float32)
    real = x + rng.normal(0.0, sigma, size=x.shape)
    imag = rng.normal(0.0, sigma, size=x.shape)
    return np.sqrt(real * real + imag * imag).astype(np.float32)


def crop_to_multiple(volume: Volume, factors: int | Sequence[int]) -> Volume:
    """Trim the far end of each axis so its length is a multiple of its factor (affine unchanged)."""
    f = _as_factors(factors)
    sl = tuple(slice(0, (n // s) * s) for n, s in zip(volume.shape, f, strict=True))
    return Volume(np.ascontiguousarray(volume.data[sl]), volume.affine.copy(), dict(volume.meta))


def degrade_array(
    hr: np.ndarray,
    factors: int | Sequence[int] = 2,
    *,
    model: DegradeModel = "kspace",
    noise_sigma: float = 0.0,
    seed: int | None = None,
) -> np.ndarray:
    """Simulate the low-resolution acquisition of a high-resolution array.

    Args:
        hr: array of shape (X, Y, Z), each length a multiple of its factor.
        factors: one integer or one per axis, e.g. (2, 2, 2) or (1, 1, 2) for through-plane.
        model: "kspace" (central k-space kept; how a scanner acquires a smaller matrix) or
            "gaussian" (Gaussian slice profile of FWHM = factor).
        noise_sigma: Rician noise level in the units of `hr` (0 = none).
        seed: seeds the noise.

    Returns:
        float32 array of shape (X/sx, Y/sy, Z/sz).
    """
    f = _as_factors(factors)
    down = kspace_downsample_axis if model == "kspace" else gaussian_downsample_axis
    if model not in ("kspace", "gaussian"):
        raise ValueError(f"degradation model must be 'kspace' or 'gaussian', not {model!r}")
    out = np.asarray(hr, dtype=np.float32)
    for axis, s in enumerate(f):
        out = down(out, s, axis)
    if noise_sigma > 0:
        out = add_rician_noise(out, noise_sigma, rng=np.random.default_rng(seed))
    return out


def degrade_volume(
    hr: Volume,
    factors: int | Sequence[int] = 2,
    *,
    model: DegradeModel = "kspace",
    noise_sigma: float = 0.0,
    seed: int | None = None,
) -> Volume:
    """`degrade_array` on a `Volume`; the result carries the coarse affine of the same grid.

    The input must already have lengths divisible by the factors (see `crop_to_multiple`).
    """
    data = degrade_array(hr.data, factors, model=model, noise_sigma=noise_sigma, seed=seed)
    meta = dict(
        hr.meta, degraded={"factors": list(_as_factors(factors)), "model": model, "noise_sigma": noise_sigma}
    )
    return Volume(data, downscaled_affine(hr.affine, factors), meta)


def sinc_upsample(lr: np.ndarray, factors: int | Sequence[int] = 2) -> np.ndarray:
    """Zero-filled k-space interpolation: what a scanner's 'interpolate to a larger matrix' gives."""
    out = np.asarray(lr, dtype=np.float32)
    for axis, s in enumerate(_as_factors(factors)):
        out = kspace_upsample_axis(out, s, axis)
    return out


def spline_upsample(lr: np.ndarray, factors: int | Sequence[int] = 2, *, order: int = 3) -> np.ndarray:
    """B-spline interpolation (0 nearest, 1 trilinear, 3 tricubic) on the field-of-view grid.

    `scipy.ndimage.zoom(grid_mode=True)` aligns the outer edges of the grids, which is the rule of
    `upscaled_affine`; mirror padding about those edges handles the borders.
    """
    f = _as_factors(factors)
    return ndimage.zoom(
        np.asarray(lr, dtype=np.float32), f, order=order, grid_mode=True, mode="reflect", prefilter=order > 1
    ).astype(np.float32)


def upsample_volume(lr: Volume, factors: int | Sequence[int], *, method: str) -> Volume:
    """Interpolation baselines on a `Volume`: "sinc", "tricubic", "trilinear" or "nearest"."""
    if method == "sinc":
        data = sinc_upsample(lr.data, factors)
    elif method in ("tricubic", "trilinear", "nearest"):
        data = spline_upsample(lr.data, factors, order={"tricubic": 3, "trilinear": 1, "nearest": 0}[method])
    else:
        raise ValueError(f"unknown interpolation {method!r}; use sinc, tricubic, trilinear or nearest")
    return Volume(data, upscaled_affine(lr.affine, factors), dict(lr.meta))
