"""`srgan3d benchmark`: throughput and memory of the upscale engine, measured on this machine.

For one clinical-size volume (default LR 320x320x80 -> 640x640x160) it measures:

- the first call in the process (cold: CUDA context, kernels, cuFFT plans), before anything else;
- the device's matrix-multiply peak (fp32 on CPU; fp32, TF32 and bf16 on CUDA), the roofline;
- the generator over a sweep of window sizes and window batch sizes: seconds of compute (median
  of repeats after an untimed warm-up run of the same window shape, CUDA synchronised), LR and HR
  voxels per second, peak memory (CUDA: `torch.cuda.max_memory_allocated`; CPU: peak RSS of the
  process), the generator's FLOPs per output voxel and the achieved TFLOP/s of useful work
  (window halos not counted) as a fraction of the measured peak;
- on CUDA also fp32 vs TF32 vs bf16/fp16 autocast, `torch.compile` on/off (its compile time
  reported apart), `channels_last_3d` and cuDNN benchmark mode, at the default window;
- the stages of one warm volume with the default settings (read .nii.gz / .nii, normalise, to
  device, network, stitch, k-space skip + data consistency, copy back, denormalise, write
  .nii.gz / .nii), each synchronised, so a regression shows where it is;
- end to end through `upscale_files`, cold and warm, into .nii.gz and .nii;
- a folder of N scans through `upscale_files` (CUDA default 20): wall time and the fraction of it
  the device was busy (synchronised engine stages / wall);
- trilinear interpolation of the same volume, the floor a user compares against.

Weights do not change the arithmetic: an untrained generator of the default architecture is
timed unless installed weights are asked for.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from srgan3d.io import read_volume, write_volume
from srgan3d.provenance import versions
from srgan3d.serialisation import Record
from srgan3d.sr.device import resolve_device, use_bf16
from srgan3d.sr.engine import GeneratorEngine, StageClock, choose_window, upscale_volume
from srgan3d.sr.nets import Generator, GeneratorConfig, flops_per_input_voxel
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.volume import Volume

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class BenchmarkConfig(Record):
    """Options of `srgan3d benchmark`; one per CLI option.

    Attributes:
        shape: LR input shape.
        device: "auto", "cpu" or "cuda[:N]".
        windows: input window edges to sweep (None: the engine's automatic choice only on CPU;
            64, 96, 128 and automatic on CUDA).
        batches: window batch sizes to sweep (None: 1 on CPU; 1, 2, 4 on CUDA).
        repeats: timed repeats per setting (after one warm-up run on CUDA).
        end_to_end: also time read -> upscale -> write through `upscale_files`, and the stages.
        weights: installed weights to time instead of an untrained default generator.
        folder: scans of `folder_shape` in the folder run (None: 20 on CUDA, none on CPU).
        folder_shape: shape of the folder run's scans (None: `shape`).
        memory_gb: on CUDA, cap this process's GPU memory (`set_per_process_memory_fraction`) to
            show that a size fits a smaller card.
    """

    shape: tuple[int, int, int] = (320, 320, 80)
    device: str = "auto"
    windows: tuple[int, ...] | None = None
    batches: tuple[int, ...] | None = None
    repeats: int = 3
    end_to_end: bool = True
    weights: str | None = None
    folder: int | None = None
    folder_shape: tuple[int, int, int] | None = None
    memory_gb: float | None = None

    @classmethod
    def quick(cls) -> BenchmarkConfig:
        """A CPU smoke run of a few seconds (used by the tests)."""
        return cls(shape=(40, 40, 16), device="cpu", windows=(24,), batches=(1, 2), repeats=1, folder=2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], _T], device: torch.device, repeats: int, *, warmup: bool) -> float:
    if warmup:
        fn()
        _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, *, tf32: bool = False) -> float:
    """Measured dense matmul throughput (TFLOP/s) of square products on `device`."""
    n = 4096 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        reps = 2 if device.type == "cpu" else 20
        sec = _median_seconds(lambda: [a @ b for _ in range(reps)], device, 3, warmup=True) / reps
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n**3 / sec / 1e12


def test_volume(shape: Sequence[int], *, seed: int = 0) -> Volume:
    """A smooth random volume with scanner-like intensities and a 1.5 x 1.5 x 3 mm grid."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random(tuple(shape), dtype=np.float32), 2) * 1000
    return Volume(data.astype(np.float32), np.diag([1.5, 1.5, 3.0, 1.0]), {})


