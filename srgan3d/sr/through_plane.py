"""Through-plane super-resolution learnt from a scan's own in-plane planes (after SMORE, Zhao et
al., IEEE TMI 2021), or from many scans of one protocol (`srgan3d.sr.protocol`).

A clinical arterial-phase series is finer in-plane than between its slices. Its in-plane axes show
the scan's own anatomy at the resolution the slice axis lacks, so a network learns the slice
axis's missing detail from them:

1. Pairs (`PlanePairs`): each in-plane plane is made thick along one in-plane axis by the scan's
   slice profile (`srgan3d.sr.slice_profile.SliceProfile`, from the header) and upsampled back
   by the cubic B-spline; the network learns the difference. Both in-plane axes teach it, with
   flips. One plane of each `holdout_every` is held out.
2. The network (`PlaneNet`): 2D convolutions on planes, WDSR-like residual blocks, its output
   added to the B-spline base (its last convolution starts at zero, so training starts from the
   base).
3. Training (`fit_plane_net`): L1, Adam, a one-cycle learning rate over the wall-time budget,
   patches drawn in proportion to their gradient energy, bf16 where the CPU has bf16 units; the
   held-out planes pick the best checkpoint and measure the gain over B-spline + consistency.
4. Application (`apply_plane_net`): the planes that contain the slice axis, (Y, Z) for each X and
   (X, Z) for each Y, through the network, the two estimates averaged, then the least-squares
   projection onto what the slice profile measured (`project_consistent`).

`upscale_through_plane` does this for one scan and uses the network only where the in-plane axes
carry detail (`inplane_can_teach`) and the held-out planes show a gain over B-spline +
consistency; otherwise B-spline + consistency, with the reason recorded.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srgan3d.sr.config import BSPLINE_CONSISTENT, SELF_SUPERVISED, THROUGH_PLANE_KIND, ThroughPlaneConfig
from srgan3d.sr.degrade import kspace_downsample_axis
from srgan3d.sr.device import resolve_device, use_bf16
from srgan3d.sr.intensity import IntensityScaling
from srgan3d.sr.ledger import ManifestValues
from srgan3d.sr.slice_profile import (
    AxisDetail,
    SliceGeometry,
    SliceProfile,
    apply_profile,
    bspline_consistent,
    bspline_upsample,
    inplane_can_teach,
    measure_axis_detail,
    project_consistent,
    slice_geometry,
    slices_can_learn,
    teaching_axes,
)
from srgan3d.sr.weights import WeightsError, WeightsInfo, find_weights, load_checked_state
from srgan3d.volume import Volume, downscaled_affine, upscaled_affine

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The network


class _Block(nn.Module):
    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * expansion, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels * expansion, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PlaneNet(nn.Module):
    """(B, 1, H, W) B-spline base on the fine grid -> (B, 1, H, W) base + learnt detail.

    The tail starts at zero, so an untrained network returns its base: training starts from
    B-spline, and a network that learnt nothing adds nothing."""

    def __init__(self, channels: int = 32, n_blocks: int = 6, expansion: int = 2) -> None:
        super().__init__()
        self.config = {"channels": channels, "n_blocks": n_blocks, "expansion": expansion}
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(_Block(channels, expansion) for _ in range(n_blocks)))
        self.tail = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        h = self.head(base)
        return base + self.tail(h + self.blocks(h)).float()


# --------------------------------------------------------------------------------------------
# Training pairs


@dataclass
class PlanePairs:
    """In-plane planes made thick along one in-plane axis: per pair the truth `hr`, the measured
    `lr` and the B-spline `base`, the thick axis last ((H, W), (H, W / factor), (H, W)).
    `train` and `held` are lists of pairs; patches are drawn from `train` in proportion to their
    gradient energy (`sample`)."""

    profile: SliceProfile
    train: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _cum: np.ndarray | None = None
    _offsets: np.ndarray | None = None

    def add_volume(self, x: np.ndarray, *, holdout_every: int, teach: Sequence[int] = (0, 1),
                   inplane_factor: int = 1) -> None:  # fmt: skip
        """Add the in-plane planes of `x` ((X, Y, Z), slice axis last, intensity-scaled), each made
        thick along the axes in `teach` (0: X, 1: Y; the others are too coarse to teach).
        `inplane_factor` > 1: the scanner interpolated in-plane, so the planes are brought back to
        the acquired matrix (central k-space) before they teach."""
        planes = np.moveaxis(x, 2, 0)
        if inplane_factor > 1:
            for axis in (1, 2):
                n = planes.shape[axis] - planes.shape[axis] % inplane_factor
                planes = kspace_downsample_axis(np.take(planes, np.arange(n), axis=axis), inplane_factor, axis)
        means = planes.reshape(len(planes), -1).mean(axis=1)
        tissue = np.flatnonzero(means > 0.1 * means.max()) if means.max() > 0 else np.arange(len(planes))
        held = set(tissue[holdout_every // 2 :: holdout_every].tolist()) or {int(tissue[len(tissue) // 2])}
        for k in tissue:
            for plane in [p for a, p in ((1, planes[k]), (0, planes[k].T)) if a in teach]:
                (self.held if k in held else self.train).append(self._pair(plane))
        self._cum = None

    def _pair(self, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.profile.factor
        n = plane.shape[1] - plane.shape[1] % f
        hr = torch.from_numpy(np.ascontiguousarray(plane[:, :n], dtype=np.float32))
        lr = apply_profile(hr, self.profile)
        return hr.numpy(), lr.numpy(), bspline_upsample(lr, f).numpy()

    def _weights(self, patch: int) -> None:
        """Per train pair, the gradient energy of the truth at each patch corner (the patch's sum),
        with a floor over tissue so flat organs are drawn too; one cumulative table for all."""
        f = self.profile.factor
        maps = []
        for hr, _, _ in self.train:
            gy, gx = np.gradient(hr)
            g = np.hypot(gx, gy)
            g = g + 0.2 * float(g.mean()) * (hr > 0.05)
            c = np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            s = c[patch:, patch:] - c[:-patch, patch:] - c[patch:, :-patch] + c[:-patch, :-patch]
            s[:, np.arange(s.shape[1]) % f != 0] = 0  # corners on the slice grid
            maps.append(s.ravel())
        sizes = np.array([m.size for m in maps])
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._cum = np.cumsum(np.concatenate(maps).astype(np.float64))
        self._shapes = [(hr.shape[0] - patch + 1, hr.shape[1] - patch + 1) for hr, _, _ in self.train]

    def sample(self, rng: np.random.Generator, batch: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(base, hr) patches, (batch, 1, patch, patch) each, flipped at random."""
        if self._cum is None:
            self._weights(patch)
        assert self._cum is not None and self._offsets is not None
        idx = np.searchsorted(self._cum, rng.random(batch) * self._cum[-1], side="right")
        base = np.empty((batch, 1, patch, patch), np.float32)
        hr = np.empty_like(base)
        for b, flat in enumerate(idx):
            p = int(np.searchsorted(self._offsets, flat, side="right") - 1)
            i, j = divmod(int(flat - self._offsets[p]), self._shapes[p][1])
            h, _, bs = self.train[p]
            ph, pb = h[i : i + patch, j : j + patch], bs[i : i + patch, j : j + patch]
            if rng.random() < 0.5:
                ph, pb = ph[::-1], pb[::-1]
            if rng.random() < 0.5:  # the patch spans whole slices, so its flip does too
                ph, pb = ph[:, ::-1], pb[:, ::-1]
            hr[b, 0], base[b, 0] = ph, pb
        return torch.from_numpy(base), torch.from_numpy(hr)

    def smallest_side(self) -> int:
        return min(min(hr.shape) for hr, _, _ in self.train) if self.train else 0


# --------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class PlaneFit:
    """What a training run did and what the held-out planes said.

    `held_out_psnr_db` is the network's (+ consistency) at its best check, `baseline_psnr_db`
    B-spline + consistency's on the same planes (PSNR over the tissue, intensities scaled to the
    scan's robust range); `gain_db` their difference."""

    steps: int
    seconds: float
    init: str
    held_out_planes: int
    held_out_psnr_db: float
    baseline_psnr_db: float
    best_step: int
    precision: str

    @property
    def gain_db(self) -> float:
        return self.held_out_psnr_db - self.baseline_psnr_db

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "seconds": round(self.seconds, 1), "init": self.init,
            "held_out_planes": self.held_out_planes, "held_out_psnr_db": round(self.held_out_psnr_db, 3),
            "baseline_psnr_db": round(self.baseline_psnr_db, 3), "gain_db": round(self.gain_db, 3),
            "best_step": self.best_step, "precision": self.precision,
        }  # fmt: skip


