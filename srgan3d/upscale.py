"""Inference engine: intensity normalisation, sliding-window generator inference, batches of files.

`upscale_volume` super-resolves one `Volume`; `upscale_files` runs a folder batch that skips
finished outputs, reports a bad scan and goes on, and writes `manifest.csv`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from srgan3d.degrade import sinc_upsample, upsample_volume
from srgan3d.nets import Generator, GeneratorConfig
from srgan3d.provenance import versions
from srgan3d.volume import ScanSource, Volume, VolumeError, find_scans, upscaled_affine, write_volume
from srgan3d.weights import DEFAULT_WEIGHTS, WeightsError, WeightsInfo, find_weights, load_generator

log = logging.getLogger(__name__)

METHODS = ("generator", "sinc", "tricubic", "trilinear", "nearest")
MANIFEST_COLUMNS = (
    "input", "output", "status", "error", "method", "scale", "input_shape", "output_shape",
    "input_spacing_mm", "output_spacing_mm", "orientation", "seconds", "device", "weights",
    "weights_sha256", "adapt_steps", "adapt_seconds", "srgan3d", "torch", "monai",
)  # fmt: skip


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


def keep_background(lr: np.ndarray, sr: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Background stays background: a non-negative scan gives a non-negative output, and the
    inside of exactly-zero regions (padding outside the field of view) stays exactly zero."""
    if float(lr.min()) >= 0:
        np.maximum(sr, 0, out=sr)
    zero = lr == 0
    if zero.any():
        inner = ndimage.binary_erosion(zero, iterations=1, border_value=1)
        if inner.any():
            big = inner.repeat(factors[0], 0).repeat(factors[1], 1).repeat(factors[2], 2)
            sr[big] = 0
    return sr


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
    pair. Capped at 192^3 (larger windows gain nothing) and at least 32^3.
    """
    cfg = model.config
    n_sub = math.prod(cfg.scale)
    bytes_per_voxel = 4 * (3 * cfg.channels + 2 * cfg.upsample_channels * n_sub + 4 * n_sub)
    free, _ = torch.cuda.mem_get_info(device)
    return int(min(192**3, max(32**3, fraction * free / bytes_per_voxel)))


class GeneratorEngine:
    """Runs a `Generator` over volumes of any size with MONAI's sliding-window inference.

    Args:
        model: the generator (moved to `device`, eval mode).
        device: where the network runs.
        window: input window per axis; None picks one from `max_window_voxels`.
        sw_batch_size: windows per forward pass.
        overlap: fraction of a window shared with its neighbour (>= 0.25).
        amp: bfloat16 autocast on CUDA.
        max_window_voxels: the window budget when `window` is None (CPU default ~2.1 M input
            voxels, about 4 GB of activations for the default generator).
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
    ) -> None:
        if not 0.25 <= overlap < 1:
            raise ValueError(f"overlap must be in [0.25, 1), not {overlap}")
        self.model = model.to(device).eval()
        self.device = device
        self.window = tuple(window) if window else None
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.amp = amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16  # bf16 keeps fp32's range: no overflow in the residual sums
        self.max_window_voxels = max_window_voxels or (
            cuda_window_voxels(model, device) if device.type == "cuda" else 128**3
        )
        self.scale = model.config.scale

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.amp:
            with torch.autocast("cuda", dtype=self.amp_dtype):
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
        """(X, Y, Z) normalised array -> (sx*X, sy*Y, sz*Z), CUDA memory errors retried smaller."""
        detail = self.run_network(data)
        if self.model.config.skip == "sinc":
            detail += sinc_upsample(data, self.scale)
        return detail

    def run_network(self, data: np.ndarray) -> np.ndarray:
        """The network's own output over the whole volume, by sliding windows."""
        from monai.inferers import sliding_window_inference

        roi = self.window or choose_window(
            data.shape, max_voxels=self.max_window_voxels, overlap=self.overlap
        )
        roi = tuple(min(int(r), n) for r, n in zip(roi, data.shape, strict=True))
        batch = self.sw_batch_size
        x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None, None]
        while True:
            try:
                with torch.inference_mode():
                    out = sliding_window_inference(
                        x.to(self.device),
                        roi_size=roi,
                        sw_batch_size=batch,
                        predictor=self._weighted_predictor(data.shape, roi),
                        overlap=self.overlap,
                        mode="constant",
                        sw_device=self.device,
                        device=torch.device("cpu"),
                        with_coord=True,
                    )
                return (out[0, 0] / out[0, 1]).numpy()
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


def thickest_axis(volume: Volume) -> int:
    return int(np.argmax(volume.spacing_mm))


