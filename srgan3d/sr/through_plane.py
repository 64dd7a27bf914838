"""Self-supervised through-plane super-resolution from a scan's own in-plane slices (after SMORE,
Zhao et al., IEEE TMI 2021).

A clinical arterial-phase series is finer in-plane than between its slices. The in-plane axes show
the scan's own anatomy and contrast at the resolution the slice axis lacks, so the network learns
the slice axis's missing detail from them, with no external data:

1. Pairs: each in-plane plane (X, Y) of the scan is degraded along one in-plane axis by the slice
   profile (a boxcar of `factor` fine voxels: thickness = spacing, contiguous slices) and the
   network learns to restore it; both in-plane axes teach it (the plane and its transpose), with
   flips.
2. Application: the scan's planes that contain the slice axis, (Y, Z) for each X and (X, Z) for
   each Y, are upscaled along Z, and the two estimates averaged.
3. The network adds detail to cubic interpolation along the slices, and the result is made
   consistent with the scan's slice profile (`slice_profile_consistency`): averaging each group of
   `factor` output slices gives the input slice back exactly.

The network is the project's generator at scale (1, 1, factor) on planes of depth 1 (its 3D
kernels act as 2D kernels there, in training and in application alike), started from the shipped
weights where their shapes fit. Training stops at `minutes` or `max_steps`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from srgan3d.sr.device import resolve_device
from srgan3d.sr.engine import IntensityScaling
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.volume import Volume, downscaled_affine, upscaled_affine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThroughPlaneConfig:
    """Options of the per-scan self-supervised through-plane SR.

    Attributes:
        factor: slices added per input slice (the slice spacing over the target spacing).
        minutes: wall-time budget of the training on one scan.
        max_steps: at most this many steps.
        patch: (across, along) extent of a training patch in fine voxels; `along` is the degraded
            axis and must be a multiple of `factor`.
        batch_size: patches per step.
        learning_rate: Adam's, constant.
        init: start from these weights' matching tensors (a name or path), or None (from scratch).
        seed: patches and weights.
    """

    factor: int = 2
    minutes: float = 4.0
    max_steps: int = 4000
    patch: tuple[int, int] = (48, 48)
    batch_size: int = 16
    learning_rate: float = 2e-4
    channels: int = 32
    n_blocks: int = 4
    upsample_channels: int = 16
    init: str | None = "srgan3d_x2"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.factor < 2:
            raise ValueError(f"factor must be >= 2, not {self.factor}")
        if self.patch[1] % self.factor:
            raise ValueError(f"the patch's extent along the degraded axis ({self.patch[1]}) must be a multiple of {self.factor}")

    @property
    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(channels=self.channels, n_blocks=self.n_blocks, upsample_channels=self.upsample_channels,
                               scale=(1, 1, self.factor), skip="sinc")  # fmt: skip


# --------------------------------------------------------------------------------------------
# The slice profile, the cubic base and consistency (torch, last axis)


def slice_average(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The boxcar slice profile along the last axis: coarse sample i is the mean of fine samples
    factor*i ... factor*i + factor - 1 (the affine rule's children of coarse voxel i)."""
    *lead, n = x.shape
    if n % factor:
        raise ValueError(f"length {n} is not a multiple of the factor {factor}")
    return x.reshape(*lead, n // factor, factor).mean(dim=-1)


def slice_profile_consistency(sr: torch.Tensor, lr: torch.Tensor, factor: int) -> torch.Tensor:
    """Project `sr` onto the outputs whose slice profile gives `lr` back: each group of `factor`
    fine samples along the last axis is shifted by its coarse sample's residual, so
    `slice_average(result) == lr` exactly and nothing else changes."""
    residual = lr - slice_average(sr, factor)
    return sr + residual.repeat_interleave(factor, dim=-1)


def _cubic_weights(factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Catmull-Rom (Keys a = -0.5) weights of the 4 coarse neighbours of each fine sample's phase,
    on the affine rule's grid: fine j sits at coarse position (j + 0.5) / factor - 0.5."""
    offsets, weights = [], []
    for r in range(factor):
        t = (r + 0.5) / factor - 0.5
        base = math.floor(t)
        f = t - base
        a = -0.5
        w = [
            ((a * (f + 1) - 5 * a) * (f + 1) + 8 * a) * (f + 1) - 4 * a,
            ((a + 2) * f - (a + 3)) * f * f + 1,
            ((a + 2) * (1 - f) - (a + 3)) * (1 - f) * (1 - f) + 1,
            ((a * (2 - f) - 5 * a) * (2 - f) + 8 * a) * (2 - f) - 4 * a,
        ]
        offsets.append(base - 1)
        weights.append(w)
    return np.array(offsets), np.array(weights, dtype=np.float32)


def cubic_upsample_last(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Cubic (Catmull-Rom) interpolation along the last axis by `factor` on the affine rule's
    grid, edges replicated: the base the network adds detail to."""
    offsets, weights = _cubic_weights(factor)
    n = x.shape[-1]
    pad = 3
    xp = torch.cat([x[..., :1].expand(*x.shape[:-1], pad), x, x[..., -1:].expand(*x.shape[:-1], pad)], dim=-1)
    phases: list[torch.Tensor] = []
    w = torch.from_numpy(weights).to(x)
    for r in range(factor):
        start = pad + int(offsets[r])
        phase = w[r, 0] * xp[..., start : start + n]
        for k in range(1, 4):
            phase = phase + w[r, k] * xp[..., start + k : start + k + n]
        phases.append(phase)
    return torch.stack(phases, dim=-1).reshape(*x.shape[:-1], n * factor)


# --------------------------------------------------------------------------------------------
# Training pairs from the in-plane planes


class PlaneSampler:
    """Patches of the scan's in-plane planes (fine in both axes), oriented at random (transpose,
    flips), as (LR, HR) with LR the boxcar slice profile of HR along the patch's last axis.

    `planes`: (n, X, Y) in-plane planes at the scan's in-plane spacing, intensity-scaled."""

    def __init__(self, planes: np.ndarray, config: ThroughPlaneConfig) -> None:
        self.planes = planes
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        across, along = config.patch
        if min(planes.shape[1:]) < max(across, along):
            raise ValueError(
                f"in-plane extent {planes.shape[1:]} is smaller than the training patch {config.patch}; "
                "give a smaller ThroughPlaneConfig.patch"
            )
        # planes with tissue: a patch is drawn where the plane is not air
        means = planes.reshape(len(planes), -1).mean(axis=1)
        self.usable = np.flatnonzero(means > 0.1 * means.max()) if means.max() > 0 else np.arange(len(planes))

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        across, along = c.patch
        hr = np.empty((c.batch_size, across, along), np.float32)
        for b in range(c.batch_size):
            plane = self.planes[self.rng.choice(self.usable)]
            if self.rng.random() < 0.5:
                plane = plane.T
            i = self.rng.integers(0, plane.shape[0] - across + 1)
            j = self.rng.integers(0, plane.shape[1] - along + 1)
            p = plane[i : i + across, j : j + along]
            if self.rng.random() < 0.5:
                p = p[::-1]
            if self.rng.random() < 0.5:
                p = p[:, ::-1]
            hr[b] = p
        hr_t = torch.from_numpy(hr)[:, None, None]  # (B, 1, 1, across, along)
        return slice_average(hr_t, c.factor), hr_t


def _init_from(model: Generator, weights: str | None) -> str:
    """Copy the tensors of `weights` whose shapes fit (all but the upsampling convolution of a
    2x2x2 model); returns what was loaded."""
    if weights is None:
        return "from scratch"
    from srgan3d.sr.weights import load_generator

    source, info = load_generator(weights)
    own = model.state_dict()
    fit = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    own.update(fit)
    model.load_state_dict(own)
    return f"{info.name} ({len(fit)} of {len(own)} tensors)"


def _forward(model: Generator, lr: torch.Tensor, factor: int) -> torch.Tensor:
    """Base + detail, then the slice-profile consistency; `lr` is (B, 1, 1, H, W)."""
    sr = cubic_upsample_last(lr, factor) + model(lr)
    return slice_profile_consistency(sr, lr, factor)


@dataclass(frozen=True)
class ThroughPlaneFit:
    steps: int
    seconds: float
    init: str
    loss_first: float
    loss_last: float


def fit_through_plane(
    planes: np.ndarray, config: ThroughPlaneConfig, *, device: str = "cpu", progress: bool = False
) -> tuple[Generator, ThroughPlaneFit]:
    """Train the through-plane generator on `planes` ((n, X, Y) in-plane planes, scaled) within
    the config's time and step budget. Returns the model (eval mode) and what the fit did."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    dev = resolve_device(device)
    model = Generator(config.generator)
    init = _init_from(model, config.init)
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    sampler = PlaneSampler(planes, config)
    budget = config.minutes * 60
    t0 = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(total=config.max_steps, desc="through-plane fit", unit="step", disable=not progress)
    step = 0
    while step < config.max_steps and time.perf_counter() - t0 < budget:
        lr, hr = (t.to(dev) for t in sampler.sample())
        loss = F.l1_loss(_forward(model, lr, config.factor), hr)
        if not torch.isfinite(loss):
            raise RuntimeError(f"through-plane fit: the loss is not finite at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        bar.update()
    bar.close()
    first = float(np.mean(losses[:20])) if losses else math.nan
    last = float(np.mean(losses[-20:])) if losses else math.nan
    return model.eval(), ThroughPlaneFit(step, time.perf_counter() - t0, init, first, last)


@torch.inference_mode()
def apply_through_plane(model: Generator, volume: np.ndarray, factor: int, *, chunk: int = 16) -> np.ndarray:
    """Upscale a (X, Y, Z) scaled volume along Z: the (Y, Z) planes of each X and the (X, Z)
    planes of each Y through the network, the two estimates averaged (the average of two outputs
    consistent with the slice profile is consistent too). The slice axis is not padded: mirroring
    8 slices onto each end measured worse (-0.2 dB on the abdominal CT, -1.2 dB on the MR of
    benchmarks/RESULTS.md)."""
    dev = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)).to(dev)

    def along(planes: torch.Tensor) -> torch.Tensor:  # (n, H, Z) -> (n, H, factor*Z)
        out = []
        for k in range(0, planes.shape[0], chunk):
            lr = planes[k : k + chunk][:, None, None]
            out.append(_forward(model, lr, factor)[:, 0, 0])
        return torch.cat(out)

    first = along(x)  # planes (Y, Z) for each X
    second = along(x.permute(1, 0, 2).contiguous()).permute(1, 0, 2)  # planes (X, Z) for each Y
    return (0.5 * (first + second)).cpu().numpy()


def upscale_through_plane(
    volume: Volume, config: ThroughPlaneConfig | None = None, *, axis: int = 2, device: str = "cpu",
    progress: bool = False,
) -> tuple[Volume, ThroughPlaneFit]:  # fmt: skip
    """Self-supervised through-plane SR of one scan along array axis `axis` (its slice axis):
    train on its in-plane planes, apply along its slices. The output's affine follows the affine
    rule, and the slice profile of the output gives the input back."""
    config = config or ThroughPlaneConfig()
    order = [a for a in range(3) if a != axis] + [axis]
    data = np.transpose(volume.data, order)
    side = min(data.shape[:2])  # a small field of view gets patches that fit it
    if side < max(config.patch):
        along = max(config.factor, side - side % config.factor)
        config = replace(config, patch=(min(config.patch[0], side), min(config.patch[1], along)))
    scaling = IntensityScaling.fit(data)
    x = scaling.forward(data).astype(np.float32)
    planes = np.moveaxis(x, 2, 0)  # (Z, X, Y): the in-plane planes
    model, fit = fit_through_plane(planes, config, device=device, progress=progress)
    y = apply_through_plane(model, x, config.factor)
    out = np.transpose(scaling.inverse(y), np.argsort(order)).astype(np.float32)
    factors: Sequence[int] = [config.factor if a == axis else 1 for a in range(3)]
    return Volume(out, upscaled_affine(volume.affine, factors), dict(volume.meta)), fit


def thick_slice_copy(volume: Volume, factor: int, *, axis: int = 2) -> Volume:
    """A thick-slice acquisition of a thin-slice scan: each `factor` slices along `axis` averaged
    into one (boxcar profile, contiguous), on the grid the affine rule puts it (coarse voxel i
    centred at the mean of its children)."""
    n = volume.shape[axis] - volume.shape[axis] % factor
    data = np.take(volume.data, np.arange(n), axis=axis)
    shape = list(data.shape)
    shape[axis : axis + 1] = [n // factor, factor]
    coarse = data.reshape(shape).mean(axis=axis + 1).astype(np.float32)
    factors = [factor if a == axis else 1 for a in range(3)]
    return Volume(coarse, downscaled_affine(volume.affine, factors), dict(volume.meta))


__all__ = ["ThroughPlaneConfig", "cubic_upsample_last", "slice_average", "slice_profile_consistency", "thick_slice_copy", "upscale_through_plane"]
