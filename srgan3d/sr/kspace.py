"""k-space on the device (torch.fft), with the grid convention of `srgan3d.sr.degrade`: the
zero-filled k-space (sinc) upsampling the generator adds its detail to, k-space truncation, and
the data consistency that keeps the band the scan measured exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch


def _shift_ramp_t(n: int, shift: float, *, device: torch.device) -> torch.Tensor:
    """Multiplier along the last axis that moves a length-n signal by `shift` samples."""
    f = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64)
    return torch.polar(torch.ones_like(f), 2 * math.pi * f * shift / n).to(torch.complex64)


def _kspace_down_last(x: torch.Tensor, s: int) -> torch.Tensor:
    n = x.shape[-1]
    if n % s:
        raise ValueError(f"length {n} is not a multiple of the factor {s}")
    m = n // s
    spec = torch.fft.fft(x, dim=-1) * _shift_ramp_t(n, (s - 1) / 2.0, device=x.device)
    lo, hi = spec[..., : (m + 1) // 2], spec[..., n - m // 2 :]
    if m % 2 == 0:
        # Fine bins +m/2 and -m/2 fold into one coarse bin (see degrade.kspace_downsample_axis).
        hi = torch.cat([(spec[..., m // 2] + spec[..., n - m // 2])[..., None], hi[..., 1:]], dim=-1)
    return torch.fft.ifft(torch.cat([lo, hi], dim=-1), dim=-1).real / s


def _kspace_up_last(x: torch.Tensor, s: int) -> torch.Tensor:
    m = x.shape[-1]
    n = m * s
    spec = torch.fft.fft(x, dim=-1)
    half = (m + 1) // 2
    pos, neg = spec[..., :half], spec[..., m - m // 2 :]
    if m % 2 == 0:  # split the coarse Nyquist bin evenly between +m/2 and -m/2
        nyq = 0.5 * spec[..., m // 2 : m // 2 + 1]
        pos, neg = torch.cat([pos, nyq], dim=-1), torch.cat([nyq, neg[..., 1:]], dim=-1)
    zeros = spec.new_zeros((*spec.shape[:-1], n - pos.shape[-1] - neg.shape[-1]))
    big = torch.cat([pos, zeros, neg], dim=-1) * _shift_ramp_t(n, -(s - 1) / 2.0, device=x.device)
    return torch.fft.ifft(big, dim=-1).real * s


def _per_axis(x: torch.Tensor, factors: Sequence[int], fn: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """Apply `fn` along each of the last three axes with its factor (1 = untouched)."""
    for k, s in enumerate(factors):
        if s != 1:
            dim = x.ndim - 3 + k
            x = fn(x.movedim(dim, -1), int(s)).movedim(-1, dim)
    return x.contiguous()


def kspace_downsample_t(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """`srgan3d.sr.degrade.degrade_array` (k-space model, no noise) over the last three axes of a
    float tensor, on its own device."""
    return _per_axis(x.float(), factors, _kspace_down_last)


def sinc_upsample_t(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Zero-filled k-space interpolation (`srgan3d.sr.degrade.sinc_upsample`) over the last three
    axes of a float tensor, on its own device."""
    return _per_axis(x.float(), factors, _kspace_up_last)


def data_consistency(sr: torch.Tensor, lr: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Project `sr` onto the images whose k-space acquisition is `lr`: SR - ZF(down(SR)) + ZF(lr).

    The output keeps what the network added beyond the scanner's band and takes the measured band
    from the input, so `kspace_downsample_t(result) == lr` (to float precision). Computed on the whole
    volume: a window's FFT would wrap at its edges.
    """
    return sr - sinc_upsample_t(kspace_downsample_t(sr, factors), factors) + sinc_upsample_t(lr, factors)


def out_of_band(detail: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """The part of `detail` outside the band a k-space acquisition by `factors` keeps:
    detail - ZF(down(detail)). With a zero-filled k-space base, base + out_of_band(detail) is the
    data-consistent output."""
    return detail - sinc_upsample_t(kspace_downsample_t(detail, factors), factors)