def upscale_volume(
    volume: Volume,
    *,
    method: str = "generator",
    factors: Sequence[int] = (2, 2, 2),
    engine: GeneratorEngine | None = None,
) -> Volume:
    """Super-resolve one volume; the result's affine follows `upscaled_affine`.

    Args:
        volume: the low-resolution scan.
        method: "generator" (needs `engine`) or an interpolation baseline: "sinc" (zero-filled
            k-space), "tricubic", "trilinear", "nearest".
        factors: integer factor per array axis. With the generator these must be its scale, or
            a permutation of it (a through-plane model on a scan whose slices run along X or Y).
    """
    factors = tuple(int(f) for f in factors)
    if method != "generator":
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        out = upsample_volume(volume, factors, method=method)
        out.data = keep_background(volume.data, out.data, factors)
        return out
    if engine is None:
        raise ValueError("method 'generator' needs a GeneratorEngine")
    scale = tuple(engine.scale)
    # Move axes so that the scan's factors line up with the network's.
    perm = _matching_permutation(factors, scale)
    if perm is None:
        raise ValueError(f"the generator's scale is {scale}; it cannot upscale by {factors}")
    scaling = IntensityScaling.fit(volume.data)
    x = scaling.forward(np.transpose(volume.data, perm))
    y = np.transpose(engine.run(x), np.argsort(perm))
    sr = keep_background(volume.data, scaling.inverse(y), factors)
    return Volume(sr, upscaled_affine(volume.affine, factors), dict(volume.meta))


def _matching_permutation(factors: tuple[int, ...], scale: tuple[int, ...]) -> tuple[int, int, int] | None:
    import itertools

    for perm in itertools.permutations(range(3)):
        if tuple(factors[p] for p in perm) == scale:
            return perm  # type: ignore[return-value]
    return None


# --------------------------------------------------------------------------------------------
# Batches of files


@dataclass(frozen=True)
class UpscaleConfig:
    """Options of `srgan3d upscale`; one field per CLI option.

    Attributes:
        method: "generator", an interpolation baseline (see `upscale_volume`), or "auto": the
            generator when `weights` are installed, else zero-filled k-space ("sinc"), with a
            warning.
        weights: weights name or path for the generator.
        scale: factor per array axis.
        through_plane: upscale by the largest factor along each scan's thickest axis only.
        device: "auto", "cpu" or "cuda[:N]".
        window: input window per axis for the generator (None: chosen from memory).
        sw_batch_size: windows per forward pass.
        overlap: window overlap fraction (>= 0.25).
        amp: mixed precision (bfloat16) on CUDA.
        overwrite: replace existing outputs instead of skipping them.
        suffix: appended to the input's name.
        compress: write .nii.gz (True; gzip level 1, nibabel's fast default) or .nii.
        shard: (K, N): process only the K-th of N interleaved parts of the sorted scan list, so
            that N GPUs or nodes share a cohort; the manifest is `manifest.shard-K-of-N.csv`
            (join them with `merge_manifests`).
        adapt_steps: > 0: fine-tune a copy of the generator on each scan for this many steps
            before upscaling it (internal learning, `srgan3d.train.adapt_generator`). Without
            installed weights it starts from an untrained generator whose detail branch is zero,
            i.e. from zero-filled k-space.
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
    shard: tuple[int, int] | None = None
    adapt_steps: int = 0

    def __post_init__(self) -> None:
        if self.adapt_steps < 0:
            raise ValueError(f"adapt steps must be >= 0, not {self.adapt_steps}")
        if self.shard is not None:
            k, n = self.shard
            if not (n >= 1 and 1 <= k <= n):
                raise ValueError(f"shard must be K/N with 1 <= K <= N, not {k}/{n}")
        if self.method not in (*METHODS, "auto"):
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if len(self.scale) != 3 or any(int(s) < 1 for s in self.scale):
            raise ValueError(f"scale must be three positive integers, not {self.scale}")

    def factors_for(self, volume: Volume) -> tuple[int, int, int]:
        if not self.through_plane:
            return tuple(int(s) for s in self.scale)  # type: ignore[return-value]
        f = [1, 1, 1]
        f[thickest_axis(volume)] = max(self.scale)
        return tuple(f)  # type: ignore[return-value]


@dataclass
class ManifestRow:
    input: str
    output: str = ""
    status: str = ""
    error: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {c: "" for c in MANIFEST_COLUMNS}
        d.update(self.values)
        d.update(input=self.input, output=self.output, status=self.status, error=self.error)
        return d


@dataclass
class BatchResult:
    rows: list[ManifestRow]
    manifest: Path

    @property
    def failed(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.status == "failed"]


def output_path_for(src: ScanSource, outdir: Path, *, suffix: str, compress: bool) -> Path:
    ext = ".nii.gz" if compress else ".nii"
    return outdir / src.relative.parent / f"{src.name}{suffix}{ext}"


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> Path:
    """Write the manifest CSV atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict())
    os.replace(tmp, path)
    return path


