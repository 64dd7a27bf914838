"""The slice axis of a thick-slice scan as linear operators: the slice profile that made each slice
from the thin anatomy, the prefiltered cubic B-spline base on the affine rule's grid, the exact
least-squares consistency with the measured slices, and whether a scan's axes carry detail.

Everything acts along the last axis of an array on the affine rule's grid: fine sample j of a
line upscaled by `factor` sits at coarse position (j + 0.5) / factor - 0.5, so coarse sample i is
centred at fine position factor * i + (factor - 1) / 2. Each operator is a small matrix per line
length (cached), so the same numbers come out in training patches, whole volumes, numpy and torch.

- `SliceProfile.matrix(n)` (n_coarse x n_fine): each measured slice is the thin anatomy weighted
  by the profile (boxcar of the slice thickness, or a Gaussian whose FWHM is the thickness)
  around its centre; a thickness below the spacing leaves a gap, above it the slices overlap.
  Each fine voxel counts by the share of the profile over its extent; the ends are mirrored.
- `bspline_matrix(n, factor)` (n_fine x n_coarse): scipy's prefiltered cubic B-spline (the
  baseline, `srgan3d.sr.degrade.spline_upsample`) as a matrix, mirrored at the ends.
- `consistency_matrices`: the projection of x onto {x : A x = y} that moves x least,
  x + A^T (A A^T)^-1 (y - A x); for a contiguous boxcar it adds each coarse residual to its
  `factor` children (the rule `slice_profile_consistency` applied before this module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr

from srgan3d.serialisation import Record

PROFILES = ("boxcar", "gaussian")

#: Share of a line's power (DC excluded) above half its Nyquist frequency below which an axis is
#: taken as interpolated, not acquired. Measured on the real MRI here (benchmarks/RESULTS.md): the
#: acquired in-plane axes hold 0.12-6.7% (CHAOS, ukat, renalseg, TotalSegmentator MR), the same
#: scans interpolated 2x in-plane 0% (zero-filled k-space) to 0.1% (cubic B-spline). A cheap
#: pre-check; the held-out planes decide.
DETAIL_MIN_SHARE = 0.0005


@dataclass(frozen=True)
class SliceProfile(Record):
    """How a scanner made each slice from the thin anatomy, in units of the slice spacing.

    Attributes:
        kind: "boxcar" (a slab of the thickness, as a 3D acquisition's slice or an average of thin
            slices) or "gaussian" (full width at half maximum = the thickness, a 2D multi-slice
            RF profile).
        factor: fine samples per slice spacing (the upscale factor along the slice axis).
        thickness: slice thickness over slice spacing; 1 = contiguous, < 1 a gap, > 1 overlap.
    """

    kind: str = "boxcar"
    factor: int = 2
    thickness: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PROFILES:
            raise ValueError(f"slice profile must be one of {', '.join(PROFILES)}, not {self.kind!r}")
        if int(self.factor) != self.factor or self.factor < 2:
            raise ValueError(f"the factor along the slices must be an integer >= 2, not {self.factor}")
        if not (0.05 <= self.thickness <= 4.0):
            raise ValueError(
                f"slice thickness / spacing = {self.thickness:.3g} is outside 0.05-4; check the slice thickness "
                "given (--slice-thickness, in mm) against the spacing between slices"
            )

    @property
    def width(self) -> float:
        """The profile's width (boxcar) or FWHM (Gaussian) in fine samples."""
        return self.thickness * self.factor

    def describe(self, spacing_mm: float | None = None) -> str:
        if spacing_mm is None:
            return f"{self.kind}, thickness {self.thickness:.3g} x spacing, x{self.factor}"
        thick = self.thickness * spacing_mm
        gap = spacing_mm - thick
        return f"{self.kind} {thick:.3g} mm at {spacing_mm:.3g} mm spacing ({'gap' if gap >= 0 else 'overlap'} {abs(gap):.3g} mm)"

    def matrix(self, n_fine: int) -> np.ndarray:
        """(n_fine // factor, n_fine) float64: row i weights the fine samples of slice i."""
        return _profile_matrix(self.kind, self.factor, round(self.thickness, 9), n_fine).copy()


