"""GAN training of the generator: data, the two-stage loop, validation and checkpoints (the recipe
is `srgan3d.sr.config.TrainConfig`, the losses `srgan3d.sr.losses`, export `srgan3d.sr.export`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from srgan3d.atomic import atomic_path, write_text_atomic
from srgan3d.io import read_volume
from srgan3d.sr.config import TrainConfig
from srgan3d.sr.degrade import crop_to_multiple, degrade_array, sinc_upsample, spline_upsample
from srgan3d.sr.device import resolve_device, use_bf16
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling
from srgan3d.sr.losses import bce, gradient_loss
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.nets import Generator, PatchDiscriminator
from srgan3d.sr.pairs import (
    PatchSampler,
    interior,
    load_volumes_at_scales,
    predict_patch,
)
from srgan3d.sr.weights import (
    find_weights,
    load_generator,
    non_finite_tensors,
    sha256_file,
)
from srgan3d.volume import Volume, crop_affine

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Data


def load_training_volumes(
    paths: Sequence[str | Path | Volume],
    *,
    phantoms: int = 0,
    seed: int = 0,
    hr_scales: Sequence[int] = (1,),
    phantom_coarsening: float = 1.0,
    min_shape: int = 0,
) -> list[np.ndarray]:
    """High-resolution training volumes: each scan at every factor of `hr_scales`
    (`srgan3d.sr.pairs.load_volumes_at_scales`), plus phantoms drawn with a random coarsening in
    [1, `phantom_coarsening`] (the same field of view on fewer, larger voxels)."""
    from srgan3d.discovery import find_scans
    from srgan3d.sr.synthetic import TumourSpec, make_phantom

    scans = []
    given = [p for p in paths if isinstance(p, Volume)]
    files = [p for p in paths if not isinstance(p, Volume)]
    for vol in [*given, *(src.read() for src in (find_scans(files) if files else []))]:
        src_name = vol.meta.get("source", "scan")
        if min_shape and min(vol.shape) < min_shape:  # only coarsened copies may be left out
            raise ValueError(
                f"{src_name}: shape {vol.shape} has an axis shorter than "
                f"{min_shape} voxels, too few to train on after the 2x reduction; leave it out or give a larger scan"
            )
        scans.append(vol)
    out = load_volumes_at_scales(scans, hr_scales, min_shape=min_shape)
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
        sx, sy, sz = (max(min_shape, 2 * round(n / c / 2)) for n in (160, 144, 64))
        shape = (sx, sy, sz)
        spacing = (1.2 * 160 / sx, 1.2 * 144 / sy, 1.6 * 64 / sz)
        ph = make_phantom(shape, spacing, tumour=spec, seed=seed * 1000 + k)
        out.append(ph.image.data)
    if not out:
        raise ValueError("no training volumes: give high-resolution scans and/or phantoms > 0")
    return out


def make_sampler(volumes: Sequence[np.ndarray], config: TrainConfig, *, seed: int) -> PatchSampler:
    return PatchSampler(volumes, config.degradation, patch_size=config.patch_size, seed=seed, transpose=config.transpose)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss, gradient or weight; nothing non-finite was saved."""


def _check_finite(value: torch.Tensor, *, step: int, stage: str, term: str, amp: bool) -> None:
    """Stop the run at the first non-finite loss or gradient, naming the step, stage and term,
    before the optimiser can write it into the weights."""
    if bool(torch.isfinite(value).all()):
        return
    hint = (
        " It ran in bf16 autocast: run again with --no-amp (fp32), and report it."
        if amp
        else " Lower the learning rate (lr_g, lr_g_gan, lr_d) or the adversarial weight and run again."
    )
    raise NonFiniteError(
        f"training stopped at step {step + 1} ({stage} stage): the {term} is not finite "
        f"({float(value.detach().float().sum()) if value.numel() == 1 else 'NaN/inf'}); "
        f"no checkpoint holds the non-finite weights.{hint}"
    )