def _weights_installed(name: str) -> bool:
    try:
        find_weights(name)
    except WeightsError:
        return False
    return True


def resolve_method(method: str, weights: str) -> str:
    """`method`, with "auto" made "generator" when `weights` are installed and "sinc" otherwise."""
    if method != "auto":
        return method
    return "generator" if _weights_installed(weights) else "sinc"


def _adapt_and_upscale(
    vol: Volume, factors: tuple[int, ...], engine: GeneratorEngine, config: UpscaleConfig
) -> tuple[Volume, dict[str, float]]:
    """Internal learning on this scan, then upscaling with the adapted copy (the shared engine's
    model is left as it was for the next scan)."""
    from srgan3d.train import adapt_generator

    perm = _matching_permutation(factors, tuple(engine.scale))
    if perm is None:
        raise ValueError(f"the generator's scale is {tuple(engine.scale)}; it cannot upscale by {factors}")
    moved = Volume(np.ascontiguousarray(np.transpose(vol.data, perm)), vol.affine, vol.meta)
    adapted, info = adapt_generator(engine.model, moved, steps=config.adapt_steps, device=engine.device)
    original = engine.model
    engine.model = adapted
    try:
        sr = upscale_volume(vol, method="generator", factors=factors, engine=engine)
    finally:
        engine.model = original
    log.info("adapted to %s in %.1f s (loss %.4f -> %.4f)", vol.meta.get("path", "scan"), info["seconds"],
             info["loss_first"], info["loss_last"])  # fmt: skip
    return sr, info