def one_cycle_lr(fraction: float, config: ThroughPlaneConfig) -> float:
    """The learning rate at `fraction` of the budget: linear warm-up to `peak_lr`, cosine to 0."""
    t = min(max(fraction, 0.0), 1.0)
    if t < config.warmup:
        return config.peak_lr * max(t / config.warmup, 0.01)
    return config.peak_lr * 0.5 * (1 + math.cos(math.pi * (t - config.warmup) / (1 - config.warmup)))


@torch.no_grad()
def _held_out_psnr(model: PlaneNet | None, pairs: PlanePairs, *, device: torch.device, bf16: bool) -> float:
    """PSNR over the tissue of all held-out pairs (data range 1 on scaled intensities), after the
    consistency projection; `model` None: B-spline + consistency."""
    se, count = 0.0, 0
    for hr, lr, base in pairs.held:
        lr_t = torch.from_numpy(lr)
        if model is None:
            out = bspline_consistent(lr_t, pairs.profile)
        else:
            out = project_consistent(_run(model, torch.from_numpy(base)[None, None], device, bf16)[0, 0].cpu(),
                                     lr_t, pairs.profile)  # fmt: skip
        m = hr > 0.05
        se += float(((out.numpy() - hr)[m].astype(np.float64) ** 2).sum())
        count += int(m.sum())
    return 10 * math.log10(count / se) if se > 0 else math.inf