def _grads(module: torch.nn.Module) -> torch.Tensor:
    """The total gradient norm of `module`'s parameters (NaN or inf when any gradient is)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


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


def validate(
    model: Generator, val: Sequence[ValidationVolume], device: torch.device, *, amp: bool = False
) -> dict[str, float]:
    """PSNR/SSIM over the foreground of the model and of the baselines: the means over the
    volumes ("psnr", "psnr_sinc", ...) and each volume's ("psnr[NAME]", ...). `amp`: in the
    precision inference would use (`srgan3d.sr.device.use_bf16`)."""
    if not val:
        return {}
    engine = GeneratorEngine(model, device=device, amp=amp)
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


def split_for_validation(
    volumes: Sequence[Volume], *, holdout: float, min_slab: int
) -> tuple[list[Volume], list[Volume], str]:
    """Hold out part of the training data to validate on when no --val is given.

    Several scans: the last `holdout` of them in name order (at least one), by subject (one scan
    per subject assumed). One scan: a slab, the last `holdout` of its slices along the slice axis
    (array axis 2; the longest axis when that one is too short), at least `min_slab` voxels on each
    side; the training slab keeps the rest, so no training patch touches the validation slab.
    Returns (training volumes, validation volumes, what was done in words)."""
    vols = sorted(volumes, key=lambda v: str(v.meta.get("source", "")))
    if len(vols) >= 2:
        k = max(1, int(round(holdout * len(vols))))
        names = ", ".join(Path(str(v.meta.get("source", "?"))).name for v in vols[-k:])
        return vols[:-k], vols[-k:], f"held out by subject: {names}"
    (vol,) = vols
    axis = 2 if vol.shape[2] >= 2 * min_slab else int(np.argmax(vol.shape))
    n = vol.shape[axis]
    cut = n - max(min_slab, int(round(holdout * n)))
    if cut < min_slab:
        raise ValueError(
            f"{vol.meta.get('source', 'scan')}: {n} voxels along axis {axis} are too few to split into a training and "
            f"a validation slab of at least {min_slab} each; give --val SCAN, or a larger scan"
        )
    def part(a: int, b: int) -> Volume:
        index = [slice(None)] * 3
        index[axis] = slice(a, b)
        affine = crop_affine(vol.affine, [a if i == axis else 0 for i in range(3)])
        meta = {**vol.meta, "source": f"{vol.meta.get('source', 'scan')}[slab {a}:{b} of axis {axis}]"}
        return Volume(np.ascontiguousarray(vol.data[tuple(index)]), affine, meta)
    return [part(0, cut)], [part(cut, n)], f"held out by slab: slices {cut}-{n - 1} of axis {axis} ({n - cut} of {n})"


# --------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class TrainResult:
    """What a training run did.

    Attributes:
        step: the step it stopped at.
        validation: the last validation's metrics (`validate`: means over the volumes, then each
            volume's), empty without validation data.
        stopped_by_budget: the `minutes` budget, not the step count, ended the run.
        validation_split: "--val", "none", or how part of the data was held out
            (`split_for_validation`).
    """

    step: int
    validation: dict[str, float]
    stopped_by_budget: bool = False
    validation_split: str = ""


def _is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if isinstance(m, torch.nn.parallel.DistributedDataParallel) else m


LOG_COLUMNS = (
    "step", "stage", "l1", "edge", "g_adv", "d_loss", "seconds",
    "val_psnr", "val_ssim", "val_psnr_sinc", "val_psnr_tricubic", "val_ssim_sinc", "val_ssim_tricubic",
)  # fmt: skip


@dataclass
class _Run:
    """The state of a training run: models, optimisers, step, device and the rank's role."""

    gen: Generator
    ema: AveragedModel
    disc: PatchDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    device: torch.device
    rank: int = 0
    distributed: bool = False
    step: int = 0
    budget_fraction: float | None = None  # of the `minutes` budget spent (the "budget" schedule)
    gen_t: torch.nn.Module | None = None
    disc_t: torch.nn.Module | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def gen_ema(self) -> Generator:
        model = _unwrap(self.ema.module)
        assert isinstance(model, Generator)
        return model


