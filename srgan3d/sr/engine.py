"""One volume through the generator: intensity scaling, sliding windows, the k-space skip and data
consistency on the device, and the device itself.

This is the SR wing's one door: the batch over files (`srgan3d.sr.upscale`), training's
validation, adaptation, the benchmark and the study's radiomics all run the generator through a
`GeneratorEngine`: built from installed weights by `GeneratorEngine.from_weights`, or around a
model in memory (training, adaptation, the benchmark) by its constructor.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from srgan3d.sr.config import METHODS
from srgan3d.sr.degrade import upsample_volume
from srgan3d.sr.nets import Generator
from srgan3d.sr.weights import (
    DEFAULT_WEIGHTS,
    WeightsError,
    WeightsInfo,
    auto_eligibility,
    auto_weights,
    find_weights,
    load_generator,
)
from srgan3d.volume import Volume, crop_affine, upscaled_affine

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Intensities


@dataclass(frozen=True)
class IntensityScaling:
    """Linear map of a volume's robust foreground range [lo, hi] onto [0, 1], and its inverse."""

    lo: float
    hi: float

    @classmethod
    def fit(cls, data: np.ndarray, *, lower_pct: float = 0.5, upper_pct: float = 99.5) -> IntensityScaling:
        """Percentiles over the foreground: voxels above 5% of the 99.5th percentile of the whole
        volume (MRI air is near zero), or over every voxel when that leaves under 1%."""
        flat = data[np.isfinite(data)].ravel()
        if flat.size > 2_000_000:  # percentiles of a regular subsample are as good, and cheap
            flat = flat[:: flat.size // 1_000_000]
        top = float(np.percentile(flat, 99.5))
        fg = flat[flat > 0.05 * top] if top > 0 else flat
        if fg.size < 0.01 * flat.size:
            fg = flat
        lo, hi = (float(v) for v in np.percentile(fg, [lower_pct, upper_pct]))
        if not hi > lo:
            hi = lo + 1.0
        return cls(lo, hi)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.lo) / (self.hi - self.lo)).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return (y * (self.hi - self.lo) + self.lo).astype(np.float32)


def keep_background(lr: np.ndarray, sr: np.ndarray, factors: Sequence[int]) -> tuple[np.ndarray, int]:
    """Background stays background: a non-negative scan gives a non-negative output, and the
    inside of exactly-zero regions (padding outside the field of view) stays exactly zero.
    Returns the output and how many of its voxels were raised from below zero to zero.

    Below the input's minimum is otherwise allowed: zero-filled k-space (the scanner's own
    interpolation) undershoots beside sharp edges too (Gibbs), and data consistency keeps the
    measured band exactly, undershoot included; clipping it would change the measured band."""
    clipped = 0
    if float(lr.min()) >= 0:
        clipped = int(np.count_nonzero(sr < 0))
        np.maximum(sr, 0, out=sr)
    zero = lr == 0
    if zero.any():
        inner = ndimage.binary_erosion(zero, iterations=1, border_value=1)
        if inner.any():
            big = inner.repeat(factors[0], 0).repeat(factors[1], 1).repeat(factors[2], 2)
            sr[big] = 0
    return sr, clipped


# --------------------------------------------------------------------------------------------
# Sliding window


def window_weights(
    roi: Sequence[int], start: Sequence[int], image: Sequence[int], overlap: float, *, eps: float = 1e-6
) -> torch.Tensor:
    """Blending weights of one window: 1 in its core, `eps` in a halo of floor(roi*overlap/2)
    voxels along each side that faces the inside of the volume.

    A convolution network's output near a window edge is wrong: it sees zero padding where the
    volume goes on. With these weights a voxel takes its value from the windows whose core holds
    it; with the overlap the cores tile the volume, so seams vanish as long as the network's
    effective receptive field fits in the halo. A side flush with the volume's own edge keeps full
    weight, since there the network sees the true border, as whole-volume inference would.
    """
    w = torch.ones(tuple(int(r) for r in roi))
    for axis, (r, s0, n) in enumerate(zip(roi, start, image, strict=True)):
        halo = int(r * overlap / 2)
        if halo == 0:
            continue
        idx = [slice(None)] * len(roi)
        if s0 > 0:
            idx[axis] = slice(0, halo)
            w[tuple(idx)] *= eps
        if s0 + r < n:
            idx[axis] = slice(r - halo, r)
            w[tuple(idx)] *= eps
    return w


