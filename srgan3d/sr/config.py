"""The SR wing's options: the generator's architecture (`GeneratorConfig`), `srgan3d upscale`
(`UpscaleConfig`) and `srgan3d train` (`TrainConfig`), and the upscale methods' names. The CLI reads
its defaults from these classes; they import no torch, so that `srgan3d --help` and option errors
come at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srgan3d.io import check_dtype_policy
from srgan3d.serialisation import JsonValue, Record
from srgan3d.sr import DEFAULT_WEIGHTS
from srgan3d.volume import Volume, thickest_axis

#: The upscale methods: the generator and the interpolation baselines ("sinc" is zero-filled
#: k-space); `upscale_volume` implements them.
METHODS = ("generator", "sinc", "tricubic", "trilinear", "nearest")
#: Per-scan self-supervised through-plane SR (`srgan3d.sr.through_plane`).
SELF_SUPERVISED = "self-supervised"
#: Through-plane only: the cubic B-spline along the slices made consistent with the slice profile
#: (`srgan3d.sr.slice_profile.bspline_consistent`), the best non-learned method measured here.
BSPLINE_CONSISTENT = "bspline-consistent"
#: Through-plane weights trained for a protocol (`srgan3d.sr.protocol`), as the manifest names the method.
THROUGH_PLANE_NETWORK = "through-plane-network"
#: A through-plane network's weights: their model card's "kind".
THROUGH_PLANE_KIND = "through-plane"
#: Slice profiles a scanner's slices are modelled with (`srgan3d.sr.slice_profile.SliceProfile`).
SLICE_PROFILES = ("boxcar", "gaussian")


@dataclass(frozen=True)
class ThroughPlaneConfig(Record):
    """Options of the through-plane network and its training (`srgan3d.sr.through_plane`), per scan
    (`--method self-supervised`) or per protocol (`srgan3d train --through-plane`).

    The network works on 2D planes that contain the slice axis: a head convolution, `n_blocks`
    residual blocks (3x3 conv `channels` -> `expansion` x `channels`, ReLU, 3x3 conv back: WDSR's
    wide activation), a tail convolution, added to the cubic B-spline base along the slices. It
    trains on the scan's own in-plane planes made thick along one in-plane axis by the slice
    profile, L1, Adam with a one-cycle learning rate over the time budget (warm-up to `peak_lr`
    over the first `warmup` of it, then cosine to zero), on patches drawn in proportion to their
    gradient energy. One in-plane plane of each `holdout_every` is held out: it picks the best
    checkpoint and decides, against B-spline + consistency, whether the network is used.

    Attributes:
        minutes: wall-time budget of the training (the schedule follows it).
        max_steps: at most this many steps (the schedule follows whichever ends first).
        patch: side of a square training patch in fine voxels (a multiple of the factor).
        batch_size: patches per step.
        peak_lr, warmup: the one-cycle schedule.
        channels, n_blocks, expansion: the network.
        holdout_every: one in-plane plane of each this many is held out (at least one is).
        validations: held-out checks over the budget (the best one's weights are kept).
        min_gain_db: the held-out gain over B-spline + consistency the network must exceed to be used.
        init: start from these through-plane weights (a name or path), or None (from scratch).
        amp: bf16 autocast where the hardware has bf16 units (`srgan3d.sr.device.use_bf16`).
        seed: patches, flips and initial weights.
    """

    minutes: float = 3.0
    max_steps: int = 1_000_000
    patch: int = 48
    batch_size: int = 16
    peak_lr: float = 1e-3
    warmup: float = 0.1
    channels: int = 32
    n_blocks: int = 6
    expansion: int = 2
    holdout_every: int = 6
    validations: int = 8
    min_gain_db: float = 0.05
    init: str | None = None
    amp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError(f"the training budget must be > 0 minutes, not {self.minutes}")
        if self.patch < 8:
            raise ValueError(f"the training patch must be >= 8 fine voxels, not {self.patch}")
        if self.holdout_every < 2:
            raise ValueError(f"holdout_every must be >= 2, not {self.holdout_every}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must lie in [0, 1), not {self.warmup}")
        for name in ("max_steps", "batch_size", "channels", "expansion", "validations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")

    def network(self) -> dict[str, int]:
        return {"channels": self.channels, "n_blocks": self.n_blocks, "expansion": self.expansion}


@dataclass(frozen=True)
class GeneratorConfig(Record):
    """Architecture of `Generator`.

    Attributes:
        channels: feature width at low resolution (a multiple of 8 suits GPU tensor cores).
        n_blocks: residual blocks at low resolution.
        upsample_channels: feature width after the sub-pixel shuffle, at high resolution.
        scale: integer factor per axis, e.g. (2, 2, 2) or (1, 1, 2) for through-plane only.
        residual_scale: each block adds 0.2 x its output, which keeps deep residual stacks stable
            from random initialisation (as in ESRGAN).
        negative_slope: of the LeakyReLU activations.
        skip: the cheap interpolation the network adds detail to. "sinc": the network outputs
            only the residual over zero-filled k-space interpolation, which the caller computes
            on the whole volume (a window's FFT would wrap at its edges); "trilinear": the
            network adds a trilinear interpolation of its input itself.
    """

    channels: int = 32
    n_blocks: int = 4
    upsample_channels: int = 16
    scale: tuple[int, int, int] = (2, 2, 2)
    residual_scale: float = 0.2
    negative_slope: float = 0.2
    skip: str = "sinc"

    def __post_init__(self) -> None:
        if self.skip not in ("sinc", "trilinear"):
            raise ValueError(f"skip must be 'sinc' or 'trilinear', not {self.skip!r}")
        object.__setattr__(self, "scale", tuple(int(s) for s in self.scale))
        if len(self.scale) != 3 or any(s < 1 for s in self.scale):
            raise ValueError(f"scale must be three positive integers, not {self.scale}")
        for name in ("channels", "upsample_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, not {self.n_blocks}")

    @property
    def receptive_radius(self) -> float:
        """How far, in input voxels, an output voxel can see: one per 3x3x3 convolution."""
        return 1 + 2 * self.n_blocks + 1 + 1 + 0.5



@dataclass(frozen=True)
class UpscaleConfig:
    """Options of `srgan3d upscale`; one field per CLI option.

    Attributes:
        method: "generator", an interpolation baseline (see `upscale_volume`), or "auto": the
            generator only when the model card of `weights` records a gain over zero-filled
            k-space on held-out real abdominal MRI (for the shipped default, its GAN companion
            instead when that card beats the fidelity model's), else zero-filled k-space
            ("sinc"), with the reason said once (`srgan3d.sr.method_choice.resolve_method_and_weights`).
        weights: weights name or path for the generator.
        scale: factor per array axis.
        through_plane: upscale by the largest factor along each scan's thickest axis only.
        device: "auto", "cpu" or "cuda[:N]".
        window: input window per axis for the generator (None: chosen from memory).
        sw_batch_size: windows per forward pass.
        overlap: window overlap fraction (>= 0.25).
        amp: bfloat16 autocast on CUDA and on CPUs with bf16 matrix units (AMX/AVX512-BF16);
            fp32 elsewhere (`srgan3d.sr.device.use_bf16`). The manifest's `precision` says which.
        overwrite: replace existing outputs instead of skipping them.
        suffix: appended to the input's name.
        output_format: "nifti", or "dicom": a DICOM input gets a derived DICOM series (a folder,
            `srgan3d.io.dicom_write`) placed on the original by any viewer; NIfTI and NRRD inputs
            still get NIfTI, and their manifest row says so.
        compress: write .nii.gz (True; gzip level 1 by ISA-L's threaded igzip, `srgan3d.io.nifti`)
            or .nii.
        shard: (K, N): process only the K-th of N interleaved parts of the sorted scan list, so
            that N GPUs or nodes share a cohort; the manifest is `manifest.shard-K-of-N.csv`
            (join them with `merge_manifests`).
        adapt_steps: > 0: fine-tune a copy of the generator on each scan for this many steps
            before upscaling it (internal learning, `srgan3d.sr.adapt.adapt_generator`; no measured
            gain, see the README). Without
            installed weights it starts from an untrained generator whose detail branch is zero,
            i.e. from zero-filled k-space.
        dc: k-space data consistency of the generator's output (see
            `srgan3d.sr.kspace.data_consistency`); the baselines need none.
        dtype: "float32", or "input": the input's stored type (`srgan3d.io.output_array`).
        channels_last: run the generator in the channels_last_3d memory format (None: on the CPU,
            off on CUDA).
        cudnn_benchmark: let cuDNN autotune per input shape (pays when many scans share a shape).
        self_supervised_minutes: with method "self-supervised" (through-plane only): the training
            budget per scan of `srgan3d.sr.through_plane.upscale_through_plane`.
        slice_profile: through-plane only: "boxcar" or "gaussian" (FWHM = the slice thickness);
            None: the protocol weights' own, else boxcar.
        slice_thickness_mm: through-plane only: the slice thickness (None: a DICOM series' own
            SliceThickness, else the spacing between slices).
    """

    method: str = "auto"
    weights: str = DEFAULT_WEIGHTS
    scale: tuple[int, int, int] = (2, 2, 2)
    through_plane: bool = False
    device: str = "auto"
    window: tuple[int, int, int] | None = None
    sw_batch_size: int = 1
    overlap: float = 0.25
    amp: bool = True
    overwrite: bool = False
    suffix: str | None = None
    compress: bool = True
    output_format: str = "nifti"
    shard: tuple[int, int] | None = None
    adapt_steps: int = 0
    dc: bool = True
    dtype: str = "float32"
    channels_last: bool | None = None
    cudnn_benchmark: bool = False
    self_supervised_minutes: float = 4.0
    slice_profile: str | None = None
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        if self.slice_profile is not None and self.slice_profile not in SLICE_PROFILES:
            raise ValueError(f"slice profile must be one of {', '.join(SLICE_PROFILES)}, not {self.slice_profile!r}")
        if self.slice_thickness_mm is not None and not self.slice_thickness_mm > 0:
            raise ValueError(f"the slice thickness must be > 0 mm, not {self.slice_thickness_mm}")
        if self.adapt_steps < 0:
            raise ValueError(f"adapt steps must be >= 0, not {self.adapt_steps}")
        if self.output_format not in ("nifti", "dicom"):
            raise ValueError(f"--output-format must be nifti or dicom, not {self.output_format!r}")
        if self.shard is not None:
            k, n = self.shard
            if not (n >= 1 and 1 <= k <= n):
                raise ValueError(f"shard must be K/N with 1 <= K <= N, not {k}/{n}")
        if self.method not in (*METHODS, "auto", SELF_SUPERVISED, BSPLINE_CONSISTENT):
            raise ValueError(f"unknown method {self.method!r}; choose from auto (the default), {', '.join(METHODS)}, "
                             f"{SELF_SUPERVISED} or {BSPLINE_CONSISTENT} (through-plane)")  # fmt: skip
        one_axis = self.through_plane or sorted(self.scale)[:2] == [1, 1]
        if self.method in (SELF_SUPERVISED, BSPLINE_CONSISTENT) and not one_axis:
            raise ValueError(f"--method {self.method} upscales along one axis only: give --scale through-plane "
                             "(or 1,1,2)")  # fmt: skip
        if self.self_supervised_minutes <= 0:
            raise ValueError(f"the self-supervised budget must be > 0 minutes, not {self.self_supervised_minutes}")
        check_dtype_policy(self.dtype)
        if len(self.scale) != 3 or any(int(s) < 1 for s in self.scale):
            raise ValueError(f"scale must be three positive integers, not {self.scale}")

    def factors_for(self, volume: Volume) -> tuple[int, int, int]:
        if not self.through_plane:
            return tuple(int(s) for s in self.scale)  # type: ignore[return-value]
        spacing = np.asarray(volume.spacing_mm, float)
        if np.ptp(spacing) <= 0.01 * spacing.max():
            mm = "x".join(f"{v:g}" for v in spacing)
            raise ValueError(
                f"{volume.meta.get('source', 'scan')}: --scale through-plane: the voxels are isotropic ({mm} mm), "
                "so no axis is the slice axis; give the factors per axis instead, e.g. --scale 1,1,2 or --scale 2"
            )
        f = [1, 1, 1]
        f[thickest_axis(volume)] = max(self.scale)
        return tuple(f)  # type: ignore[return-value]


@dataclass(frozen=True)
class Degradation:
    """How low-resolution copies are made.

    Attributes:
        scale: integer factor per axis.
        n_variants: low-resolution copies per volume, each with its own random degradation.
        noise_max: Rician noise of up to this fraction of the robust intensity range (0: none).
        blur_max: extra Gaussian blur of up to this many fine voxels before degrading (0: none).
        gaussian_fraction: share of copies made with a Gaussian slice profile instead of k-space
            truncation.
        with_base: also keep the zero-filled k-space base (for generators with skip "sinc").

    The default is the clean k-space acquisition model on the volume's own grid, which is what
    measured best on held-out real abdominal MRI (benchmarks/RESULTS.md).
    """

    scale: tuple[int, int, int] = (2, 2, 2)
    n_variants: int = 1
    noise_max: float = 0.0
    blur_max: float = 0.0
    gaussian_fraction: float = 0.0
    with_base: bool = True


@dataclass(frozen=True)
class TrainConfig(Record):
    """Everything a training run depends on; written into the run folder and the model card.

    `dc_loss`: the pixel losses are taken on the data-consistent output (base + the out-of-band
    part of the network's detail), so the network is trained for what inference keeps and cannot
    spend capacity rewriting the measured band. Loss weights: L1 1.0 carries fidelity; the gradient (edge) loss 0.1 rewards sharp edges
    without inventing texture; the adversarial weight 5e-3 is ESRGAN's, small because the
    relativistic loss gradients are large next to L1 on [0, 1] intensities.
    """

    # generator
    channels: int = 32
    n_blocks: int = 4
    upsample_channels: int = 16
    scale: tuple[int, int, int] = (2, 2, 2)
    skip: str = "sinc"
    # data (defaults: clean k-space pairs on the volume's own grid, see `Degradation`)
    patch_size: int = 24
    batch_size: int = 4
    n_variants: int = 1
    noise_max: float = 0.0
    blur_max: float = 0.0
    gaussian_fraction: float = 0.0
    transpose: bool = True
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
    edge_weight: float = 0.0  # off: an edge loss measured worse on held-out real MRI (a recipe may set it)
    dc_loss: bool = True
    adv_weight: float = 5e-3
    ema_decay: float = 0.999
    val_every: int = 250
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool | None = None
    # wall-time bound of the run in minutes (None: the step counts alone end it)
    minutes: float | None = None
    # without --val: the fraction of the scans (by subject), or of one scan's slices (a slab), held
    # out to validate and pick the best checkpoint
    holdout: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(int(s) for s in self.scale))
        object.__setattr__(self, "hr_scales", tuple(int(s) for s in self.hr_scales))
        if not self.hr_scales or any(s < 1 for s in self.hr_scales):
            raise ValueError(f"hr_scales must be positive integers, not {self.hr_scales}")
        if self.phantom_coarsening < 1:
            raise ValueError(f"phantom_coarsening must be >= 1, not {self.phantom_coarsening}")
        if self.lr_schedule not in ("constant", "cosine", "budget"):
            raise ValueError(f"lr_schedule must be 'constant', 'cosine' or 'budget', not {self.lr_schedule!r}")
        if self.lr_schedule == "budget" and self.minutes is None:
            raise ValueError("lr_schedule 'budget' follows the --minutes budget: give minutes")
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8 low-resolution voxels, not {self.patch_size}")
        if self.pretrain_steps < 0 or self.gan_steps < 0:
            raise ValueError("pretrain_steps and gan_steps must be >= 0")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, not {self.minutes}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must lie in [0, 1), not {self.holdout}")

    @property
    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(
            channels=self.channels,
            n_blocks=self.n_blocks,
            upsample_channels=self.upsample_channels,
            scale=self.scale,
            skip=self.skip,
        )

    @property
    def degradation(self) -> Degradation:
        return Degradation(
            scale=self.scale, n_variants=self.n_variants, noise_max=self.noise_max, blur_max=self.blur_max,
            gaussian_fraction=self.gaussian_fraction, with_base=self.skip == "sinc",
        )  # fmt: skip

    def generator_lr(self, step: int, fraction: float | None = None) -> float:
        """Generator learning rate at `step` (0-based). Stage 1: `lr_g`, constant, cosine-decayed
        to 1% over `pretrain_steps`, or ("budget") a one-cycle over the `minutes` budget: linear
        warm-up over its first 5% (`fraction` of it spent), then cosine to 1%, so that a short
        fine-tune ends on a small rate whatever its step count. Stage 2 (GAN): `lr_g_gan`,
        constant. "constant" and "cosine" are functions of the step alone, so a resumed run
        continues the same schedule."""
        if step >= self.pretrain_steps:
            return self.lr_g_gan
        if self.lr_schedule == "constant":
            return self.lr_g
        if self.lr_schedule == "budget":
            t = min(max(fraction if fraction is not None else step / max(1, self.pretrain_steps), 0.0), 1.0)
            if t < 0.05:
                return self.lr_g * max(t / 0.05, 0.01)
            return self.lr_g * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (t - 0.05) / 0.95)))
        t = step / max(1, self.pretrain_steps)
        return self.lr_g * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: JsonValue) -> TrainConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config must be a mapping of keys to values")
        try:
            return cls.from_dict({**data, **overrides})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