def merge_manifests(outdir: str | Path) -> Path:
    """Join the `manifest.shard-K-of-N.csv` files of `outdir` into `manifest.csv` (atomically).

    Raises if shards are missing or of different N, naming them.
    """
    import re

    outdir = Path(outdir)
    found = {}
    for p in sorted(outdir.glob("manifest.shard-*-of-*.csv")):
        m = re.fullmatch(r"manifest\.shard-(\d+)-of-(\d+)\.csv", p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    if not found:
        raise FileNotFoundError(f"no manifest.shard-K-of-N.csv files in {outdir}")
    ns = {n for _, n in found}
    if len(ns) != 1:
        raise ValueError(
            f"{outdir}: shard manifests of different N: {sorted(p.name for p in found.values())}"
        )
    n = ns.pop()
    missing = [k for k in range(1, n + 1) if (k, n) not in found]
    if missing:
        raise FileNotFoundError(
            f"{outdir}: shard(s) {', '.join(f'{k}/{n}' for k in missing)} have no manifest yet; run them first"
        )
    rows: list[dict[str, str]] = []
    for k in range(1, n + 1):
        with found[(k, n)].open(newline="") as f:
            rows.extend(csv.DictReader(f))
    rows.sort(key=lambda r: r["input"])
    path = outdir / "manifest.csv"
    tmp = path.with_name(".manifest.csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def check_writable(outdir: Path) -> None:
    """Create `outdir` and prove a file can be written there, or raise with the fix."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / f".srgan3d-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"{outdir}: cannot write outputs there ({exc.strerror}); choose another -o folder"
        ) from exc


def _fmt(t: Sequence[float], digits: int = 4) -> str:
    return "x".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in t)


def upscale_files(
    inputs: Sequence[str | Path],
    outdir: str | Path,
    config: UpscaleConfig | None = None,
    *,
    progress: bool = False,
) -> BatchResult:
    """Super-resolve every scan found under `inputs` into `outdir`, mirroring folder structure.

    Finished outputs are skipped unless `config.overwrite`, so an interrupted batch resumes. A scan
    that fails is recorded with its reason and the batch goes on. `manifest.csv` in `outdir` is
    rewritten (atomically) after each scan.

    Raises:
        FileNotFoundError: an input path does not exist, or no scans were found.
        PermissionError: `outdir` cannot be written.
    """
    config = config or UpscaleConfig()
    outdir = Path(outdir)
    sources = find_scans(inputs, exclude=[outdir])
    if not sources:
        raise FileNotFoundError(
            f"no scans found in {', '.join(str(p) for p in inputs)}: expected NIfTI files (.nii, .nii.gz) "
            "or folders of DICOM files"
        )
    check_writable(outdir)
    manifest = outdir / "manifest.csv"
    if config.shard is not None:
        k, n = config.shard
        sources = sources[k - 1 :: n]
        manifest = outdir / f"manifest.shard-{k}-of-{n}.csv"
        log.info("shard %d of %d: %d scans", k, n, len(sources))
    method = resolve_method(config.method, config.weights)
    if config.method == "auto" and method == "sinc":
        log.warning(
            "no generator weights %r installed: using zero-filled k-space interpolation (--method sinc); "
            "pass --weights PATH for your own generator",
            config.weights,
        )
    vers = versions()
    common: dict[str, Any] = {
        "method": method, "srgan3d": vers["srgan3d"], "torch": vers["torch"], "monai": vers["monai"],
    }  # fmt: skip

    engine: GeneratorEngine | None = None
    winfo: WeightsInfo | None = None
    if config.adapt_steps and method != "generator":
        if config.method not in ("auto", "generator"):
            raise ValueError(f"--adapt needs the generator; it cannot adapt --method {config.method}")
        method = "generator"
    if method == "generator":
        device = resolve_device(config.device)
        if config.adapt_steps and not _weights_installed(config.weights):
            model = Generator(GeneratorConfig())  # zero detail branch: starts as zero-filled k-space
            winfo = WeightsInfo("untrained (adapted per scan)", Path("-"), {"sha256": ""})
        else:
            model, winfo = load_generator(config.weights)
        engine = GeneratorEngine(
            model, device=device, window=config.window, sw_batch_size=config.sw_batch_size,
            overlap=config.overlap, amp=config.amp,
        )  # fmt: skip
        common.update(device=str(device), weights=winfo.name, weights_sha256=winfo.sha256)
    else:
        common.update(device="cpu")
    suffix = config.suffix or f"_sr{max(config.scale)}x"
    input_files = {s.path.resolve() for s in sources}

    rows: list[ManifestRow] = []
    todo: list[tuple[ScanSource, Path, ManifestRow]] = []
    for src in sources:
        out = output_path_for(src, outdir, suffix=suffix, compress=config.compress)
        row = ManifestRow(str(src.path), str(out), values=dict(common))
        rows.append(row)
        if out.resolve() in input_files:
            row.status, row.error = "failed", "output path is an input file; choose another -o folder"
        elif out.exists() and not config.overwrite:
            row.status = "skipped"
            row.error = "output exists (use --overwrite to replace it)"
        else:
            todo.append((src, out, row))

    # Reading (and decompressing) the next scan and writing the last one run in background
    # threads while the current one is computed, so the device is not idle between scans; gzip,
    # file I/O and torch release the GIL.
    errors = (VolumeError, FileNotFoundError, ValueError, OSError, RuntimeError, MemoryError)
    bar = tqdm(total=len(todo), desc="upscale", unit="scan", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        reads = [reader.submit(src.read) for src, _, _ in todo[:1]]
        pending: tuple[Future, ManifestRow, float] | None = None

        def finish(job: tuple[Future, ManifestRow, float] | None) -> None:
            if job is None:
                return
            fut, row, t0 = job
            try:
                fut.result()
                row.status = "ok"
            except errors as exc:
                row.status, row.error, row.output = "failed", str(exc), ""
                log.error("%s", exc)
            row.values["seconds"] = f"{time.perf_counter() - t0:.2f}"
            write_manifest(rows, manifest)
            bar.update()

        for i, (src, out, row) in enumerate(todo):
            bar.set_postfix_str(src.name[-30:])
            t0 = time.perf_counter()
            if i + 1 < len(todo):
                reads.append(reader.submit(todo[i + 1][0].read))
            try:
                vol = reads[i].result()
                reads[i] = None  # type: ignore[call-overload] - free the input early
                factors = config.factors_for(vol)
                if config.adapt_steps and engine is not None:
                    sr, adapt_info = _adapt_and_upscale(vol, factors, engine, config)
                    row.values.update(
                        adapt_steps=config.adapt_steps, adapt_seconds=f"{adapt_info['seconds']:.1f}"
                    )
                else:
                    sr = upscale_volume(vol, method=method, factors=factors, engine=engine)
                what = f"srgan3d {method} x{_fmt(factors)}"
                if winfo:
                    what += f" {winfo.name} {winfo.sha256[:12]}"
                row.values.update(
                    scale=_fmt(factors), input_shape=_fmt(vol.shape), output_shape=_fmt(sr.shape),
                    input_spacing_mm=_fmt(vol.spacing_mm), output_spacing_mm=_fmt(sr.spacing_mm),
                    orientation=vol.orientation,
                )  # fmt: skip
                del vol
                finish(pending)
                pending = (writer.submit(write_volume, sr, out, description=what), row, t0)
                del sr
            except errors as exc:
                row.status, row.error, row.output = "failed", str(exc), ""
                row.values["seconds"] = f"{time.perf_counter() - t0:.2f}"
                log.error("%s", exc)
                finish(pending)
                pending = None
                write_manifest(rows, manifest)
                bar.update()
        finish(pending)
    bar.close()
    write_manifest(rows, manifest)
    return BatchResult(rows, manifest)
