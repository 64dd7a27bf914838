"""GAN training of the generator: data, losses, the two-stage loop, validation, checkpoints, export.

Stage 1 pretrains on pixel (L1) and gradient losses; stage 2 adds a relativistic-average
adversarial loss against `PatchDiscriminator`, with the discriminator and generator stepped in
the BasicSR order. An exponential moving average (EMA) of the generator is what gets validated
and exported. Under `torchrun` the models are wrapped in DistributedDataParallel.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from srgan3d.degrade import crop_to_multiple, degrade_array, sinc_upsample, spline_upsample
from srgan3d.metrics import foreground_mask, psnr, ssim
from srgan3d.nets import Generator, GeneratorConfig, PatchDiscriminator
from srgan3d.provenance import versions
from srgan3d.upscale import GeneratorEngine, IntensityScaling, resolve_device
from srgan3d.volume import Volume, read_volume
from srgan3d.weights import save_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; written into the run folder and the model card.

    Loss weights: L1 1.0 carries fidelity; the gradient (edge) loss 0.1 rewards sharp edges
    without inventing texture; the adversarial weight 5e-3 is ESRGAN's, small because the
    relativistic loss gradients are large next to L1 on [0, 1] intensities.
    """

    # generator
    channels: int = 32
    n_blocks: int = 4
    upsample_channels: int = 16
    scale: tuple[int, int, int] = (2, 2, 2)
    skip: str = "sinc"
    # data
    patch_size: int = 24
    batch_size: int = 4
    n_variants: int = 3
    noise_max: float = 0.02
    blur_max: float = 0.4
    gaussian_fraction: float = 0.25
    phantoms: int = 0
    phantom_coarsening: float = 1.0
    hr_scales: tuple[int, ...] = (1,)
    val_crop: int = 96
    # schedule and losses
    pretrain_steps: int = 2000
    gan_steps: int = 0
    lr_g: float = 2e-4
    lr_g_gan: float = 1e-4
    lr_schedule: str = "constant"
    lr_d: float = 1e-4
    l1_weight: float = 1.0
    edge_weight: float = 0.1
    adv_weight: float = 5e-3
    ema_decay: float = 0.999
    val_every: int = 250
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(int(s) for s in self.scale))
        object.__setattr__(self, "hr_scales", tuple(int(s) for s in self.hr_scales))
        if not self.hr_scales or any(s < 1 for s in self.hr_scales):
            raise ValueError(f"hr_scales must be positive integers, not {self.hr_scales}")
        if self.phantom_coarsening < 1:
            raise ValueError(f"phantom_coarsening must be >= 1, not {self.phantom_coarsening}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}")
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8 low-resolution voxels, not {self.patch_size}")
        if self.pretrain_steps < 0 or self.gan_steps < 0:
            raise ValueError("pretrain_steps and gan_steps must be >= 0")

    @property
    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(
            channels=self.channels,
            n_blocks=self.n_blocks,
            upsample_channels=self.upsample_channels,
            scale=self.scale,
            skip=self.skip,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale"] = list(self.scale)
        d["hr_scales"] = list(self.hr_scales)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        return cls(**{k: tuple(v) if k in ("scale", "hr_scales") else v for k, v in d.items()})

    def generator_lr(self, step: int) -> float:
        """Generator learning rate at `step` (0-based). Stage 1: `lr_g`, constant or cosine-decayed
        to 1% over `pretrain_steps`; stage 2 (GAN): `lr_g_gan`, constant. A function of the step
        alone, so a resumed run continues the same schedule."""
        if step >= self.pretrain_steps:
            return self.lr_g_gan
        if self.lr_schedule == "constant":
            return self.lr_g
        t = step / max(1, self.pretrain_steps)
        return self.lr_g * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config must be a mapping of keys to values")
        return cls.from_dict({**data, **overrides})


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class _Pair:
    lr: np.ndarray
    hr: np.ndarray
    base: np.ndarray | None
    fg_lr: np.ndarray


class PatchSampler:
    """Random (LR, HR, base) patch triples from degraded copies of high-resolution volumes.

    Each volume gets `n_variants` low-resolution copies made once, each with a random degradation:
    k-space truncation (or, for `gaussian_fraction` of them, a Gaussian slice profile), a random
    extra Gaussian blur of up to `blur_max` fine voxels before it, and Rician noise of up to
    `noise_max` of the intensity range. Whole volumes are degraded (never patches), so no patch
    carries FFT wrap-around; the sinc base is likewise computed on the whole low-resolution copy.
    """

    def __init__(self, volumes: Sequence[np.ndarray], config: TrainConfig, *, seed: int) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        s = np.asarray(config.scale)
        self.pairs: list[_Pair] = []
        for vol in volumes:
            hr = vol[tuple(slice(0, (n // f) * f) for n, f in zip(vol.shape, s, strict=True))]
            if any(n // f < config.patch_size for n, f in zip(hr.shape, s, strict=True)):
                raise ValueError(
                    f"a training volume of shape {vol.shape} is smaller than one patch "
                    f"({config.patch_size} low-resolution voxels per axis); lower patch_size"
                )
            scale_hr = IntensityScaling.fit(hr)
            for _ in range(config.n_variants):
                blur = self.rng.uniform(0, config.blur_max)
                src = ndimage.gaussian_filter(hr, blur) if blur > 0.05 else hr
                model = "gaussian" if self.rng.random() < config.gaussian_fraction else "kspace"
                # Degrade and add noise in the scan's own (non-negative magnitude) units: Rician
                # noise on normalised data, whose background is negative, would flip its sign.
                lr = degrade_array(
                    src,
                    config.scale,
                    model=model,
                    noise_sigma=float(self.rng.uniform(0, config.noise_max)) * (scale_hr.hi - scale_hr.lo),
                    seed=int(self.rng.integers(2**31)),
                )
                # Normalise as inference does: by the low-resolution image's own robust range.
                scaling = IntensityScaling.fit(lr)
                lr_n, hr_n = scaling.forward(lr), scaling.forward(hr)
                base = sinc_upsample(lr_n, config.scale) if config.skip == "sinc" else None
                self.pairs.append(_Pair(lr_n, hr_n, base, foreground_mask(lr)))

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        p = self.config.patch_size
        s = self.config.scale
        lrs, hrs, bases = [], [], []
        for _ in range(batch_size):
            pair = self.pairs[int(self.rng.integers(len(self.pairs)))]
            for _attempt in range(20):  # prefer patches that are mostly anatomy, not air
                i = [int(self.rng.integers(0, n - p + 1)) for n in pair.lr.shape]
                if pair.fg_lr[i[0] : i[0] + p, i[1] : i[1] + p, i[2] : i[2] + p].mean() > 0.3:
                    break
            lo = tuple(slice(a, a + p) for a in i)
            hi = tuple(slice(a * f, (a + p) * f) for a, f in zip(i, s, strict=True))
            lrs.append(pair.lr[lo])
            hrs.append(pair.hr[hi])
            if pair.base is not None:
                bases.append(pair.base[hi])
        # Random flips and axis-preserving transposes would change anisotropic scales: flips only.
        lr_t = torch.from_numpy(np.stack(lrs))[:, None]
        hr_t = torch.from_numpy(np.stack(hrs))[:, None]
        base_t = torch.from_numpy(np.stack(bases))[:, None] if bases else None
        for axis in range(3):
            if self.rng.random() < 0.5:
                lr_t, hr_t = lr_t.flip(2 + axis), hr_t.flip(2 + axis)
                base_t = base_t.flip(2 + axis) if base_t is not None else None
        return lr_t.contiguous(), hr_t.contiguous(), None if base_t is None else base_t.contiguous()


def load_training_volumes(
    paths: Sequence[str | Path],
    *,
    phantoms: int = 0,
    seed: int = 0,
    hr_scales: Sequence[int] = (1,),
    phantom_coarsening: float = 1.0,
    min_shape: int = 0,
) -> list[np.ndarray]:
    """High-resolution training volumes: each scan at every factor of `hr_scales`, plus phantoms.

    A factor f > 1 adds the scan re-acquired on an f-times coarser grid (its central k-space
    kept, as a scanner acquiring a smaller matrix would): the same anatomy spans fewer voxels, so
    the network sees structures at the voxel scale of coarser clinical scans (a 1 mm brain
    template teaches little about a 3 mm abdominal series otherwise). Coarsened copies with an
    axis shorter than `min_shape` are left out (a scan too small at its own scale is an error,
    raised by the sampler). Phantoms are drawn with a random coarsening in
    [1, `phantom_coarsening`]: the same field of view on fewer, larger voxels.
    """
    from srgan3d.synthetic import TumourSpec, make_phantom
    from srgan3d.volume import find_scans

    out = []
    for src in find_scans(paths) if paths else []:
        vol = src.read()
        for f in hr_scales:
            data = vol.data if f == 1 else degrade_array(crop_to_multiple(vol, f).data, f)
            if f > 1 and min(data.shape) < min_shape:
                log.info(
                    "training volume %s at 1/%d: %s is below one patch, left out", src.path, f, data.shape
                )
                continue
            out.append(np.maximum(data, 0) if f > 1 else data)
            log.info("training volume %s at 1/%d: %s", src.path, f, data.shape)
    rng = np.random.default_rng(seed + 7919)
    for k in range(phantoms):
        spec = TumourSpec(
            diameter_mm=float(rng.uniform(15, 70)),
            enhancement=float(rng.uniform(0.1, 1.2)),
            necrosis=float(rng.uniform(0, 0.6)),
            capsule=bool(rng.random() < 0.6),
            texture=float(rng.uniform(0.05, 0.5)),
        )
        c = float(rng.uniform(1.0, phantom_coarsening))
        shape = tuple(max(min_shape, 2 * round(n / c / 2)) for n in (160, 144, 64))
        spacing = tuple(s * n0 / n for s, n0, n in zip((1.2, 1.2, 1.6), (160, 144, 64), shape, strict=True))
        ph = make_phantom(shape, spacing, tumour=spec, seed=seed * 1000 + k)
        out.append(ph.image.data)
    if not out:
        raise ValueError("no training volumes: give high-resolution scans and/or phantoms > 0")
    return out


# --------------------------------------------------------------------------------------------
# Losses


def gradient_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 distance between finite-difference gradients along the three spatial axes."""
    total = sr.new_zeros(())
    for dim in (2, 3, 4):
        total = total + F.l1_loss(torch.diff(sr, dim=dim), torch.diff(hr, dim=dim))
    return total / 3


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


# --------------------------------------------------------------------------------------------
# Validation


@dataclass
class ValidationVolume:
    name: str
    lr: np.ndarray
    hr: np.ndarray
    mask: np.ndarray
    baselines: dict[str, tuple[float, float]]


def prepare_validation(volumes: Sequence[Volume], config: TrainConfig) -> list[ValidationVolume]:
    """Central crops of held-out volumes, degraded by clean k-space truncation and normalised by
    the degraded image's range, with the PSNR/SSIM of zero-filled k-space and tricubic
    interpolation precomputed."""
    out = []
    for k, vol in enumerate(volumes):
        crop = [min(n, config.val_crop * f) for n, f in zip(vol.shape, config.scale, strict=True)]
        start = [(n - c) // 2 for n, c in zip(vol.shape, crop, strict=True)]
        hr = vol.data[tuple(slice(a, a + c) for a, c in zip(start, crop, strict=True))]
        hr = crop_to_multiple(Volume(hr, np.eye(4)), config.scale).data
        lr = degrade_array(hr, config.scale)
        scaling = IntensityScaling.fit(lr)  # as inference: by the input's own range
        lr, hr = scaling.forward(lr), scaling.forward(hr)
        mask = foreground_mask(hr)
        base = {
            "sinc": sinc_upsample(lr, config.scale),
            "tricubic": spline_upsample(lr, config.scale, order=3),
        }
        baselines = {m: (psnr(hr, v, mask=mask), ssim(hr, v, mask=mask)) for m, v in base.items()}
        out.append(ValidationVolume(str(vol.meta.get("source", f"val{k}")), lr, hr, mask, baselines))
    return out


def validate(model: Generator, val: Sequence[ValidationVolume], device: torch.device) -> dict[str, float]:
    """PSNR/SSIM over the foreground of the model and of the baselines: the means over the
    volumes ("psnr", "psnr_sinc", ...) and each volume's ("psnr[NAME]", ...)."""
    if not val:
        return {}
    engine = GeneratorEngine(model, device=device, amp=False)
    res: dict[str, list[float]] = {}
    per_volume: dict[str, float] = {}
    for v in val:
        sr = engine.run(v.lr)
        p_sr, s_sr = psnr(v.hr, sr, mask=v.mask), ssim(v.hr, sr, mask=v.mask)
        res.setdefault("psnr", []).append(p_sr)
        res.setdefault("ssim", []).append(s_sr)
        name = Path(v.name).name
        per_volume[f"psnr[{name}]"], per_volume[f"ssim[{name}]"] = p_sr, s_sr
        for m, (p, s) in v.baselines.items():
            res.setdefault(f"psnr_{m}", []).append(p)
            res.setdefault(f"ssim_{m}", []).append(s)
            per_volume[f"psnr_{m}[{name}]"], per_volume[f"ssim_{m}[{name}]"] = p, s
    # Means over the volumes first (the log's columns), then each volume's own figures: a mean
    # over a brain template and an abdominal scan hides which one the model helps.
    return {**{k: float(np.mean(vs)) for k, vs in res.items()}, **per_volume}


# --------------------------------------------------------------------------------------------
# The loop


def _is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if isinstance(m, torch.nn.parallel.DistributedDataParallel) else m


LOG_COLUMNS = (
    "step", "stage", "l1", "edge", "g_adv", "d_loss", "seconds",
    "val_psnr", "val_ssim", "val_psnr_sinc", "val_psnr_tricubic", "val_ssim_sinc", "val_ssim_tricubic",
)  # fmt: skip


def train(
    data: Sequence[str | Path],
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    val: Sequence[str | Path] = (),
    resume: bool = False,
    init: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a generator on high-resolution volumes; checkpoints, config and a CSV log in `run_dir`.

    Args:
        data: high-resolution NIfTI files, DICOM series or folders.
        run_dir: output folder (`config.json`, `log.csv`, `checkpoint.pt`, `last_validation.json`).
        config: the recipe.
        val: held-out high-resolution volumes for validation.
        resume: continue from `run_dir/checkpoint.pt` (its config must match).
        init: fine-tune: start the generator and its EMA from these weights (a name or a `.pt`
            with its model card, e.g. the shipped `srgan3d_x2`) instead of from scratch; the
            recipe's architecture must be the weights' (`init_config` makes it so).

    Returns the last validation metrics and the step count.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    distributed = _is_distributed()
    rank = 0
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        rank = torch.distributed.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = resolve_device(config.device)
    main_process = rank == 0
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(
            f"{ckpt_path} exists: pass --resume to continue that run, or choose another folder"
        )

    torch.manual_seed(config.seed + rank)
    gen = Generator(config.generator).to(device)
    disc = PatchDiscriminator().to(device)
    ema = AveragedModel(gen, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=(0.9, 0.99))
    step = 0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved = TrainConfig.from_dict(json.loads(state["config_json"]))
        if saved.generator != config.generator:
            raise ValueError(f"{ckpt_path}: its generator {saved.generator} differs from {config.generator}")
        gen.load_state_dict(state["params"])
        ema.module.load_state_dict(state["params_ema"])
        disc.load_state_dict(state["params_d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        ema.n_averaged.fill_(int(state["step"]))
        step = int(state["step"])
        log.info("resumed %s at step %d", ckpt_path, step)
    elif init is not None:
        from srgan3d.weights import load_generator

        start, init_info = load_generator(init)
        if start.config != config.generator:
            raise ValueError(
                f"weights {init_info.name} are a {start.config} generator, the recipe asks for "
                f"{config.generator}: set the recipe's architecture keys to the weights' (or drop --init)"
            )
        gen.load_state_dict(start.state_dict())
        ema.module.load_state_dict(start.state_dict())
        log.info("fine-tuning from %s (sha256 %s)", init_info.path, init_info.sha256[:16])
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        gen_t: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(gen, device_ids=ids)
        disc_t: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(disc, device_ids=ids)
    else:
        gen_t, disc_t = gen, disc

    volumes = load_training_volumes(
        data,
        phantoms=config.phantoms,
        seed=config.seed,
        hr_scales=config.hr_scales,
        phantom_coarsening=config.phantom_coarsening,
        min_shape=config.patch_size * max(config.scale),
    )
    # Reseeded from the step, so a resumed run draws fresh patches deterministically.
    sampler = PatchSampler(volumes, config, seed=config.seed * 100_003 + rank * 7 + step)
    val_set = prepare_validation([read_volume(p) for p in val], config) if main_process else []
    if main_process:
        info: dict[str, Any] = {
            "config": config.to_dict(),
            "data": [str(p) for p in data],
            "val": [str(p) for p in val],
        }
        if init is not None:
            from srgan3d.weights import find_weights, sha256_file

            w = find_weights(init)
            info["init"] = {"name": w.name, "sha256": sha256_file(w.path)}
        cfg_path = run_dir / "config.json"
        if resume and cfg_path.exists():  # a resumed run keeps the record of what it was trained on
            before = json.loads(cfg_path.read_text())
            for key in ("data", "val"):
                info[key] = list(dict.fromkeys([*before.get(key, []), *info[key]]))
            if "init" in before:
                info["init"] = before["init"]
        cfg_path.write_text(json.dumps(info, indent=2))
    amp = config.amp and device.type == "cuda"
    total = config.pretrain_steps + config.gan_steps
    log_path = run_dir / "log.csv"
    new_log = not log_path.exists() or not resume
    log_file = log_path.open("w" if new_log else "a", newline="") if main_process else None
    writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS) if log_file else None
    if writer and new_log:
        writer.writeheader()
    last_val: dict[str, float] = {}
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not (progress and main_process))
    t0 = time.perf_counter()
    try:
        while step < total:
            gan = step >= config.pretrain_steps
            lr_b, hr_b, base_b = sampler.sample(config.batch_size)
            lr_b, hr_b = lr_b.to(device), hr_b.to(device)
            base_b = base_b.to(device) if base_b is not None else None
            # Generator step, discriminator frozen (BasicSR order).
            for p in disc.parameters():
                p.requires_grad_(False)
            for group in opt_g.param_groups:
                group["lr"] = config.generator_lr(step)
            opt_g.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                sr = gen_t(lr_b).float()
                if base_b is not None:
                    sr = sr + base_b
                l1 = F.l1_loss(sr, hr_b)
                edge = gradient_loss(sr, hr_b)
                loss = config.l1_weight * l1 + config.edge_weight * edge
                g_adv = torch.zeros((), device=device)
                if gan:
                    real_pred = disc_t(hr_b).detach()
                    fake_pred = disc_t(sr)
                    g_adv = 0.5 * (
                        _bce(real_pred - fake_pred.mean(), 0.0) + _bce(fake_pred - real_pred.mean(), 1.0)
                    )
                    loss = loss + config.adv_weight * g_adv
            loss.backward()
            opt_g.step()
            ema.update_parameters(gen)
            d_loss = torch.zeros((), device=device)
            if gan:
                for p in disc.parameters():
                    p.requires_grad_(True)
                opt_d.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    fake = sr.detach()
                    real_pred = disc_t(hr_b)
                    fake_pred = disc_t(fake)
                    d_loss = 0.5 * (
                        _bce(real_pred - fake_pred.mean(), 1.0) + _bce(fake_pred - real_pred.mean(), 0.0)
                    )
                d_loss.backward()
                opt_d.step()
            step += 1
            bar.update(1)
            row: dict[str, Any] = {
                "step": step, "stage": "gan" if gan else "pixel", "l1": f"{l1.item():.6f}",
                "edge": f"{edge.item():.6f}", "g_adv": f"{g_adv.item():.5f}", "d_loss": f"{d_loss.item():.5f}",
                "seconds": f"{time.perf_counter() - t0:.1f}",
            }  # fmt: skip
            if main_process and (step % config.val_every == 0 or step == total) and val_set:
                last_val = validate(_unwrap(ema.module), val_set, device)
                row.update({f"val_{k}": f"{v:.4f}" for k, v in last_val.items() if f"val_{k}" in LOG_COLUMNS})
                bar.set_postfix(psnr=f"{last_val['psnr']:.2f}", sinc=f"{last_val['psnr_sinc']:.2f}")
            if writer:
                writer.writerow(row)
                log_file.flush()  # type: ignore[union-attr]
            if main_process and (step % config.checkpoint_every == 0 or step == total):
                _save_checkpoint(ckpt_path, gen, ema, disc, opt_g, opt_d, step, config)
    finally:
        bar.close()
        if log_file:
            log_file.close()
        if distributed:
            torch.distributed.destroy_process_group()
    if main_process:
        (run_dir / "last_validation.json").write_text(json.dumps({"step": step, **last_val}, indent=2) + "\n")
    return {"step": step, "validation": last_val}


def _save_checkpoint(path, gen, ema, disc, opt_g, opt_d, step, config) -> None:
    state = {
        "params": gen.state_dict(),
        "params_ema": ema.module.state_dict(),
        "params_d": disc.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "step": step,
        "config_json": json.dumps(config.to_dict()),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Export


def export_weights(
    run_dir: str | Path,
    out: str | Path,
    *,
    use_ema: bool = True,
    description: str = "",
    training_data: Sequence[str] | None = None,
) -> Path:
    """Write a run's generator (EMA by default) as `out` (.pt state_dict) with its model card
    (`.json` and a short `.md`): architecture, scale, data, recipe, steps, validation, sha256."""
    run_dir = Path(run_dir)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(json.loads(state["config_json"]))
    model = Generator(config.generator)
    model.load_state_dict(state["params_ema" if use_ema else "params"])
    run_info = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    val_path = run_dir / "last_validation.json"
    validation = json.loads(val_path.read_text()) if val_path.exists() else {}
    card = {
        "description": description,
        "scale": list(config.scale),
        "stage": "gan" if config.gan_steps > 0 else "pixel (L1 + gradient)",
        "parameters": "EMA" if use_ema else "raw",
        "steps": int(state["step"]),
        "recipe": config.to_dict(),
        "training_data": list(training_data or run_info.get("data", [])),
        "initialised_from": run_info.get("init"),
        "validation_data": run_info.get("val", []),
        "validation": validation,
        "versions": versions(),
    }
    path = save_weights(model, out, card)
    full = json.loads(path.with_suffix(".json").read_text())
    md = [
        f"# {path.stem}",
        "",
        description or "Generator weights trained by srgan3d.",
        "",
        f"- Scale: {tuple(config.scale)}; skip: {config.skip}; stage: {card['stage']}; {card['steps']} steps.",
        f"- Architecture: {json.dumps(full['generator'])}",
        f"- Training data: {', '.join(card['training_data']) or 'none'} (at 1/{', 1/'.join(map(str, config.hr_scales))} "
        f"of their resolution); phantoms: {config.phantoms} (grids up to {config.phantom_coarsening}x coarser)",
        *(
            [
                f"- Fine-tuned from: {card['initialised_from']['name']} (sha256 {card['initialised_from']['sha256']})"
            ]
            if card["initialised_from"]
            else []
        ),
        f"- Validation data (held out): {', '.join(card['validation_data']) or 'none'}",
        "- Validation at the last step (central crops, 2x k-space degradation, foreground PSNR dB):",
        *_validation_lines(validation),
        f"- sha256: {full['sha256']}",
        "",
    ]
    path.with_suffix(".md").write_text("\n".join(md))
    return path


def _validation_lines(validation: dict[str, Any]) -> list[str]:
    names = [k[5:-1] for k in validation if k.startswith("psnr[")]
    if not names:  # older runs recorded only the means
        return [f"  - mean over the volumes: {json.dumps(validation)}"] if validation else ["  - none"]
    return [
        f"  - {n}: this model {validation[f'psnr[{n}]']:.2f}, zero-filled k-space "
        f"{validation.get(f'psnr_sinc[{n}]', float('nan')):.2f}, tricubic "
        f"{validation.get(f'psnr_tricubic[{n}]', float('nan')):.2f}"
        for n in names
    ]


# --------------------------------------------------------------------------------------------
# Internal learning: adapt a generator to the scan at hand


def adapt_generator(
    model: Generator,
    volume: Volume,
    *,
    steps: int = 200,
    batch_size: int = 4,
    patch_size: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[Generator, dict[str, float]]:
    """Fine-tune a copy of `model` on the scan itself before upscaling it (internal learning).

    The scan plays the high-resolution role: it is degraded once more by the generator's scale
    (k-space truncation or Gaussian profile, light blur and noise, as in training), and the copy
    learns to undo that for `steps` steps of L1 + 0.1 x gradient loss. The scan's own detail, one
    octave down, is what it learns from (the self-similarity that internal-learning SR relies on).
    The input model is not changed.

    Returns the adapted copy (eval mode) and {"steps", "seconds", "loss_first", "loss_last"}.
    """
    import copy

    device = device or torch.device("cpu")
    scale = tuple(model.config.scale)
    rng = np.random.default_rng(seed)
    hr = volume.data[tuple(slice(0, (n // f) * f) for n, f in zip(volume.shape, scale, strict=True))]
    lr_shape = [n // f for n, f in zip(hr.shape, scale, strict=True)]
    # Patches as large as asked for, but no larger than the scan allows along each axis (thin
    # scans have few slices).
    patch = [min(patch_size, n) for n in lr_shape]
    if min(patch) < 4:
        raise ValueError(
            f"scan {volume.shape} is too small to adapt to: after a further {scale} reduction it is {lr_shape}"
        )
    # Degrade in the scan's own units (non-negative magnitude), then normalise by the LR range,
    # as training and inference do; two copies, k-space truncation with light noise.
    pairs = []
    for _ in range(2):
        scaling_hr = IntensityScaling.fit(hr)
        sigma = float(rng.uniform(0, 0.01)) * (scaling_hr.hi - scaling_hr.lo)
        lr_img = degrade_array(hr, scale, model="kspace", noise_sigma=sigma, seed=int(rng.integers(2**31)))
        scaling = IntensityScaling.fit(lr_img)
        lr_n, hr_n = scaling.forward(lr_img), scaling.forward(hr)
        base = sinc_upsample(lr_n, scale) if model.config.skip == "sinc" else None
        pairs.append((lr_n, hr_n, base, foreground_mask(lr_img)))

    def sample() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        lrs, hrs, bases = [], [], []
        for _ in range(batch_size):
            lr_n, hr_n, base, fg = pairs[int(rng.integers(len(pairs)))]
            for _attempt in range(20):  # prefer patches that are mostly anatomy, not air
                i = [int(rng.integers(0, n - q + 1)) for n, q in zip(lr_n.shape, patch, strict=True)]
                lo = tuple(slice(a, a + q) for a, q in zip(i, patch, strict=True))
                if fg[lo].mean() > 0.3:
                    break
            hi = tuple(slice(a * f, (a + q) * f) for a, q, f in zip(i, patch, scale, strict=True))
            flips = [ax for ax in range(3) if rng.random() < 0.5]
            lrs.append(np.flip(lr_n[lo], flips).copy())
            hrs.append(np.flip(hr_n[hi], flips).copy())
            if base is not None:
                bases.append(np.flip(base[hi], flips).copy())
        as_t = lambda xs: torch.from_numpy(np.stack(xs))[:, None]  # noqa: E731
        return as_t(lrs), as_t(hrs), (as_t(bases) if bases else None)

    gen = copy.deepcopy(model).to(device).train()
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.9, 0.99))
    torch.manual_seed(seed)
    losses = []
    t0 = time.perf_counter()
    for _ in tqdm(range(steps), desc="adapt", unit="step", disable=not progress, leave=False):
        lr_b, hr_b, base_b = sample()
        lr_b, hr_b = lr_b.to(device), hr_b.to(device)
        sr = gen(lr_b)
        if base_b is not None:
            sr = sr + base_b.to(device)
        loss = F.l1_loss(sr, hr_b) + 0.1 * gradient_loss(sr, hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    gen.eval()
    k = max(1, min(20, len(losses) // 5))
    stats = {
        "steps": float(steps),
        "seconds": time.perf_counter() - t0,
        "loss_first": float(np.mean(losses[:k])) if losses else float("nan"),
        "loss_last": float(np.mean(losses[-k:])) if losses else float("nan"),
    }
    return gen, stats