def _setup(config: TrainConfig) -> _Run:
    """Device (and the process group under torchrun), models, EMA and optimisers."""
    distributed, rank = _is_distributed(), 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = resolve_device(config.device)
    torch.manual_seed(config.seed + rank)
    gen = Generator(config.generator).to(device)
    if _channels_last(config, device):  # faster 3D convolutions on the CPU, fp32 and bf16 alike
        gen = gen.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    disc = PatchDiscriminator().to(device)
    ema = AveragedModel(gen, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=(0.9, 0.99))
    return _Run(gen, ema, disc, opt_g, opt_d, device, rank, distributed)


def _channels_last(config: TrainConfig, device: torch.device) -> bool:
    return device.type == "cpu" if config.channels_last is None else config.channels_last


def _restore(run: _Run, config: TrainConfig, ckpt_path: Path, *, resume: bool, init: str | Path | None) -> None:
    """Continue from the run's checkpoint, or start the generator from `init` weights; then wrap
    the models for DistributedDataParallel under torchrun."""
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=run.device, weights_only=True)
        saved = TrainConfig.from_dict(json.loads(state["config_json"]))
        if saved.generator != config.generator:
            raise ValueError(f"{ckpt_path}: its generator {saved.generator} differs from {config.generator}")
        run.gen.load_state_dict(state["params"])
        run.ema.module.load_state_dict(state["params_ema"])
        run.disc.load_state_dict(state["params_d"])
        run.opt_g.load_state_dict(state["opt_g"])
        run.opt_d.load_state_dict(state["opt_d"])
        run.ema.n_averaged.fill_(int(state["step"]))
        run.step = int(state["step"])
        log.info("resumed %s at step %d", ckpt_path, run.step)
    elif init is not None:
        start, init_info = load_generator(init)
        if start.config != config.generator:
            raise ValueError(
                f"weights {init_info.name} are a {start.config} generator, the recipe asks for "
                f"{config.generator}: set the recipe's architecture keys to the weights' (or drop --init)"
            )
        run.gen.load_state_dict(start.state_dict())
        run.ema.module.load_state_dict(start.state_dict())
        log.info("fine-tuning from %s (sha256 %s)", init_info.path, init_info.sha256[:16])
    run.gen_t, run.disc_t = run.gen, run.disc
    if run.distributed:
        ids = [run.device.index] if run.device.type == "cuda" else None
        run.gen_t = torch.nn.parallel.DistributedDataParallel(run.gen, device_ids=ids)
        run.disc_t = torch.nn.parallel.DistributedDataParallel(run.disc, device_ids=ids)


def _write_run_record(
    run_dir: Path, config: TrainConfig, data, val, *, resume: bool, init, device: torch.device, split: str = ""
) -> None:
    """`config.json`: the recipe and what trained and validated it (a resumed run keeps its record)."""
    info: dict[str, Any] = {
        "config": config.to_dict(), "data": [str(p) for p in data], "val": [str(p) for p in val],
        # What the generator's convolutions ran in (the discriminator and losses are always fp32).
        "precision": "bf16" if use_bf16(device, config.amp) else "fp32",
        "device": str(device),
        "validation_split": split or ("--val" if val else "none"),
    }  # fmt: skip
    if init is not None:
        w = find_weights(init)
        info["init"] = {"name": w.name, "sha256": sha256_file(w.path), "path": str(w.path)}
    cfg_path = run_dir / "config.json"
    if resume and cfg_path.exists():
        before = json.loads(cfg_path.read_text())
        for key in ("data", "val"):
            info[key] = list(dict.fromkeys([*before.get(key, []), *info[key]]))
        if "init" in before:
            info["init"] = before["init"]
        if before.get("precision", info["precision"]) != info["precision"]:  # resumed in another precision
            info["precision"] = f"{before['precision']}, resumed in {info['precision']}"
    write_text_atomic(cfg_path, json.dumps(info, indent=2))