@lru_cache(maxsize=64)
def _profile_matrix(kind: str, factor: int, thickness: float, n_fine: int) -> np.ndarray:
    if n_fine % factor:
        raise ValueError(f"a line of {n_fine} fine samples is not a whole number of slices of {factor}")
    n = n_fine // factor
    width = thickness * factor
    if kind == "boxcar":
        half = width / 2
        support = int(math.ceil(half + 0.5)) + 1
    else:
        sigma = width / (2 * math.sqrt(2 * math.log(2)))
        support = int(math.ceil(4 * sigma + 0.5)) + 1
    a = np.zeros((n, n_fine))
    for i in range(n):
        c = factor * i + (factor - 1) / 2
        lo, hi = int(math.floor(c - support)), int(math.ceil(c + support))
        j = np.arange(lo, hi + 1)
        if kind == "boxcar":
            w = np.clip(np.minimum(j + 0.5, c + half) - np.maximum(j - 0.5, c - half), 0, None)
        else:
            w = ndtr((j + 0.5 - c) / sigma) - ndtr((j - 0.5 - c) / sigma)
        w = w / w.sum()
        np.add.at(a[i], _mirror(j, n_fine), w)
    return a


def _mirror(j: np.ndarray, n: int) -> np.ndarray:
    """Half-sample symmetric reflection of indices into [0, n): -1 -> 0, n -> n - 1."""
    period = 2 * n
    j = np.mod(j, period)
    return np.where(j < n, j, period - 1 - j)


@lru_cache(maxsize=64)
def _bspline(n_coarse: int, factor: int) -> np.ndarray:
    from srgan3d.sr.degrade import spline_upsample

    eye = np.eye(n_coarse, dtype=np.float32)[:, :, None]
    # the impulse responses along axis 0 are the columns; float64 sums would not change them
    return spline_upsample(eye, (factor, 1, 1), order=3)[:, :, 0].astype(np.float64)


def bspline_matrix(n_coarse: int, factor: int) -> np.ndarray:
    """(factor * n_coarse, n_coarse): prefiltered cubic B-spline interpolation on the affine rule's
    grid, mirrored at the ends, exactly `spline_upsample(..., order=3)` along one axis."""
    return _bspline(n_coarse, factor).copy()


@lru_cache(maxsize=64)
def _projection(kind: str, factor: int, thickness: float, n_fine: int) -> tuple[np.ndarray, np.ndarray]:
    a = _profile_matrix(kind, factor, thickness, n_fine)
    gram = a @ a.T
    p = np.linalg.solve(gram, a).T  # A^T (A A^T)^-1, (n_fine, n_coarse)
    return a, p


def consistency_matrices(profile: SliceProfile, n_fine: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, P): the profile (n_coarse x n_fine) and A^T (A A^T)^-1 (n_fine x n_coarse), so that
    x + P (y - A x) is the least-squares projection of x onto {x : A x = y}."""
    a, p = _projection(profile.kind, profile.factor, round(profile.thickness, 9), n_fine)
    return a.copy(), p.copy()


def _along_last(x: torch.Tensor, m: np.ndarray) -> torch.Tensor:
    """x (..., n) times m^T: the matrix `m` (k x n) applied along the last axis, in x's dtype."""
    return torch.matmul(x, torch.from_numpy(np.ascontiguousarray(m.T)).to(device=x.device, dtype=x.dtype))


def apply_profile(x: torch.Tensor, profile: SliceProfile) -> torch.Tensor:
    """The measured slices of thin data `x` (..., n_fine) along its last axis: (..., n_fine / factor)."""
    return _along_last(x, _profile_matrix(profile.kind, profile.factor, round(profile.thickness, 9), x.shape[-1]))


def bspline_upsample(lr: torch.Tensor, factor: int) -> torch.Tensor:
    """The cubic B-spline base along the last axis: (..., n) -> (..., factor * n)."""
    return _along_last(lr, _bspline(lr.shape[-1], factor))


