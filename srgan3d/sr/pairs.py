"""Training pairs: low-resolution copies of high-resolution volumes and random patches of them
(the losses are in `srgan3d.sr.losses`).

Shared by training (`srgan3d.sr.train`) and per-scan adaptation (`srgan3d.sr.adapt`), so both
degrade, normalise, pick foreground patches and augment the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from srgan3d.sr.config import Degradation
from srgan3d.sr.degrade import DegradeModel, crop_to_multiple, degrade_array, sinc_upsample
from srgan3d.sr.intensity import IntensityScaling
from srgan3d.sr.kspace import out_of_band
from srgan3d.sr.metrics import foreground_mask
from srgan3d.volume import Volume

log = logging.getLogger(__name__)


@dataclass
class Pair:
    lr: np.ndarray
    hr: np.ndarray
    base: np.ndarray | None
    fg_lr: np.ndarray


def make_pairs(volumes: Sequence[np.ndarray], deg: Degradation, *, rng: np.random.Generator) -> list[Pair]:
    """Degrade whole volumes (never patches, so no patch carries FFT wrap-around) and normalise
    each pair by the low-resolution image's own robust range, as inference does."""
    s = np.asarray(deg.scale)
    pairs = []
    for vol in volumes:
        hr = vol[tuple(slice(0, (n // f) * f) for n, f in zip(vol.shape, s, strict=True))]
        scale_hr = IntensityScaling.fit(hr)
        for _ in range(deg.n_variants):
            blur = rng.uniform(0, deg.blur_max) if deg.blur_max > 0 else 0.0
            src = ndimage.gaussian_filter(hr, blur) if blur > 0.05 else hr
            model: DegradeModel = "gaussian" if deg.gaussian_fraction > 0 and rng.random() < deg.gaussian_fraction else "kspace"
            # Degrade and add noise in the scan's own (non-negative magnitude) units: Rician noise on
            # normalised data, whose background is negative, would flip its sign.
            sigma = float(rng.uniform(0, deg.noise_max)) * (scale_hr.hi - scale_hr.lo) if deg.noise_max > 0 else 0.0
            lr = degrade_array(src, deg.scale, model=model, noise_sigma=sigma, seed=int(rng.integers(2**31)))
            scaling = IntensityScaling.fit(lr)
            lr_n, hr_n = scaling.forward(lr), scaling.forward(hr)
            base = sinc_upsample(lr_n, deg.scale) if deg.with_base else None
            pairs.append(Pair(lr_n, hr_n, base, foreground_mask(lr)))
    return pairs


class PatchSampler:
    """Random (LR, HR, base) patch batches from `make_pairs` copies of high-resolution volumes.

    A batch is drawn from one pair, so each volume can have its own patch shape: `patch_size`
    low-resolution voxels per axis, or fewer along an axis the volume is shorter on (thick-slice
    scans have few slices). Patches are preferably mostly anatomy, not air. Augmentation: flips
    of every axis, and swaps of axes with equal factors (in-plane transposes), which keep the
    acquisition model.

    Raises:
        ValueError: a volume is shorter than `min_patch` low-resolution voxels along some axis.
    """

    def __init__(
        self,
        volumes: Sequence[np.ndarray],
        deg: Degradation,
        *,
        patch_size: int,
        seed: int,
        min_patch: int = 4,
        transpose: bool = True,
    ) -> None:
        self.deg = deg
        self.patch_size = patch_size
        self.transpose = transpose
        self.rng = np.random.default_rng(seed)
        for vol in volumes:
            lr_shape = [n // f for n, f in zip(vol.shape, deg.scale, strict=True)]
            if min(lr_shape) < min_patch:
                raise ValueError(
                    f"a training volume of shape {vol.shape} is {lr_shape} after the {deg.scale} reduction, "
                    f"below {min_patch} low-resolution voxels along an axis; give larger volumes"
                )
        # Every pair is drawn equally often, whatever its size: a small real abdominal scan is
        # not drowned by a large brain template.
        self.pairs = make_pairs(volumes, deg, rng=self.rng)

    def patch_shape(self, pair: Pair) -> tuple[int, int, int]:
        return tuple(min(self.patch_size, n) for n in pair.lr.shape)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        s = self.deg.scale
        pair = self.pairs[int(self.rng.integers(len(self.pairs)))]
        p = self.patch_shape(pair)
        lrs, hrs, bases = [], [], []
        for _ in range(batch_size):
            for _attempt in range(20):  # prefer patches that are mostly anatomy, not air
                i = [int(self.rng.integers(0, n - q + 1)) for n, q in zip(pair.lr.shape, p, strict=True)]
                lo = tuple(slice(a, a + q) for a, q in zip(i, p, strict=True))
                if pair.fg_lr[lo].mean() > 0.3:
                    break
            hi = tuple(slice(a * f, (a + q) * f) for a, q, f in zip(i, p, s, strict=True))
            lrs.append(pair.lr[lo])
            hrs.append(pair.hr[hi])
            if pair.base is not None:
                bases.append(pair.base[hi])
        as_t = lambda xs: torch.from_numpy(np.stack(xs))[:, None]  # noqa: E731
        out = [as_t(lrs), as_t(hrs), as_t(bases) if bases else None]
        for axis in range(3):
            if self.rng.random() < 0.5:
                out = [t.flip(2 + axis) if t is not None else None for t in out]
        if self.transpose:
            for a, b in ((0, 1), (0, 2), (1, 2)):
                if s[a] == s[b] and p[a] == p[b] and self.rng.random() < 0.5:
                    out = [t.transpose(2 + a, 2 + b) if t is not None else None for t in out]
        lr_t, hr_t, base_t = (t.contiguous() if t is not None else None for t in out)
        return lr_t, hr_t, base_t  # type: ignore[return-value]


def predict_patch(
    detail: torch.Tensor, base: torch.Tensor | None, scale: Sequence[int], *, dc: bool
) -> torch.Tensor:
    """The generator's output on a training patch: base + detail, or with `dc` base + the
    out-of-band part of the detail (what data consistency keeps at inference)."""
    if base is None:
        return detail
    return base + (out_of_band(detail, scale) if dc else detail)


def interior(x: torch.Tensor, margin: Sequence[int]) -> torch.Tensor:
    """x without `margin` voxels at each end of its three spatial axes (where a patch's FFT wraps);
    an axis too short to lose them is kept whole."""
    idx = [slice(None), slice(None)]
    for n, m in zip(x.shape[2:], margin, strict=True):
        idx.append(slice(m, n - m) if n > 4 * m else slice(None))
    return x[tuple(idx)]


def load_volumes_at_scales(
    volumes: Sequence[Volume], hr_scales: Sequence[int], *, min_shape: int = 0
) -> list[np.ndarray]:
    """Each volume at every factor of `hr_scales`: f > 1 adds it re-acquired on an f-times coarser
    grid (central k-space kept, as a scanner acquiring a smaller matrix would), so the network meets
    structures at the voxel scale of coarser clinical scans. Coarsened copies with an axis shorter
    than `min_shape` are left out."""
    out = []
    for vol in volumes:
        for f in hr_scales:
            data = vol.data if f == 1 else degrade_array(crop_to_multiple(vol, f).data, f)
            if f > 1 and min(data.shape) < min_shape:
                log.info("training volume %s at 1/%d: %s is below one patch, left out", vol.meta.get("source"), f, data.shape)
                continue
            out.append(np.maximum(data, 0) if f > 1 else data)
            log.info("training volume %s at 1/%d: %s", vol.meta.get("source", "?"), f, data.shape)
    return out