def _discriminate(run: _Run, x: torch.Tensor) -> torch.Tensor:
    """The discriminator's logits, in fp32 whatever the generator's precision.

    bf16 turned its training to NaN on CPUs with bf16 units (AVX512-BF16): after one good step,
    d_loss and then the generator's weights became NaN, at a step that depended on what the
    process had run before, while the same run in fp32 stayed finite. Its spectral
    normalisation, strided 4x4x4 convolutions and relativistic logits (a difference of logits
    and a mean, then a log-sigmoid) are the numerically delicate part of the GAN step, and it is
    small beside the generator (about a quarter of a step's FLOPs), so it runs as PyTorch's
    mixed-precision guides keep losses and normalisation: in fp32. On CUDA fp32 convolutions
    use TF32 tensor cores by default, so this costs little there either.
    """
    with torch.autocast(run.device.type, enabled=False):
        return run.disc_t(x.float())  # type: ignore[misc]


def _step(run: _Run, config: TrainConfig, batch) -> dict[str, float]:
    """One generator step (discriminator frozen), then in stage 2 one discriminator step: BasicSR's
    order. The pixel losses are on the patch's interior when `dc_loss` (its FFT wraps at the edges).

    Every loss term and both models' gradients are checked before their optimiser steps
    (`_check_finite`): the first non-finite one raises `NonFiniteError` and no weight changes."""
    gan = run.step >= config.pretrain_steps
    stage = "gan" if gan else "pixel"
    amp = use_bf16(run.device, config.amp)
    lr_b, hr_b = batch[0].to(run.device), batch[1].to(run.device)
    if _channels_last(config, run.device):
        lr_b = lr_b.contiguous(memory_format=torch.channels_last_3d)
    base_b = batch[2].to(run.device) if batch[2] is not None else None
    margin = [2 * s for s in config.scale] if config.dc_loss else [0, 0, 0]

    def check(value: torch.Tensor, term: str) -> None:
        _check_finite(value, step=run.step, stage=stage, term=term, amp=amp)

    for p in run.disc.parameters():
        p.requires_grad_(False)
    for group in run.opt_g.param_groups:
        group["lr"] = config.generator_lr(run.step, run.budget_fraction)
    run.opt_g.zero_grad(set_to_none=True)
    # Only the generator's convolutions run in bf16; its output, the losses and the
    # discriminator are fp32.
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=amp):
        detail = run.gen_t(lr_b)  # type: ignore[misc]
    detail = detail.float()
    sr = predict_patch(detail, base_b, config.scale, dc=config.dc_loss)
    sr_i, hr_i = interior(sr, margin), interior(hr_b, margin)
    l1 = F.l1_loss(sr_i, hr_i)
    check(l1, "L1 loss")
    edge = gradient_loss(sr_i, hr_i)
    check(edge, "gradient (edge) loss")
    loss = config.l1_weight * l1 + config.edge_weight * edge
    g_adv = torch.zeros((), device=run.device)
    # The discriminator judges the data-consistent output's interior only: a patch's own FFT wraps
    # at its faces, an artefact the real patch lacks and inference (on the whole volume) never has.
    if gan:
        real_pred = _discriminate(run, hr_i).detach()
        fake_pred = _discriminate(run, sr_i)
        g_adv = 0.5 * (bce(real_pred - fake_pred.mean(), 0.0) + bce(fake_pred - real_pred.mean(), 1.0))
        check(g_adv, "generator's adversarial loss")
        loss = loss + config.adv_weight * g_adv
    loss.backward()
    check(_grads(run.gen), "generator's gradient")
    run.opt_g.step()
    run.ema.update_parameters(run.gen)
    d_loss = torch.zeros((), device=run.device)
    if gan:
        for p in run.disc.parameters():
            p.requires_grad_(True)
        run.opt_d.zero_grad(set_to_none=True)
        real_pred = _discriminate(run, hr_i)
        fake_pred = _discriminate(run, sr_i.detach())
        d_loss = 0.5 * (bce(real_pred - fake_pred.mean(), 1.0) + bce(fake_pred - real_pred.mean(), 0.0))
        check(d_loss, "discriminator loss")
        d_loss.backward()
        check(_grads(run.disc), "discriminator's gradient")
        run.opt_d.step()
    run.step += 1
    return {"l1": l1.item(), "edge": edge.item(), "g_adv": g_adv.item(), "d_loss": d_loss.item(), "gan": float(gan)}