def project_consistent(sr: torch.Tensor, lr: torch.Tensor, profile: SliceProfile) -> torch.Tensor:
    """`sr` (..., factor * n) moved least (in the L2 sense, per line) so that its profile gives
    the measured `lr` (..., n) back: exactly, up to float rounding, for any linear profile."""
    a, p = consistency_matrices(profile, sr.shape[-1])
    if lr.shape[-1] * profile.factor != sr.shape[-1]:
        raise ValueError(f"{lr.shape[-1]} slices do not match {sr.shape[-1]} fine samples at x{profile.factor}")
    residual = lr - _along_last(sr, a)
    return sr + _along_last(residual, p)


def bspline_consistent(lr: torch.Tensor, profile: SliceProfile) -> torch.Tensor:
    """The best non-learned through-plane SR measured here: the B-spline base made consistent
    with the slice profile (benchmarks/RESULTS.md)."""
    return project_consistent(bspline_upsample(lr, profile.factor), lr, profile)


# --------------------------------------------------------------------------------------------
# Which axes carry detail


@dataclass(frozen=True)
class AxisDetail:
    """Per array axis, the share of the power (DC excluded) above half the Nyquist frequency,
    and mean |2nd difference| / mean |1st difference| (about 1.5 where an axis has texture at
    its own sampling, under 1 where it was interpolated)."""

    upper_share: tuple[float, float, float]
    roughness: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"upper_share": [round(v, 5) for v in self.upper_share], "roughness": [round(v, 3) for v in self.roughness]}


def measure_axis_detail(data: np.ndarray) -> AxisDetail:
    """`AxisDetail` of a 3D array (intensities as they are; a constant offset does not matter)."""
    x = np.asarray(data, dtype=np.float32)
    shares, rough = [], []
    for axis in range(3):
        n = x.shape[axis]
        if n < 4:
            shares.append(float("nan"))
            rough.append(float("nan"))
            continue
        spec = np.abs(np.fft.rfft(x, axis=axis)) ** 2
        power = spec.sum(axis=tuple(a for a in range(3) if a != axis))[1:]
        freqs = np.fft.rfftfreq(n)[1:]
        total = float(power.sum())
        shares.append(float(power[freqs > 0.25].sum() / total) if total > 0 else 0.0)
        d1 = np.abs(np.diff(x, axis=axis)).mean()
        d2 = np.abs(np.diff(x, n=2, axis=axis)).mean()
        rough.append(float(d2 / d1) if d1 > 0 else 0.0)
    return AxisDetail(tuple(shares), tuple(rough))  # type: ignore[arg-type]


#: An in-plane axis teaches the slice axis only where its spacing is at most this many times the
#: target (the slice spacing over the factor): a 8 mm axis beside a 3 mm target has nothing finer
#: to show.
TEACHING_SPACING_RATIO = 1.25


def teaching_axes(spacing_mm: Sequence[float], slice_axis: int, factor: int) -> tuple[int, ...]:
    """The non-slice axes fine enough to teach the slice axis at `factor`."""
    target = float(spacing_mm[slice_axis]) / factor
    return tuple(a for a in range(3) if a != slice_axis and float(spacing_mm[a]) <= TEACHING_SPACING_RATIO * target)


def inplane_can_teach(detail: AxisDetail, axes: Sequence[int]) -> tuple[bool, str]:
    """Whether the teaching `axes` carry detail to learn the slice axis's missing detail from:
    each must hold at least `DETAIL_MIN_SHARE` of its power above half its Nyquist frequency, else
    it was interpolated (train at the acquired matrix, or there is nothing to learn)."""
    if not axes:
        return False, "no in-plane axis is as fine as the target spacing: nothing to learn the slice axis from"
    low = [a for a in axes if not detail.upper_share[a] >= DETAIL_MIN_SHARE]
    if low:
        shares = ", ".join(f"axis {a} {100 * detail.upper_share[a]:.2f}%" for a in low)
        return False, (f"the in-plane axes carry no detail to learn from ({shares} of their power in the upper "
                       f"half-band, under {100 * DETAIL_MIN_SHARE:.1f}%: interpolated in-plane)")  # fmt: skip
    shares = ", ".join(f"axis {a} {100 * detail.upper_share[a]:.2f}%" for a in axes)
    return True, f"in-plane upper half-band {shares}"