def choose_window(shape: Sequence[int], *, max_voxels: int, overlap: float) -> tuple[int, int, int]:
    """The largest window (in input voxels) of at most `max_voxels` that covers `shape` with few
    windows: split the axis with the largest window until the window fits."""
    counts = [1, 1, 1]

    def size(n: int, k: int) -> int:
        if k == 1:
            return n
        # k windows of size r at stride r*(1-overlap) cover r + (k-1)*r*(1-overlap) >= n.
        return min(n, math.ceil(n / (1 + (k - 1) * (1 - overlap))) + 1)

    roi = [size(n, k) for n, k in zip(shape, counts, strict=True)]
    while math.prod(roi) > max_voxels and max(roi) > 8:
        axis = int(np.argmax(roi))
        counts[axis] += 1
        roi[axis] = size(shape[axis], counts[axis])
    return tuple(roi)  # type: ignore[return-value]


def cpu_has_bf16_units(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16).

    Elsewhere bf16 autocast is emulated by oneDNN and far slower than fp32 (one training step of
    the default generator: 64 s in bf16 against 0.8 s in fp32 on an AVX2-only AMD EPYC,
    benchmarks/RESULTS.md), so the engine and training use it only where this says yes.
    `cpuinfo`: the text of /proc/cpuinfo (read when None; an unreadable one, e.g. on macOS, is no).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def use_bf16(device: torch.device, amp: bool) -> bool:
    """bf16 autocast on `device` when `amp` asks for it: always on CUDA, on a CPU only with bf16
    matrix units (`cpu_has_bf16_units`)."""
    if not amp:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _CPU_BF16


_CPU_BF16 = cpu_has_bf16_units()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], not {device!r}")
    return torch.device(device)


def cuda_window_voxels(model: Generator, device: torch.device, *, fraction: float = 0.5) -> int:
    """Input voxels per window that fit in `fraction` of the GPU's free memory.

    Estimate of the activations alive at once per input voxel, in fp32 (bf16 halves it, which is
    the margin): two feature maps of `channels` in the low-resolution trunk plus the sub-pixel
    upsampling's `upsample_channels * prod(scale)` before and after the shuffle, and the output
    pair. At least 32^3; no upper cap, so a clinical volume that fits runs whole, with no window
    and no stitching (320x320x80 with the default generator: 6.2 GB in bf16 on an H100).
    """
    bytes_per_voxel = _window_bytes_per_voxel(model)
    free, total = torch.cuda.mem_get_info(device)
    # A process capped by torch.cuda.set_per_process_memory_fraction sees the cap, not the card.
    cap = torch.cuda.get_per_process_memory_fraction(device) * total - torch.cuda.memory_reserved(device)
    return int(max(32**3, fraction * min(free, cap) / bytes_per_voxel))


def _window_bytes_per_voxel(model: Generator) -> int:
    """Activations alive at once per input voxel, in fp32 (bf16 halves it, which is the margin):
    two feature maps of `channels` in the low-resolution trunk plus the sub-pixel upsampling's
    `upsample_channels * prod(scale)` before and after the shuffle, and the output pair."""
    cfg = model.config
    n_sub = math.prod(cfg.scale)
    return 4 * (3 * cfg.channels + 2 * cfg.upsample_channels * n_sub + 4 * n_sub)


def cpu_window_voxels(model: Generator, *, fraction: float = 0.4) -> int:
    """Input voxels per window that fit in `fraction` of the memory the system has available,
    between 64^3 and 384^3; 128^3 where that cannot be read (not Linux). A clinical volume that
    fits runs whole: no window halos computed twice, nothing to stitch."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 128**3
    return int(min(384**3, max(64**3, fraction * available / _window_bytes_per_voxel(model))))


class StageClock:
    """Seconds per stage of the engine's work, summed over calls; each stage is synchronised with
    the device at both ends, so asynchronous GPU work lands in the stage that queued it. Costs a
    few synchronisations per volume: set `GeneratorEngine.clock` only to measure."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] += time.perf_counter() - t0


_warm: set[str] = set()


