"""One volume through the generator: intensity scaling, sliding windows with their weights, the
k-space skip and data consistency (`srgan3d.sr.kspace`) on the device and in the precision
`srgan3d.sr.device` chooses, and stage timing.

This is the SR wing's one door: the batch over files (`srgan3d.sr.upscale`), training's
validation, adaptation, the benchmark and the study's radiomics all run the generator through a
`GeneratorEngine`, built from installed weights by `GeneratorEngine.from_weights` or around a
model in memory (training, adaptation, the benchmark) by its constructor. Which method and
weights a run uses is `srgan3d.sr.method_choice`'.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np
import torch
from scipy import ndimage

from srgan3d.sr.config import METHODS
from srgan3d.sr.degrade import upsample_volume
from srgan3d.sr.device import cpu_window_voxels, cuda_window_voxels, resolve_device, use_bf16
from srgan3d.sr.intensity import IntensityScaling
from srgan3d.sr.kspace import data_consistency, out_of_band, sinc_upsample_t
from srgan3d.sr.nets import Generator
from srgan3d.sr.weights import (
    DEFAULT_WEIGHTS,
    WeightsInfo,
    load_generator,
)
from srgan3d.volume import Volume, crop_affine, upscaled_affine

if TYPE_CHECKING:
    from srgan3d.sr.slice_profile import SliceGeometry
    from srgan3d.sr.through_plane import PlaneNet

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Intensities


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


class EngineOptions(TypedDict, total=False):
    """The keyword options of `GeneratorEngine` (see its attributes)."""

    window: Sequence[int] | None
    sw_batch_size: int
    overlap: float
    amp: bool
    max_window_voxels: int | None
    dc: bool
    channels_last: bool | None
    cudnn_benchmark: bool


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
        cls, name_or_path: str | Path = DEFAULT_WEIGHTS, *, device: str | torch.device = "auto",
        **options: Unpack[EngineOptions],
    ) -> GeneratorEngine:
        """Resolve weights (a name or a `.pt` with its card) and the device once, and build the engine.

        `options` are the keyword options of `GeneratorEngine` (window, sw_batch_size, overlap, amp,
        max_window_voxels, dc).
        """
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        model, info = load_generator(name_or_path)
        engine = cls(model, device=dev, **options)
        engine.weights = info
        if not engine.dc and info.card.trained_for_dc:
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

        def predict(x: torch.Tensor, coords: Sequence[Sequence[slice]]) -> torch.Tensor:
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


def box_with_context(volume: Volume, box: Sequence[slice], context: int) -> np.ndarray:
    """The data of `box` with `context` voxels of the scan around it, reflected where the scan
    ends (repeated where the crop is too thin to reflect)."""
    lo = [max(0, sl.start - context) for sl in box]
    hi = [min(n, sl.stop + context) for sl, n in zip(box, volume.shape, strict=True)]
    data = volume.data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    pad = [(context - (sl.start - a), context - (b - sl.stop)) for sl, a, b in zip(box, lo, hi, strict=True)]
    # Reflection needs fewer pad voxels than the axis has; a thin crop at a volume edge repeats.
    reflect = all(p0 < n and p1 < n for (p0, p1), n in zip(pad, data.shape, strict=True))
    return np.pad(data, pad, mode="symmetric") if reflect else np.pad(data, pad, mode="edge")


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
    data = box_with_context(volume, box, context)
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




def upscale_box_through_plane(
    volume: Volume, box: Sequence[slice], *, method: str, weights: str | None = None, factor: int = 2,
    minutes: float = 3.0, profile: str | None = None, thickness_mm: float | None = None, context: int = 8,
    device: str = "cpu",
) -> tuple[Volume, str, tuple[int, int, int]]:  # fmt: skip
    """Through-plane SR of the sub-volume `box` along the scan's slice (thickest) axis: the study's
    way into `srgan3d.sr.through_plane`.

    `method`: "self-supervised" (a network trained on the whole scan's in-plane planes, used where
    its held-out planes beat B-spline + consistency), "bspline-consistent", or "auto" (the
    through-plane `weights` of the scan's protocol where they are given, else bspline-consistent).
    The network or B-spline runs on the box with `context` voxels of the scan around it (reflected
    where the scan ends), with the whole scan's intensity scaling, and the context is cut away.
    Returns the SR box, the method that ran (as the report says it) and the factors."""
    from srgan3d.sr.protocol import teach_axes_of
    from srgan3d.sr.slice_profile import bspline_consistent
    from srgan3d.sr.through_plane import apply_plane_net

    model, note, geometry = _through_plane_model(volume, method=method, weights=weights, factor=factor,
                                                 minutes=minutes, profile=profile, thickness_mm=thickness_mm,
                                                 device=device)  # fmt: skip
    axis = geometry.axis
    factors = [1, 1, 1]
    factors[axis] = factor
    order = [a for a in range(3) if a != axis] + [axis]
    scaling = IntensityScaling.fit(np.asarray(volume.data, dtype=np.float32))
    x = scaling.forward(np.transpose(np.asarray(box_with_context(volume, box, context), dtype=np.float32), order))
    if model is not None:
        y = apply_plane_net(model, x, geometry.profile, teach=teach_axes_of(volume, geometry))
    else:
        y = bspline_consistent(torch.from_numpy(np.ascontiguousarray(x)), geometry.profile).numpy()
    out = np.transpose(scaling.inverse(y), np.argsort(order))
    affine = upscaled_affine(crop_affine(volume.affine, [sl.start - context for sl in box]), factors)
    cut = tuple(slice(context * f, out.shape[k] - context * f) for k, f in enumerate(factors))
    sr = Volume(np.ascontiguousarray(out[cut], dtype=np.float32), crop_affine(affine, [c.start for c in cut]),
                dict(volume.meta))  # fmt: skip
    return sr, f"{note} (through-plane, x{factor} along the slices)", tuple(factors)  # type: ignore[return-value]


def _through_plane_model(
    volume: Volume, *, method: str, weights: str | None, factor: int, minutes: float, profile: str | None,
    thickness_mm: float | None, device: str,
) -> tuple[PlaneNet | None, str, SliceGeometry]:  # fmt: skip
    """(network or None for B-spline + consistency, what runs, the scan's slice geometry)."""
    from srgan3d.sr.config import BSPLINE_CONSISTENT, SELF_SUPERVISED, ThroughPlaneConfig
    from srgan3d.sr.protocol import card_protocol, is_through_plane_weights, scan_geometry, teach_axes_of
    from srgan3d.sr.slice_profile import protocol_mismatch, slices_can_learn
    from srgan3d.sr.through_plane import PlanePairs, fit_plane_net, load_plane_net, scaled_slices_last

    if method not in ("auto", BSPLINE_CONSISTENT, SELF_SUPERVISED):
        raise ValueError(f"through-plane SR of a VOI takes auto, {SELF_SUPERVISED} or {BSPLINE_CONSISTENT}, not {method!r}")
    if method == "auto" and weights is not None and is_through_plane_weights(weights):
        model, info = load_plane_net(weights)
        expected = card_protocol(info)
        geometry = scan_geometry(volume, factor=factor, profile=profile or expected.profile, thickness_mm=thickness_mm)
        diff = protocol_mismatch(expected, geometry.protocol())
        if diff:
            raise ValueError(f"{volume.meta.get('source', 'scan')}: the through-plane weights {info.name} were trained "
                             f"for another protocol: {diff}")  # fmt: skip
        x, _, _ = scaled_slices_last(volume, geometry.axis)
        if not slices_can_learn(x, teach_axes_of(volume, geometry), geometry.profile)[0]:
            return None, f"{BSPLINE_CONSISTENT} (slices smoother than the in-plane anatomy)", geometry
        return model, f"through-plane network {info.name}", geometry
    geometry = scan_geometry(volume, factor=factor, profile=profile or "boxcar", thickness_mm=thickness_mm)
    teach = teach_axes_of(volume, geometry)
    if method != SELF_SUPERVISED or not teach:
        return None, BSPLINE_CONSISTENT, geometry
    cfg = ThroughPlaneConfig(minutes=minutes)
    x, _, _ = scaled_slices_last(volume, geometry.axis)
    if not slices_can_learn(x, teach, geometry.profile)[0]:
        return None, f"{BSPLINE_CONSISTENT} (slices smoother than the in-plane anatomy)", geometry
    pairs = PlanePairs(geometry.profile)
    pairs.add_volume(x, holdout_every=cfg.holdout_every, teach=teach, inplane_factor=geometry.inplane_factor)
    fitted, fit = fit_plane_net(pairs, cfg, device=device)
    if fit.gain_db > cfg.min_gain_db:
        return fitted, f"{SELF_SUPERVISED} ({fit.gain_db:+.2f} dB held out)", geometry
    return None, f"{BSPLINE_CONSISTENT} (the scan's own network: {fit.gain_db:+.2f} dB held out)", geometry