#: The slice axis of the thick scan must be at least this rough (mean |2nd difference| over mean
#: |1st difference|) relative to the teaching axes made as thick by the same profile; a smoother
#: slice axis says the truth along the slices is band-limited (itself interpolated), where the
#: detail learnt in-plane costs. Set on the real volumes of benchmarks/RESULTS.md: 0.99-1.17 where
#: the network gained +0.8 to +3.6 dB over B-spline, 0.92 on the TotalSegmentator MR's resampled z
#: (the network -0.39 dB), 0.94 on renalseg (+0.15 dB over B-spline + consistency).
SMOOTH_SLICES_RATIO = 0.97


def slice_roughness_ratio(x: np.ndarray, teach: Sequence[int], profile: SliceProfile) -> float:
    """Roughness of `x`'s slice axis (last) over the mean roughness of its teaching axes after the
    slice profile is applied along them: about 1 where the slices were made from a truth like the
    in-plane anatomy, below 1 where the truth along the slices was smoother."""
    x = np.asarray(x, dtype=np.float32)
    own = measure_axis_detail(x).roughness[2]
    made = []
    for t in teach:
        xt = np.moveaxis(x, t, -1)
        n = xt.shape[-1] - xt.shape[-1] % profile.factor
        thick = apply_profile(torch.from_numpy(np.ascontiguousarray(xt[..., :n])), profile).numpy()
        made.append(measure_axis_detail(thick).roughness[2])
    return float(own / np.mean(made)) if made and np.mean(made) > 0 else float("nan")


def slices_can_learn(x: np.ndarray, teach: Sequence[int], profile: SliceProfile) -> tuple[bool, str]:
    """Whether the slice axis looks made from a truth with in-plane-like detail
    (`slice_roughness_ratio` >= `SMOOTH_SLICES_RATIO`), with the reason in words."""
    ratio = slice_roughness_ratio(x, teach, profile)
    if ratio >= SMOOTH_SLICES_RATIO:
        return True, f"slice-axis roughness {ratio:.2f} of the in-plane axes made as thick"
    return False, (f"the slices are smoother than the in-plane axes made as thick (roughness ratio {ratio:.2f} < "
                   f"{SMOOTH_SLICES_RATIO}): the truth along the slices is likely band-limited, where detail learnt "
                   "in-plane costs")  # fmt: skip


# --------------------------------------------------------------------------------------------
# The slice profile and the in-plane grid from the header


@dataclass(frozen=True)
class AcquisitionProtocol(Record):
    """A scan's acquisition as a through-plane model card records it and checks other scans
    against (`protocol_mismatch`): the slice profile and factor, the slice spacing and thickness,
    the in-plane spacings and the scanner's in-plane interpolation."""

    profile: str
    factor: int
    spacing_mm: float
    thickness_mm: float
    inplane_mm: tuple[float, ...]
    inplane_factor: int = 1


@dataclass(frozen=True)
class SliceGeometry:
    """What a scan's header says about its slice axis and in-plane grid.

    Attributes:
        profile: the slice profile in units of the slice spacing.
        axis: the slice axis (array axis).
        spacing_mm: between slice centres.
        thickness_mm: the slice thickness (FWHM for a Gaussian profile).
        thickness_from: where the thickness came from ("DICOM SliceThickness", "--slice-thickness",
            or "assumed = spacing").
        inplane_mm: the two in-plane spacings, in array order.
        inplane_factor: the scanner's in-plane interpolation (Rows/Columns over the acquisition
            matrix; 1: none or not known). Training then runs at the acquired resolution.
    """

    profile: SliceProfile
    axis: int
    spacing_mm: float
    thickness_mm: float
    thickness_from: str
    inplane_mm: tuple[float, float]
    inplane_factor: int = 1

    @property
    def gap_mm(self) -> float:
        """Spacing minus thickness: > 0 a gap between slices, < 0 an overlap."""
        return self.spacing_mm - self.thickness_mm

    @property
    def acquired_inplane_mm(self) -> tuple[float, float]:
        return (self.inplane_mm[0] * self.inplane_factor, self.inplane_mm[1] * self.inplane_factor)

    def protocol(self) -> AcquisitionProtocol:
        """The acquisition protocol as a model card records it (to 4 decimals)."""
        return AcquisitionProtocol(self.profile.kind, self.profile.factor, round(self.spacing_mm, 4),
                                   round(self.thickness_mm, 4), tuple(round(v, 4) for v in self.inplane_mm),
                                   self.inplane_factor)  # fmt: skip