def _run(model: PlaneNet, base: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(base.to(device)).float()


def load_plane_net(name_or_path: str | Path) -> tuple[PlaneNet, WeightsInfo]:
    """A through-plane network and its card (sha256 checked, `torch.load(weights_only=True)`)."""
    info = find_weights(name_or_path)
    if info.card.kind != THROUGH_PLANE_KIND:
        raise WeightsError(f"{info.path}: not through-plane weights (its model card has no kind {THROUGH_PLANE_KIND!r}); "
                           "train some with `srgan3d train --through-plane`")  # fmt: skip
    state, info = load_checked_state(info.path)
    model = PlaneNet(**info.card.plane_net)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise WeightsError(f"{info.path}: weights do not fit the network of their card ({exc})") from exc
    return model.eval(), info


def build_plane_net(config: ThroughPlaneConfig) -> tuple[PlaneNet, str]:
    """A fresh network, or `config.init`'s trained weights (a through-plane model) as the start."""
    model = PlaneNet(**config.network())
    if config.init is None:
        return model, "from scratch"
    start, info = load_plane_net(config.init)
    if start.config != model.config:
        raise ValueError(f"--init {config.init}: its network {start.config} differs from the one asked for {model.config}")
    return start, f"{info.name} ({info.sha256[:12]})"


def fit_plane_net(
    pairs: PlanePairs, config: ThroughPlaneConfig, *, device: str = "cpu", progress: bool = False
) -> tuple[PlaneNet, PlaneFit]:
    """Train on `pairs.train` within the budget; returns the network at its best held-out check
    (eval mode) and the `PlaneFit`."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = resolve_device(device)
    bf16 = use_bf16(dev, config.amp)
    patch = config.patch
    side = pairs.smallest_side()
    if side < patch:
        patch = side - side % pairs.profile.factor
        if patch < 8:
            raise ValueError(f"the in-plane planes ({side} voxels across) are too small to train on (8 needed)")
    model, init = build_plane_net(config)
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.peak_lr, betas=(0.9, 0.99))
    baseline = _held_out_psnr(None, pairs, device=dev, bf16=bf16)
    budget = config.minutes * 60
    checks = [(k + 1) / config.validations for k in range(config.validations)]
    best = (-math.inf, 0, copy.deepcopy(model.state_dict()))
    t0 = time.perf_counter()
    step = 0
    bar = tqdm(desc="through-plane fit", unit="step", disable=not progress)
    while True:
        frac = max((time.perf_counter() - t0) / budget, step / config.max_steps)
        if checks and frac >= checks[0]:
            checks.pop(0)
            score = _held_out_psnr(model.eval(), pairs, device=dev, bf16=bf16)
            model.train()
            if score > best[0]:
                best = (score, step, copy.deepcopy(model.state_dict()))
            bar.set_postfix_str(f"held-out {score - baseline:+.2f} dB")
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = one_cycle_lr(frac, config)
        base, hr = (t.to(dev) for t in pairs.sample(rng, config.batch_size, patch))
        loss = F.l1_loss(_run(model, base, dev, bf16), hr)
        if not torch.isfinite(loss):
            raise RuntimeError(f"through-plane training: the loss is not finite at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
    bar.close()
    model.load_state_dict(best[2])
    fit = PlaneFit(step, time.perf_counter() - t0, init, len(pairs.held), best[0], baseline, best[1],
                   "bf16" if bf16 else "fp32")  # fmt: skip
    return model.eval(), fit


# --------------------------------------------------------------------------------------------
# Application


@torch.inference_mode()
def apply_plane_net(model: PlaneNet, x: np.ndarray, profile: SliceProfile, *, teach: Sequence[int] = (0, 1),
                    amp: bool = True, max_pixels: int = 1_500_000) -> np.ndarray:  # fmt: skip
    """Upscale a (X, Y, Z) scaled volume along Z: the B-spline base of the (Y, Z) planes of each X
    and of the (X, Z) planes of each Y through the network, the estimates averaged, then projected
    onto what the slice profile measured. Only the orientations whose across-axis the network saw
    in training run: (Y, Z) planes when X taught (the network then saw Y across), (X, Z) when Y
    did. `max_pixels` per forward pass bounds memory."""
    dev = next(model.parameters()).device
    bf16 = use_bf16(dev, amp)
    lr = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    base = bspline_upsample(lr, profile.factor)

    def through(planes: torch.Tensor) -> torch.Tensor:  # (n, H, W) -> (n, H, W)
        chunk = max(1, max_pixels // (planes.shape[1] * planes.shape[2]))
        return torch.cat([_run(model, planes[k : k + chunk, None], dev, bf16)[:, 0]
                          for k in range(0, planes.shape[0], chunk)])  # fmt: skip

    estimates = []
    if 0 in teach:
        estimates.append(through(base))
    if 1 in teach:
        estimates.append(through(base.permute(1, 0, 2).contiguous()).permute(1, 0, 2))
    if not estimates:
        raise ValueError("no in-plane axis taught the network (teach is empty)")
    mean = torch.stack(estimates).mean(dim=0)
    return project_consistent(mean, lr, profile).cpu().numpy()


# --------------------------------------------------------------------------------------------
# One scan


@dataclass(frozen=True)
class ThroughPlaneRecord:
    """How one scan was upscaled through-plane, for its manifest row: the method that ran
    (`SELF_SUPERVISED` or `BSPLINE_CONSISTENT`), why, the slice geometry, the axes' detail and the
    training (None when none ran)."""

    method: str
    reason: str
    geometry: SliceGeometry
    detail: AxisDetail | None
    fit: PlaneFit | None = None

    def manifest_values(self) -> ManifestValues:
        g = self.geometry
        values: ManifestValues = {
            "method": self.method, "slice_profile": g.profile.describe(g.spacing_mm),
            "slice_thickness_mm": g.thickness_mm, "slice_thickness_from": g.thickness_from,
            "slice_gap_mm": g.gap_mm, "acquired_inplane_mm": tuple(g.acquired_inplane_mm),
            "through_plane_reason": self.reason,
        }  # fmt: skip
        if self.detail is not None:
            values["axis_detail_upper_share"] = tuple(self.detail.upper_share)
        if self.fit is not None:
            values.update(held_out_gain_db=self.fit.gain_db, self_supervised_steps=self.fit.steps,
                          self_supervised_seconds=self.fit.seconds)  # fmt: skip
        return values


def scaled_slices_last(volume: Volume, axis: int) -> tuple[np.ndarray, IntensityScaling, list[int]]:
    """The volume's data with `axis` last, intensity-scaled; the scaling and the axis order."""
    order = [a for a in range(3) if a != axis] + [axis]
    data = np.transpose(np.asarray(volume.data, dtype=np.float32), order)
    scaling = IntensityScaling.fit(data)
    return scaling.forward(data), scaling, order


def finish_volume(y: np.ndarray, volume: Volume, scaling: IntensityScaling, order: Sequence[int], factor: int,
                  axis: int) -> Volume:  # fmt: skip
    """The upscaled (scaled, slice axis last) array back in the input's intensities, axis order and
    world: the affine rule's grid."""
    out = np.transpose(scaling.inverse(y), np.argsort(order)).astype(np.float32)
    factors = [factor if a == axis else 1 for a in range(3)]
    return Volume(out, upscaled_affine(volume.affine, factors), dict(volume.meta))


def upscale_bspline_consistent(volume: Volume, geometry: SliceGeometry) -> Volume:
    """B-spline along the slices, made consistent with the slice profile."""
    x, scaling, order = scaled_slices_last(volume, geometry.axis)
    y = bspline_consistent(torch.from_numpy(x), geometry.profile).numpy()
    return finish_volume(y, volume, scaling, order, geometry.profile.factor, geometry.axis)


def upscale_through_plane(
    volume: Volume, config: ThroughPlaneConfig | None = None, *, axis: int = 2, factor: int = 2,
    profile: str = "boxcar", thickness_mm: float | None = None, device: str = "cpu", progress: bool = False,
) -> tuple[Volume, ThroughPlaneRecord]:  # fmt: skip
    """Self-supervised through-plane SR of one scan along array axis `axis` (its slice axis).

    The slice profile and grid come from the header (`slice_geometry`; `profile` and
    `thickness_mm` as the user gave them). The network is trained on the scan's in-plane planes
    and used only where those carry detail (`inplane_can_teach`) and its held-out planes beat
    B-spline + consistency by more than `config.min_gain_db`; otherwise B-spline + consistency
    runs and the record says why. The output sits on the affine rule's grid, and its slice
    profile gives the input back."""
    config = config or ThroughPlaneConfig()
    geometry = slice_geometry(volume.spacing_mm, volume.meta, axis=axis, factor=factor, kind=profile,
                              thickness_mm=thickness_mm)  # fmt: skip
    x, scaling, order = scaled_slices_last(volume, axis)
    detail = measure_axis_detail(x)
    teach = teaching_axes([volume.spacing_mm[a] * (1 if a == axis else geometry.inplane_factor) for a in order], 2, factor)
    ok, why = inplane_can_teach(detail, teach) if geometry.inplane_factor == 1 else (bool(teach), "no axis teaches")
    if ok:
        ok, why = slices_can_learn(x, teach, geometry.profile)
    if not ok:
        return upscale_bspline_consistent(volume, geometry), ThroughPlaneRecord(BSPLINE_CONSISTENT, why, geometry, detail)
    pairs = PlanePairs(geometry.profile)
    pairs.add_volume(x, holdout_every=config.holdout_every, teach=teach, inplane_factor=geometry.inplane_factor)
    model, fit = fit_plane_net(pairs, config, device=device, progress=progress)
    if not fit.gain_db > config.min_gain_db:
        why = (f"on {fit.held_out_planes} held-out in-plane planes the network is {fit.gain_db:+.2f} dB against "
               f"B-spline + consistency (needs > {config.min_gain_db:+.2f})")  # fmt: skip
        return upscale_bspline_consistent(volume, geometry), ThroughPlaneRecord(BSPLINE_CONSISTENT, why, geometry, detail, fit)
    y = apply_plane_net(model, x, geometry.profile, teach=teach, amp=config.amp)
    why = f"{fit.gain_db:+.2f} dB over B-spline + consistency on {fit.held_out_planes} held-out in-plane planes"
    return finish_volume(y, volume, scaling, order, factor, axis), ThroughPlaneRecord(SELF_SUPERVISED, why, geometry, detail, fit)


def thick_slice_copy(volume: Volume, factor: int, *, axis: int = 2, profile: SliceProfile | None = None) -> Volume:
    """A thick-slice acquisition of a thin-slice scan along `axis`: each slice made by `profile`
    (default: a contiguous boxcar, the mean of `factor` thin slices) on the grid the affine rule
    puts it (coarse voxel i centred at the mean of its children)."""
    profile = profile or SliceProfile("boxcar", factor, 1.0)
    if profile.factor != factor:
        profile = replace(profile, factor=factor)
    n = volume.shape[axis] - volume.shape[axis] % factor
    data = np.moveaxis(np.take(np.asarray(volume.data, dtype=np.float32), np.arange(n), axis=axis), axis, -1)
    coarse = apply_profile(torch.from_numpy(np.ascontiguousarray(data)), profile).numpy()
    factors = [factor if a == axis else 1 for a in range(3)]
    return Volume(np.ascontiguousarray(np.moveaxis(coarse, -1, axis)), downscaled_affine(volume.affine, factors),
                  dict(volume.meta))  # fmt: skip


__all__ = [
    "PlaneFit", "PlaneNet", "PlanePairs", "ThroughPlaneConfig", "ThroughPlaneRecord", "apply_plane_net",
    "fit_plane_net", "load_plane_net", "one_cycle_lr", "thick_slice_copy", "upscale_bspline_consistent", "upscale_through_plane",
]  # fmt: skip