def _model(config: BenchmarkConfig) -> Generator:
    if config.weights:
        from srgan3d.sr.weights import load_generator

        return load_generator(config.weights)[0]
    torch.manual_seed(0)
    model = Generator(GeneratorConfig())
    torch.nn.init.normal_(model.tail.weight, std=0.01)  # a non-trivial output, like trained weights
    return model


@dataclass(frozen=True)
class BenchSetting(Record):
    """One setting of the sweep: the engine's window (0: whole volume or from memory) and batch,
    precision, torch.compile, memory format and cuDNN autotuning."""

    window: int
    batch: int
    precision: str  # fp32, tf32, bf16, fp16
    compile: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False


@dataclass
class BenchRow(Record):
    """One measured row: the setting (its window as run, per axis), the untimed warm-up, the
    median compute time and peak memory, the throughput and the fraction of the matmul peak; or
    the error that stopped it (CUDA out of memory)."""

    setting: BenchSetting
    window: list[int]
    warmup_s: float | None = None
    compute_s: float | None = None
    peak_memory_gb: float | None = None
    lr_voxels_per_s: float | None = None
    hr_voxels_per_s: float | None = None
    achieved_tflops: float | None = None
    fraction_of_peak: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as benchmark.json holds it: the setting's fields beside the measurements (the
        ones not taken left out)."""
        d = {**self.setting.to_dict(), **super().to_dict()}
        del d["setting"]
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchRow:
        """The row from benchmark.json. Its "window" is the window as run, so the setting's own
        (0: the engine's choice) reads back as 0."""
        names = {f.name for f in fields(BenchSetting)} - {"window"}
        setting = {"window": 0, **{k: v for k, v in d.items() if k in names}}
        return super().from_dict({"setting": setting, **{k: v for k, v in d.items() if k not in names}})


@dataclass(frozen=True)
class FolderRun(Record):
    """A folder of scans through `upscale_files`: wall time and how busy the device was."""

    scans: int
    shape: tuple[int, ...]
    ok: int
    wall_s: float
    per_scan_s: float
    device_busy_s: float
    device_busy_fraction: float
    stages_s: dict[str, float]


@dataclass(frozen=True)
class BenchmarkResult(Record):
    """What `srgan3d benchmark` measured (benchmark.json is its `to_dict()`, `table` its markdown).

    `end_to_end` and `stages_s` are seconds (and bytes, fractions) by measurement name, e.g.
    "warm.nii.gz", "read.nii"; `end_to_end["precision"]` names the precision of the default run."""

    date: str
    device: str
    torch_threads: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    generator: GeneratorConfig
    flops_per_output_voxel: float
    matmul_peak_tflops: dict[str, float]
    first_call_s: float
    rows: tuple[BenchRow, ...]
    best: BenchRow
    trilinear_s: float
    stages_s: dict[str, float] | None
    end_to_end: dict[str, float | str] | None
    folder: FolderRun | None
    config: BenchmarkConfig
    versions: dict[str, str]
    table: str = ""


def _settings(windows: Sequence[int], batches: Sequence[int], cuda: bool) -> list[BenchSetting]:
    """The sweep: the default setting of the device over windows and batches, then one change at a
    time. The CPU default is what `srgan3d upscale` uses there: bf16 with bf16 matrix units
    (fp32 otherwise) and channels_last_3d."""
    cpu_precision = "bf16" if use_bf16(torch.device("cpu"), True) else "fp32"
    base = BenchSetting(window=0, batch=1, precision="bf16" if cuda else cpu_precision, channels_last=not cuda)
    settings = [replace(base, window=w, batch=b) for w in windows for b in batches]
    if not cuda:
        auto = replace(base, window=windows[0], batch=batches[0])
        settings.append(replace(auto, channels_last=False))
        if cpu_precision == "bf16":
            settings.append(replace(auto, precision="fp32"))
    if cuda:
        auto = replace(base, window=0, batch=1)
        settings += [replace(auto, precision=p) for p in ("fp32", "tf32", "fp16")]
        settings += [replace(auto, compile=True), replace(auto, channels_last=True), replace(auto, cudnn_benchmark=True)]
    return settings


def _time_setting(
    s: BenchSetting, model: Generator, x: np.ndarray, config: BenchmarkConfig, device: torch.device
) -> BenchRow:
    """One row of the sweep: the network over `x` (windows and stitching included)."""
    cuda = device.type == "cuda"
    engine = GeneratorEngine(
        model, device=device, amp=s.precision in ("bf16", "fp16"), channels_last=s.channels_last,
        cudnn_benchmark=s.cudnn_benchmark, sw_batch_size=s.batch,
    )  # fmt: skip
    if s.precision == "fp16":
        engine.amp_dtype = torch.float16
    if s.window:
        engine.window = tuple(min(s.window, n) for n in config.shape)
    window = engine.window or choose_window(config.shape, max_voxels=engine.max_window_voxels, overlap=engine.overlap)
    window = tuple(min(int(w), n) for w, n in zip(window, config.shape, strict=True))
    row = BenchRow(setting=s, window=list(window))
    eager = engine.model
    tf32_before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = s.precision == "tf32"
    cudnn_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = s.cudnn_benchmark
    try:
        if s.compile:
            engine.model = torch.compile(engine.model, dynamic=False)  # type: ignore[assignment]
        # Untimed warm-up through the same path (windows of the timed shape, stitched, or the
        # whole volume): kernels, autotuning, compilation and the windowing import are first-call
        # costs, kept out of every setting's median (reported apart).
        crop = tuple(n if w == n else min(n, w + w // 2) for w, n in zip(window, config.shape, strict=True))
        engine.window = window
        t0 = time.perf_counter()
        engine.run_network(np.ascontiguousarray(x[: crop[0], : crop[1], : crop[2]]))
        _sync(device)
        row.warmup_s = time.perf_counter() - t0
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        sec = _median_seconds(functools.partial(engine.run_network, x), device, config.repeats, warmup=False)
    except torch.OutOfMemoryError:
        row.error = "CUDA out of memory"
        return row
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_before
        torch.backends.cudnn.benchmark = cudnn_before
        engine.model = eager
    row.compute_s = sec
    row.peak_memory_gb = torch.cuda.max_memory_allocated(device) / 1024**3 if cuda else _peak_rss_gb()
    return row


def _stages(engine: GeneratorEngine, vol: Volume, tmp: Path) -> dict[str, float]:
    """Seconds per stage of one warm volume with `engine`'s settings."""
    out: dict[str, float] = {}
    for ext in (".nii.gz", ".nii"):
        src = write_volume(vol, tmp / f"stage_in{ext}")
        t0 = time.perf_counter()
        read_volume(src)
        out[f"read{ext}"] = time.perf_counter() - t0
    engine.warmup()
    upscale_volume(vol, engine=engine)  # warm at this shape
    engine.clock = clock = StageClock(engine.device)
    try:
        sr = upscale_volume(vol, engine=engine)
    finally:
        engine.clock = None
    sec = dict(clock.seconds)
    both = sec.pop("network_stitch")
    out.update(sec)
    out["stitch"] = max(0.0, both - sec["network"])
    out["engine_total"] = sum(v for k, v in out.items() if not k.startswith("read"))
    for ext in (".nii.gz", ".nii"):
        t0 = time.perf_counter()
        write_volume(sr, tmp / f"stage_out{ext}")
        out[f"write{ext}"] = time.perf_counter() - t0
    return out


def _end_to_end(vol: Volume, weights: str, config: BenchmarkConfig, tmp: Path) -> dict[str, float | str]:
    """`upscale_files` on one scan: cold (first in this process for .nii.gz) and warm, .nii.gz and .nii."""
    e2e: dict[str, float | str] = {}
    for ext in (".nii.gz", ".nii"):
        src = write_volume(vol, tmp / f"e2e_in{ext[4:] or 'nii'}" / f"bench{ext}")
        ucfg = UpscaleConfig(
            method="generator", weights=weights, device=config.device, overwrite=True, compress=ext == ".nii.gz"
        )
        for run in ("first", "warm"):
            t0 = time.perf_counter()
            res = upscale_files([src], tmp / f"e2e_out{ext}", ucfg)
            sec = time.perf_counter() - t0
            row = res.rows[0]
            if row.status != "ok":
                raise RuntimeError(f"end-to-end run failed: {row.error}")
            e2e[f"{run}{ext}"] = sec
        e2e[f"output_bytes{ext}"] = Path(row.output).stat().st_size
    e2e["peak_rss_gb"] = _peak_rss_gb()
    e2e["seconds"] = e2e["warm.nii.gz"]
    return e2e


def _folder(n: int, shape: Sequence[int], weights: str, config: BenchmarkConfig, tmp: Path) -> FolderRun:
    """N scans through `upscale_files`: wall time and the device-busy fraction."""
    indir = tmp / "folder_in"
    for i in range(n):
        write_volume(test_volume(shape, seed=i + 1), indir / f"scan{i:02d}.nii.gz")
    device = resolve_device(config.device)
    clock = StageClock(device)
    ucfg = UpscaleConfig(method="generator", weights=weights, device=config.device, overwrite=True)
    t0 = time.perf_counter()
    res = upscale_files([indir], tmp / "folder_out", ucfg, clock=clock)
    wall = time.perf_counter() - t0
    busy = sum(clock.seconds[k] for k in ("to_device", "network_stitch", "kspace", "copy_back"))
    return FolderRun(scans=n, shape=tuple(shape), ok=sum(r.status == "ok" for r in res.rows), wall_s=wall,
                     per_scan_s=wall / n, device_busy_s=busy, device_busy_fraction=busy / wall,
                     stages_s=dict(clock.seconds))  # fmt: skip


def run_benchmark(config: BenchmarkConfig, *, progress: bool = False) -> BenchmarkResult:
    """Run the measurements; the result holds the sweep's rows and its markdown `table`."""
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    if cuda and config.memory_gb:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, config.memory_gb * 1024**3 / total), device)
    vol = test_volume(config.shape)
    model = _model(config)
    gcfg = model.config
    scale = tuple(gcfg.scale)
    x = (vol.data - vol.data.mean()) / (vol.data.std() + 1e-6)
    # Cold: the first volume this process sends through an engine, before anything else warms up.
    t0 = time.perf_counter()
    GeneratorEngine(model, device=device).run(x)
    _sync(device)
    first_call_s = time.perf_counter() - t0
    peaks = {"fp32": matmul_peak_tflops(device, torch.float32)}
    if cuda:
        peaks["tf32"] = matmul_peak_tflops(device, torch.float32, tf32=True)
    if use_bf16(device, True):  # elsewhere bf16 is emulated: no peak worth the name
        peaks["bf16"] = matmul_peak_tflops(device, torch.bfloat16)
    rows = _sweep(model, x, config, device, peaks, progress=progress)
    stages, e2e, folder = _runs_through_files(model, vol, config, device, peaks)
    best = min((r for r in rows if r.compute_s is not None), key=lambda r: r.compute_s or math.inf)
    result = BenchmarkResult(
        date=date.today().isoformat(),
        device=torch.cuda.get_device_name(device) if cuda else f"cpu: {platform.processor() or platform.machine()}",
        torch_threads=torch.get_num_threads(), input_shape=tuple(config.shape),
        output_shape=tuple(n * s for n, s in zip(config.shape, scale, strict=True)), generator=gcfg,
        flops_per_output_voxel=flops_per_input_voxel(gcfg) / int(np.prod(scale)), matmul_peak_tflops=peaks,
        first_call_s=first_call_s, rows=tuple(rows), best=best,
        trilinear_s=_trilinear_seconds(vol, scale, device, config.repeats), stages_s=stages, end_to_end=e2e,
        folder=folder, config=config, versions=versions(),
    )  # fmt: skip
    return replace(result, table=markdown_table(result))


def _sweep(
    model: Generator, x: np.ndarray, config: BenchmarkConfig, device: torch.device, peaks: dict[str, float], *,
    progress: bool,
) -> list[BenchRow]:  # fmt: skip
    """Every setting of the sweep timed, with its throughput and fraction of the matmul peak."""
    from tqdm.auto import tqdm

    cuda = device.type == "cuda"
    n_lr = int(np.prod(config.shape))
    n_hr = n_lr * int(np.prod(model.config.scale))
    flops_lr = flops_per_input_voxel(model.config)
    windows = config.windows or ((64, 96, 128, 0) if cuda else (0,))
    batches = config.batches or ((1, 2, 4) if cuda else (1,))
    rows = []
    for s in tqdm(_settings(windows, batches, cuda), desc="benchmark", unit="setting", disable=not progress):
        row = _time_setting(s, model, x, config, device)
        if row.compute_s is not None:
            sec = row.compute_s
            achieved = flops_lr * n_lr / sec / 1e12
            key = s.precision if s.precision in peaks else ("bf16" if s.precision == "fp16" else "fp32")
            row.lr_voxels_per_s, row.hr_voxels_per_s = n_lr / sec, n_hr / sec
            row.achieved_tflops, row.fraction_of_peak = achieved, achieved / peaks[key]
        rows.append(row)
    return rows


def _trilinear_seconds(vol: Volume, scale: tuple[int, ...], device: torch.device, repeats: int) -> float:
    """The floor: trilinear interpolation of the same volume (scipy on CPU, torch on CUDA)."""
    if device.type == "cuda":
        t = torch.from_numpy(vol.data).to(device)[None, None]
        return _median_seconds(
            lambda: torch.nn.functional.interpolate(t, scale_factor=scale, mode="trilinear", align_corners=False),
            device, repeats, warmup=True,
        )  # fmt: skip
    from srgan3d.sr.degrade import spline_upsample

    return _median_seconds(lambda: spline_upsample(vol.data, scale, order=1), device, 1, warmup=False)


def _runs_through_files(
    model: Generator, vol: Volume, config: BenchmarkConfig, device: torch.device, peaks: dict[str, float]
) -> tuple[dict[str, float] | None, dict[str, float | str] | None, FolderRun | None]:
    """The stages of one warm volume, `upscale_files` end to end on one scan, and a folder of
    scans (each when the config asks for it)."""
    cuda = device.type == "cuda"
    e2e: dict[str, float | str] | None = None
    stages: dict[str, float] | None = None
    folder: FolderRun | None = None
    n_folder = config.folder if config.folder is not None else (20 if cuda else 0)
    if not (config.end_to_end or n_folder):
        return stages, e2e, folder
    flops = flops_per_input_voxel(model.config) * int(np.prod(config.shape))
    with tempfile.TemporaryDirectory(prefix="srgan3d-bench-") as tmpdir:
        tmp = Path(tmpdir)
        name = config.weights
        if name is None:
            from srgan3d.sr.weights import save_weights

            name = str(save_weights(model, tmp / "weights" / "bench.pt", card={"description": "untrained, for timing"}))
        if config.end_to_end:
            default_engine = GeneratorEngine(model, device=device)
            stages = _stages(default_engine, vol, tmp)
            e2e = _end_to_end(vol, name, config, tmp)
            # The whole job (read, network, k-space, write) against the matmul peak of the
            # precision `srgan3d upscale` runs in: how close to the hardware a user gets.
            peak = peaks.get(default_engine.precision, peaks["fp32"])
            e2e["precision"] = default_engine.precision
            e2e["generator_tflop"] = flops / 1e12
            for k in ("first.nii.gz", "warm.nii.gz"):
                e2e[f"fraction_of_peak[{k}]"] = flops / float(e2e[k]) / 1e12 / peak
        if n_folder:
            folder = _folder(n_folder, config.folder_shape or config.shape, name, config, tmp)
    return stages, e2e, folder


def markdown_table(result: BenchmarkResult) -> str:
    lines = [
        f"Input {result.input_shape} -> {result.output_shape} on {result.device} "
        f"({result.torch_threads} threads), {result.date}; generator "
        f"{result.flops_per_output_voxel / 1e3:.1f} kFLOP per output voxel; matmul peak "
        + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in result.matmul_peak_tflops.items()),
        "",
        f"First volume in a fresh process (cold): {result.first_call_s:.2f} s.",
        "",
        "| window | batch | precision | compile | channels_last | cudnn bench | warm-up s | compute s | M HR vox/s | peak GB | TFLOP/s | of peak |",
        "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.rows:
        s = r.setting
        head = f"| {'x'.join(map(str, r.window))} | {s.batch} | {s.precision} | {s.compile} | {s.channels_last} | {s.cudnn_benchmark} |"
        if r.error is not None:
            lines.append(f"{head} {r.error} ||||||")
            continue
        assert r.hr_voxels_per_s is not None and r.fraction_of_peak is not None
        lines.append(
            f"{head} {r.warmup_s:.3f} | {r.compute_s:.3f} | {r.hr_voxels_per_s / 1e6:.2f} | "
            f"{r.peak_memory_gb:.2f} | {r.achieved_tflops:.3f} | {r.fraction_of_peak:.1%} |"
        )
    lines.append("")
    lines.append(f"Trilinear interpolation of the same volume: {result.trilinear_s:.3f} s.")
    if result.stages_s:
        st = result.stages_s
        order = ["read.nii.gz", "read.nii", "normalise", "to_device", "network", "stitch", "kspace",
                 "copy_back", "denormalise", "engine_total", "write.nii.gz", "write.nii"]  # fmt: skip
        lines += ["", "Stages of one warm volume (default settings, each synchronised):", "",
                  "| " + " | ".join(order) + " |", "|" + "---:|" * len(order),
                  "| " + " | ".join(f"{st.get(k, 0.0):.3f}" for k in order) + " |"]  # fmt: skip
    if result.end_to_end:
        e = result.end_to_end
        lines.append("")
        lines.append(
            "End to end through `upscale_files` (read, normalise, upscale, write): "
            f".nii.gz first {e['first.nii.gz']:.2f} s, warm {e['warm.nii.gz']:.2f} s "
            f"({float(e['output_bytes.nii.gz']) / 1e6:.0f} MB); .nii first {e['first.nii']:.2f} s, warm "
            f"{e['warm.nii']:.2f} s."
        )
        if "generator_tflop" in e:
            lines.append(
                f"The generator's {e['generator_tflop']:.2f} TFLOP end to end in {e['precision']}: "
                f"{e['fraction_of_peak[first.nii.gz]']:.1%} (first) / {e['fraction_of_peak[warm.nii.gz]']:.1%} "
                f"(warm) of the measured {e['precision']} matmul peak."
            )
    if result.folder:
        f = result.folder
        lines.append("")
        lines.append(
            f"Folder of {f.scans} scans {f.shape} (.nii.gz in and out): {f.wall_s:.1f} s, "
            f"{f.per_scan_s:.2f} s per scan; device busy {f.device_busy_fraction:.0%} of the wall time."
        )
    return "\n".join(lines)