#: Relative tolerance on spacings and thickness before a scan counts as another protocol.
PROTOCOL_RTOL = 0.1


def slice_geometry(
    spacing_mm: tuple[float, float, float] | np.ndarray, meta: dict[str, Any], *, axis: int, factor: int,
    kind: str = "boxcar", thickness_mm: float | None = None,
) -> SliceGeometry:  # fmt: skip
    """The slice profile and grid of a scan from its header.

    DICOM (`meta` from `srgan3d.io.read_dicom_series`, slices along array axis 2): SliceThickness
    against the spacing between slice centres (a gap or an overlap), and AcquisitionMatrix
    against Rows/Columns (in-plane interpolation by the scanner). NIfTI and others: thickness =
    spacing. `thickness_mm` (the user's `--slice-thickness`) overrides both."""
    spacing = [float(v) for v in spacing_mm]
    inplane = tuple(spacing[a] for a in range(3) if a != axis)
    dicom_slices = meta.get("format") == "dicom" and axis == 2
    if thickness_mm is not None:
        thick, source = float(thickness_mm), "--slice-thickness"
    elif dicom_slices and meta.get("slice_thickness_mm"):
        thick, source = float(meta["slice_thickness_mm"]), "DICOM SliceThickness"
    else:
        thick, source = spacing[axis], "assumed = spacing"
    inplane_factor = _inplane_factor(meta) if dicom_slices else 1
    profile = SliceProfile(kind, factor, thick / spacing[axis])
    return SliceGeometry(profile, axis, spacing[axis], thick, source, inplane, inplane_factor)  # type: ignore[arg-type]


def _inplane_factor(meta: dict[str, Any]) -> int:
    """Rows/Columns over the acquired matrix, rounded; 1 when the header does not say."""
    acq = [int(v) for v in meta.get("acquisition_matrix") or [] if int(v) > 0]
    rows, cols = int(meta.get("rows") or 0), int(meta.get("columns") or 0)
    if not acq or not rows or not cols:
        return 1
    ratio = max(rows, cols) / max(acq)
    return max(1, int(round(ratio))) if ratio >= 1.5 else 1


def protocol_mismatch(expected: AcquisitionProtocol, got: AcquisitionProtocol) -> str | None:
    """None when `got` is the protocol `expected` (a model card's) within `PROTOCOL_RTOL`, else
    what differs, in words."""
    diffs = []
    for key in ("profile", "factor", "inplane_factor"):
        if getattr(expected, key) != getattr(got, key):
            diffs.append(f"{key} {getattr(got, key)} (the weights': {getattr(expected, key)})")
    for key in ("spacing_mm", "thickness_mm"):
        e, g = float(getattr(expected, key)), float(getattr(got, key))
        if abs(g - e) > PROTOCOL_RTOL * e:
            diffs.append(f"{key.removesuffix('_mm')} {g:.3g} mm (the weights': {e:.3g} mm)")
    e_in, g_in = sorted(expected.inplane_mm), sorted(got.inplane_mm)
    if any(abs(g - e) > PROTOCOL_RTOL * e for e, g in zip(e_in, g_in, strict=True)):
        diffs.append(f"in-plane {g_in[0]:.3g}x{g_in[1]:.3g} mm (the weights': {e_in[0]:.3g}x{e_in[1]:.3g} mm)")
    return "; ".join(diffs) or None


__all__ = [
    "DETAIL_MIN_SHARE", "PROFILES", "PROTOCOL_RTOL", "AcquisitionProtocol", "AxisDetail", "SliceGeometry", "SliceProfile", "protocol_mismatch",
    "slice_geometry", "apply_profile", "bspline_consistent",
    "bspline_matrix", "bspline_upsample", "consistency_matrices", "inplane_can_teach", "SMOOTH_SLICES_RATIO", "slice_roughness_ratio",
    "slices_can_learn", "teaching_axes", "TEACHING_SPACING_RATIO", "measure_axis_detail",
    "project_consistent",
]  # fmt: skip