class GeneratorEngine:
    """Runs a `Generator` over volumes of any size with MONAI's sliding-window inference.

    Args:
        model: the generator (moved to `device`, eval mode).
        device: where the network runs.
        window: input window per axis; None picks one from `max_window_voxels`.
        sw_batch_size: windows per forward pass.
        overlap: fraction of a window shared with its neighbour (>= 0.25).
        amp: bfloat16 autocast on CUDA, and on CPUs with bf16 matrix units (`use_bf16`); fp32
            elsewhere. `precision` says which the engine uses.
        max_window_voxels: the window budget when `window` is None (CPU: 40% of the available
            memory, `cpu_window_voxels`; CUDA: half the free memory, `cuda_window_voxels`).
        dc: k-space data consistency (`data_consistency`) on the whole stitched output: the
            measured band is the input's own, the network adds only what lies outside it.
        channels_last: run the network in the channels_last_3d memory format; None (default): on
            the CPU (faster there in fp32 and bf16, benchmarks/RESULTS.md), off on CUDA until a
            GPU run measures it.
        cudnn_benchmark: let cuDNN time its algorithms for each new input shape (pays off only
            when many scans share one shape; the first scan of each shape costs seconds).
    Attributes set after construction: `weights` (the weights' record: name, path, card; set by
    `from_weights`) and `clock` (a `StageClock` timing the stages of `run`; None: not timed).
    """

    def __init__(
        self,
        model: Generator,
        *,
        device: torch.device,
        window: Sequence[int] | None = None,
        sw_batch_size: int = 1,
        overlap: float = 0.25,
        amp: bool = True,
        max_window_voxels: int | None = None,
        dc: bool = True,
        channels_last: bool | None = None,
        cudnn_benchmark: bool = False,
    ) -> None:
        if not 0.25 <= overlap < 1:
            raise ValueError(f"overlap must be in [0.25, 1), not {overlap}")
        self.model = model.to(device).eval()
        self.device = device
        self.window = tuple(window) if window else None
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.amp = use_bf16(device, amp)
        self.amp_dtype = torch.bfloat16  # bf16 keeps fp32's range: no overflow in the residual sums
        self.max_window_voxels = max_window_voxels or (
            cuda_window_voxels(model, device) if device.type == "cuda" else cpu_window_voxels(model)
        )
        self.scale = model.config.scale
        self.dc = dc
        self.channels_last = (device.type == "cpu") if channels_last is None else channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.cudnn_benchmark = cudnn_benchmark
        self.weights: WeightsInfo | None = None
        self.clock: StageClock | None = None

    @property
    def precision(self) -> str:
        """"bf16", "fp16" (set by the benchmark only) or "fp32": what the network runs in
        (recorded in the manifest)."""
        if self.amp:
            return "fp16" if self.amp_dtype == torch.float16 else "bf16"
        return "fp32"

    def _stage(self, name: str):
        return self.clock(name) if self.clock is not None else nullcontext()

    def warmup(self) -> None:
        """Pay the first-call costs once per process and device (CUDA context, lazily loaded
        kernels, cuFFT plans, the windowing import) on a small volume, not on the first scan.
        Later calls return at once."""
        key = str(self.device)
        if key in _warm:
            return
        n = 8 * max(self.scale)
        self.run(np.zeros((n, n, n), dtype=np.float32) + 0.5)
        _warm.add(key)

    @classmethod
    def from_weights(
        cls, name_or_path: str | Path = DEFAULT_WEIGHTS, *, device: str | torch.device = "auto", **options: object
    ) -> GeneratorEngine:
        """Resolve weights (a name or a `.pt` with its card) and the device once, and build the engine.

        `options` are the keyword options of `GeneratorEngine` (window, sw_batch_size, overlap, amp,
        max_window_voxels, dc).
        """
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        model, info = load_generator(name_or_path)
        engine = cls(model, device=dev, **options)  # type: ignore[arg-type]
        engine.weights = info
        if not engine.dc and info.card.get("recipe", {}).get("dc_loss"):
            log.warning(
                "%s was trained for data-consistent output; without it (--no-dc) its unconstrained "
                "in-band part is added too, which measured worse than zero-filled k-space",
                info.name,
            )
        return engine

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with self._stage("network"):
            return self._forward_raw(x)

    def _forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        if self.amp:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                return self.model(x).float()
        return self.model(x)

    def _weighted_predictor(self, image: Sequence[int], roi: Sequence[int]):
        """A MONAI predictor that returns [output x weight, weight] per window.

        MONAI blends with one weight map for every window; ours differ by where a window sits
        (see `window_weights`). Stitching both channels with constant weights and dividing them
        gives the exact per-window weighted average.
        """
        scale = self.scale

        def predict(x: torch.Tensor, coords: list) -> torch.Tensor:
            out = self._forward(x)
            weights = []
            for c in coords:
                start = [sl.start for sl in c[2:]]
                w = window_weights(roi, start, image, self.overlap).to(out.device)
                for axis, s in enumerate(scale):
                    w = w.repeat_interleave(s, dim=axis)
                weights.append(w)
            w = torch.stack(weights)[:, None]
            return torch.cat([out * w, w], dim=1)

        return predict

    def run(self, data: np.ndarray) -> np.ndarray:
        """(X, Y, Z) normalised array -> (sx*X, sy*Y, sz*Z), CUDA memory errors retried smaller.

        Everything stays on the device: the windows are stitched there, the zero-filled k-space
        base and the data-consistency projection use torch.fft there, and one copy comes back.
        """
        with self._stage("to_device"):
            x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).to(self.device)
        cudnn_before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            with torch.inference_mode():
                out = self.run_network(x)
                with self._stage("kspace"):
                    if self.model.config.skip == "sinc":
                        if self.dc:  # base + out-of-band detail == the projection of base + detail
                            out = sinc_upsample_t(x, self.scale) + out_of_band(out, self.scale)
                        else:
                            out = out + sinc_upsample_t(x, self.scale)
                    elif self.dc:
                        out = data_consistency(out, x, self.scale)
        finally:
            torch.backends.cudnn.benchmark = cudnn_before
        with self._stage("copy_back"):
            if out.device.type == "cuda":  # one copy back, into pinned memory (no staging buffer)
                host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
                host.copy_(out)
                return host.numpy()
            return out.numpy()

    def run_network(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The network's own output over the whole (X, Y, Z) volume by sliding windows, stitched on
        the network's device."""
        from monai.inferers import sliding_window_inference

        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        shape = tuple(x.shape)
        roi = self.window or choose_window(shape, max_voxels=self.max_window_voxels, overlap=self.overlap)
        roi = tuple(min(int(r), n) for r, n in zip(roi, shape, strict=True))
        batch = self.sw_batch_size
        x = x.to(self.device)[None, None]
        while True:
            try:
                if roi == shape:  # the whole volume in one pass: no windows, nothing to stitch
                    with torch.inference_mode(), self._stage("network_stitch"):
                        return self._forward(x)[0, 0]
                with torch.inference_mode(), self._stage("network_stitch"):
                    out = sliding_window_inference(
                        x,
                        roi_size=roi,
                        sw_batch_size=batch,
                        predictor=self._weighted_predictor(shape, roi),
                        overlap=self.overlap,
                        mode="constant",
                        sw_device=self.device,
                        device=self.device,
                        with_coord=True,
                    )
                assert isinstance(out, torch.Tensor)
                return out[0, 0] / out[0, 1]
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch > 1:
                    batch = max(1, batch // 2)
                elif max(roi) > 16:
                    roi = tuple(max(16, int(r * 0.75)) if r == max(roi) else r for r in roi)
                else:
                    raise
                log.warning("CUDA out of memory: retrying with window %s and batch %d", roi, batch)


# --------------------------------------------------------------------------------------------
# One volume


def upscale_volume(
    volume: Volume,
    *,
    method: str = "generator",
    factors: Sequence[int] = (2, 2, 2),
    engine: GeneratorEngine | None = None,
    scaling: IntensityScaling | None = None,
) -> Volume:
    """Super-resolve one volume; the result's affine follows `upscaled_affine`.

    Args:
        volume: the low-resolution scan.
        method: "generator" (needs `engine`) or an interpolation baseline: "sinc" (zero-filled
            k-space), "tricubic", "trilinear", "nearest".
        factors: integer factor per array axis. With the generator these must be its scale, or
            a permutation of it (a through-plane model on a scan whose slices run along X or Y).
        scaling: the generator's intensity normalisation (None: fitted on `volume`; a crop
            passes its whole scan's, so that it is normalised as the whole scan would be).
    """
    factors = tuple(int(f) for f in factors)
    if method != "generator":
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        out = upsample_volume(volume, factors, method=method)
        out.data, clipped = keep_background(volume.data, out.data, factors)
        out.meta["clipped_voxels"] = clipped
        return out
    if engine is None:
        raise ValueError("method 'generator' needs a GeneratorEngine")
    perm = axes_for_generator(factors, tuple(engine.scale))
    with engine._stage("normalise"):
        scaling = scaling or IntensityScaling.fit(volume.data)
        x = scaling.forward(np.transpose(volume.data, perm))
    y = engine.run(x)
    with engine._stage("denormalise"):
        sr, clipped = keep_background(volume.data, scaling.inverse(np.transpose(y, np.argsort(perm))), factors)
    return Volume(sr, upscaled_affine(volume.affine, factors), {**volume.meta, "clipped_voxels": clipped})


def upscale_box(
    volume: Volume,
    box: Sequence[slice],
    *,
    method: str = "generator",
    factors: Sequence[int] = (2, 2, 2),
    engine: GeneratorEngine | None = None,
    context: int = 8,
) -> Volume:
    """Super-resolve the sub-volume `box` of `volume` without wrap-around at its edges.

    The k-space skip and data consistency see their input as periodic: a bare crop would ring
    along its faces (the far face's intensities wrap onto the near one). The crop is taken with
    `context` voxels of the real image around it (reflected where the volume ends, so no face is a
    jump), normalised with the whole scan's intensity scaling, super-resolved, and that margin is
    cut away again. The result lies on the SR grid of the crop, with the affine `upscaled_affine`
    gives the crop.
    """
    factors = tuple(int(f) for f in factors)
    lo = [max(0, sl.start - context) for sl in box]
    hi = [min(n, sl.stop + context) for sl, n in zip(box, volume.shape, strict=True)]
    data = volume.data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    pad = [(context - (sl.start - a), context - (b - sl.stop)) for sl, a, b in zip(box, lo, hi, strict=True)]
    # Reflection needs fewer pad voxels than the axis has; a thin crop at a volume edge repeats.
    reflect = all(p0 < n and p1 < n for (p0, p1), n in zip(pad, data.shape, strict=True))
    data = np.pad(data, pad, mode="symmetric") if reflect else np.pad(data, pad, mode="edge")
    affine = crop_affine(volume.affine, [sl.start - context for sl in box])
    scaling = IntensityScaling.fit(volume.data) if method == "generator" else None
    sr = upscale_volume(Volume(np.ascontiguousarray(data), affine, dict(volume.meta)),
                        method=method, factors=factors, engine=engine, scaling=scaling)  # fmt: skip
    cut = tuple(slice(context * f, sr.shape[k] - context * f) for k, f in enumerate(factors))
    return Volume(np.ascontiguousarray(sr.data[cut]), crop_affine(sr.affine, [c.start for c in cut]), sr.meta)


def axes_for_generator(factors: tuple[int, ...], scale: tuple[int, ...]) -> tuple[int, int, int]:
    """The axis order that lines the scan's `factors` up with the generator's `scale`; the one
    guard that refuses factors the generator cannot give."""
    perm = matching_permutation(factors, scale)
    if perm is None:
        raise ValueError(f"the generator's scale is {scale}; it cannot upscale by {factors}")
    return perm


def matching_permutation(factors: tuple[int, ...], scale: tuple[int, ...]) -> tuple[int, int, int] | None:
    for perm in itertools.permutations(range(3)):
        if tuple(factors[p] for p in perm) == scale:
            return perm  # type: ignore[return-value]
    return None


def resolve_method(method: str, weights: str | Path = DEFAULT_WEIGHTS) -> str:
    """`method`, with "auto" made "generator" only when `weights` are installed *and* their model
    card records a gain over zero-filled k-space on held-out real abdominal MRI
    (`srgan3d.sr.weights.auto_eligibility`); otherwise "sinc", and the reason is logged once.

    Raises:
        WeightsError: `weights` other than the shipped default name cannot be found or have no
            model card: weights a user named must exist, so a typo never turns into a silent
            fall-back to zero-filled k-space.
    """
    if method != "auto":
        return method
    try:
        info = find_weights(weights)
    except WeightsError:
        if str(weights) != DEFAULT_WEIGHTS:
            raise
        _say_once(f"no generator weights {str(weights)!r} installed: using zero-filled k-space (--method sinc)")
        return "sinc"
    ok, why = auto_eligibility(info)
    if not ok:
        _say_once(f"--method auto uses zero-filled k-space (sinc), not {info.name}: {why}")
        return "sinc"
    return "generator"


def resolve_method_and_weights(method: str, weights: str | Path = DEFAULT_WEIGHTS) -> tuple[str, str | Path]:
    """`resolve_method`, with "auto" on the shipped default also choosing between the fidelity
    model and its GAN companion (`srgan3d.sr.weights.auto_weights`). Returns (method, weights)."""
    chosen = auto_weights(weights) if method == "auto" else weights
    return resolve_method(method, chosen), chosen


_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


# --------------------------------------------------------------------------------------------
# k-space on the device (torch.fft): the same grid convention as `srgan3d.sr.degrade`


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