def train(
    data: Sequence[str | Path],
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    val: Sequence[str | Path] = (),
    resume: bool = False,
    init: str | Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a generator on high-resolution volumes; checkpoints, config and a CSV log in `run_dir`.

    Args:
        data: high-resolution NIfTI files, DICOM series or folders.
        run_dir: output folder (`config.json`, `log.csv`, `checkpoint.pt`, `last_validation.json`).
        config: the recipe.
        val: held-out high-resolution volumes for validation.
        resume: continue from `run_dir/checkpoint.pt` (its config must match).
        init: fine-tune: start the generator and its EMA from these weights (a name or a `.pt`
            with its model card, e.g. the shipped `srgan3d_x2`) instead of from scratch; the
            recipe's architecture must be the weights' (`srgan3d train --init` takes it from their model card).

    Returns a `TrainResult`: the step count, the last validation metrics, whether the
    `minutes` budget ended the run, and how validation data were chosen.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another folder")
    run = _setup(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    _restore(run, config, ckpt_path, resume=resume, init=init)
    volumes, val_vols, split_note = _training_data(data, val, config)
    # Reseeded from the step, so a resumed run draws fresh patches deterministically.
    sampler = make_sampler(volumes, config, seed=config.seed * 100_003 + run.rank * 7 + run.step)
    val_set = prepare_validation(val_vols, config) if run.main else []
    if run.main:
        val_names = [str(v.meta.get("source", "?")) for v in val_vols]
        _write_run_record(run_dir, config, data, val_names, resume=resume, init=init, device=run.device,
                          split=split_note)  # fmt: skip
        if val_set and init is not None and not (resume and (run_dir / "init_validation.json").exists()):
            # the model it starts from, on the same held-out part: what the fine-tune must beat
            start = validate(run.gen_ema, val_set, run.device, amp=config.amp)
            write_text_atomic(run_dir / "init_validation.json", json.dumps(start, indent=2) + "\n")
    total = config.pretrain_steps + config.gan_steps
    try:
        last_val = _loop(run, config, sampler, val_set, run_dir, resume=resume, progress=progress)
    finally:
        if run.distributed:
            torch.distributed.destroy_process_group()
    if run.main:
        write_text_atomic(run_dir / "last_validation.json", json.dumps({"step": run.step, **last_val}, indent=2) + "\n")
    return TrainResult(step=run.step, validation=last_val, stopped_by_budget=run.step < total,
                       validation_split=split_note or ("--val" if val else "none"))


def _training_data(
    data: Sequence[str | Path], val: Sequence[str | Path], config: TrainConfig
) -> tuple[list[np.ndarray], list[Volume], str]:
    """The training volumes, the validation volumes and how they were chosen: `val` as given, or
    without it a held-out part of the user's own scans (`split_for_validation`)."""
    from srgan3d.discovery import find_scans

    min_shape = 4 * max(config.scale)
    train_data: list[str | Path | Volume] = list(data)
    val_vols = [read_volume(p) for p in val]
    split_note = ""
    scans = [src.read() for src in find_scans(data)] if not val and data and config.holdout > 0 else []
    if scans and all(min(v.shape) >= min_shape for v in scans):
        kept, held, split_note = split_for_validation(scans, holdout=config.holdout,
                                                      min_slab=max(min_shape, config.patch_size * min(config.scale)))  # fmt: skip
        train_data, val_vols = list(kept), held
        log.info("no --val given: %s", split_note)
    elif scans:
        train_data = list(scans)  # too thin to split: the loader names the scan and why
    volumes = load_training_volumes(
        train_data, phantoms=config.phantoms, seed=config.seed, hr_scales=config.hr_scales,
        phantom_coarsening=config.phantom_coarsening, min_shape=min_shape,
    )  # fmt: skip
    return volumes, val_vols, split_note


def _loop(
    run: _Run, config: TrainConfig, sampler: PatchSampler, val_set: list[ValidationVolume], run_dir: Path, *,
    resume: bool, progress: bool,
) -> dict[str, float]:  # fmt: skip
    """The steps up to the recipe's total or the `minutes` budget: the log row of each step,
    validation and the best checkpoint every `val_every`, the checkpoint every
    `checkpoint_every`. Returns the last validation metrics."""
    total = config.pretrain_steps + config.gan_steps
    log_path = run_dir / "log.csv"
    new_log = not log_path.exists() or not resume
    log_file = log_path.open("w" if new_log else "a", newline="") if run.main else None
    writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS) if log_file else None
    if writer and new_log:
        writer.writeheader()
    last_val: dict[str, float] = {}
    best_path = run_dir / "best.json"
    best_psnr = json.loads(best_path.read_text())["psnr"] if resume and best_path.exists() else -math.inf
    bar = tqdm(total=total, initial=run.step, desc="train", unit="step", disable=not (progress and run.main))
    t0 = time.perf_counter()
    budget_s = config.minutes * 60 if config.minutes else math.inf
    try:
        while run.step < total:
            run.budget_fraction = (time.perf_counter() - t0) / budget_s
            losses = _step(run, config, sampler.sample(config.batch_size))
            bar.update(1)
            row: dict[str, str | int] = {
                "step": run.step, "stage": "gan" if losses["gan"] else "pixel", "l1": f"{losses['l1']:.6f}",
                "edge": f"{losses['edge']:.6f}", "g_adv": f"{losses['g_adv']:.5f}",
                "d_loss": f"{losses['d_loss']:.5f}", "seconds": f"{time.perf_counter() - t0:.1f}",
            }  # fmt: skip
            last = run.step == total or time.perf_counter() - t0 >= budget_s
            if run.main and (run.step % config.val_every == 0 or last) and val_set:
                last_val = validate(run.gen_ema, val_set, run.device, amp=config.amp)
                row.update({f"val_{k}": f"{v:.4f}" for k, v in last_val.items() if f"val_{k}" in LOG_COLUMNS})
                bar.set_postfix(psnr=f"{last_val['psnr']:.2f}", sinc=f"{last_val['psnr_sinc']:.2f}")
                if last_val["psnr"] > best_psnr:  # the checkpoint validation prefers: `export --checkpoint best`
                    best_psnr = last_val["psnr"]
                    _save_checkpoint(run_dir / "best.pt", run, config)
                    write_text_atomic(best_path, json.dumps({"step": run.step, **last_val}, indent=2) + "\n")
            if writer and log_file:
                writer.writerow(row)
                log_file.flush()
            if run.main and (run.step % config.checkpoint_every == 0 or last):
                _save_checkpoint(run_dir / "checkpoint.pt", run, config)
            if last and run.step < total:
                log.info("stopped at step %d of %d: the %g-minute budget is spent", run.step, total, config.minutes)
                break
    finally:
        bar.close()
        if log_file:
            log_file.close()
    return last_val


def _save_checkpoint(path: Path, run: _Run, config: TrainConfig) -> None:
    """Write the run's state atomically; weights with a NaN or inf are refused, never written."""
    for what, module in (("generator", run.gen), ("generator's EMA", run.ema.module), ("discriminator", run.disc)):
        bad = non_finite_tensors(module.state_dict())
        if bad:
            raise NonFiniteError(
                f"training stopped at step {run.step}: the {what}'s weights hold NaN or infinite values "
                f"({', '.join(bad[:3])}); {path.name} was not written. Run again with --no-amp"
            )
    state = {
        "params": run.gen.state_dict(),
        "params_ema": run.ema.module.state_dict(),
        "params_d": run.disc.state_dict(),
        "opt_g": run.opt_g.state_dict(),
        "opt_d": run.opt_d.state_dict(),
        "step": run.step,
        "config_json": json.dumps(config.to_dict()),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
