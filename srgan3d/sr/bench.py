"""`srgan3d benchmark`: throughput and memory of the upscale engine, measured on this machine.

For one clinical-size volume (default LR 320x320x80 -> 640x640x160) it measures:

- the device's matrix-multiply peak (fp32 on CPU; fp32, TF32 and bf16 on CUDA), the roofline;
- the generator over a sweep of window sizes and window batch sizes: seconds of compute (median
  of repeats after a warm-up, CUDA synchronised), LR and HR voxels per second, peak memory
  (CUDA: `torch.cuda.max_memory_allocated`; CPU: peak RSS of the process), the generator's FLOPs
  per output voxel and the achieved TFLOP/s of useful work (window halos not counted) as a
  fraction of the measured peak;
- on CUDA also fp32 vs TF32 vs bf16/fp16 autocast, `torch.compile` on/off and
  `channels_last_3d` on/off, at the default window;
- end to end through `upscale_files` (read NIfTI, normalise, upscale, write .nii.gz);
- trilinear interpolation of the same volume, the floor a user compares against.

Weights do not change the arithmetic: an untrained generator of the default architecture is
timed unless installed weights are asked for.
"""

from __future__ import annotations

import functools
import logging
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srgan3d.provenance import versions
from srgan3d.sr.engine import GeneratorEngine, choose_window, resolve_device
from srgan3d.sr.nets import Generator, GeneratorConfig, flops_per_input_voxel
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.volume import Volume, write_volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Options of `srgan3d benchmark`; one per CLI option.

    Attributes:
        shape: LR input shape.
        device: "auto", "cpu" or "cuda[:N]".
        windows: input window edges to sweep (None: the engine's automatic choice only on CPU;
            64, 96, 128 and automatic on CUDA).
        batches: window batch sizes to sweep (None: 1 on CPU; 1, 2, 4 on CUDA).
        repeats: timed repeats per setting (after one warm-up run on CUDA).
        end_to_end: also time read -> upscale -> write through `upscale_files`.
        weights: installed weights to time instead of an untrained default generator.
    """

    shape: tuple[int, int, int] = (320, 320, 80)
    device: str = "auto"
    windows: tuple[int, ...] | None = None
    batches: tuple[int, ...] | None = None
    repeats: int = 3
    end_to_end: bool = True
    weights: str | None = None

    @classmethod
    def quick(cls) -> BenchmarkConfig:
        """A CPU smoke run of a few seconds (used by the tests)."""
        return cls(shape=(40, 40, 16), device="cpu", windows=(24,), batches=(1, 2), repeats=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], Any], device: torch.device, repeats: int, *, warmup: bool) -> float:
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


def run_benchmark(config: BenchmarkConfig, *, progress: bool = False) -> dict[str, Any]:
    """Run the measurements; returns a JSON-ready dict with `rows` and a markdown `table`."""
    from tqdm.auto import tqdm

    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    vol = test_volume(config.shape)
    model = _model(config)
    gcfg = model.config
    scale = tuple(gcfg.scale)
    n_lr = int(np.prod(config.shape))
    n_hr = n_lr * int(np.prod(scale))
    flops_lr = flops_per_input_voxel(gcfg)
    x = (vol.data - vol.data.mean()) / (vol.data.std() + 1e-6)

    peaks = {"fp32": matmul_peak_tflops(device, torch.float32)}
    if cuda:
        peaks["tf32"] = matmul_peak_tflops(device, torch.float32, tf32=True)
        peaks["bf16"] = matmul_peak_tflops(device, torch.bfloat16)

    windows = config.windows or ((64, 96, 128, 0) if cuda else (0,))
    batches = config.batches or ((1, 2, 4) if cuda else (1,))
    settings: list[dict[str, Any]] = [
        {
            "window": w,
            "batch": b,
            "precision": "bf16" if cuda else "fp32",
            "compile": False,
            "channels_last": False,
        }
        for w in windows
        for b in batches
    ]
    if cuda:
        for precision in ("fp32", "tf32", "fp16"):
            settings.append(
                {"window": 0, "batch": 1, "precision": precision, "compile": False, "channels_last": False}
            )
        settings.append(
            {"window": 0, "batch": 1, "precision": "bf16", "compile": True, "channels_last": False}
        )
        settings.append(
            {"window": 0, "batch": 1, "precision": "bf16", "compile": False, "channels_last": True}
        )

    rows = []
    for s in tqdm(settings, desc="benchmark", unit="setting", disable=not progress):
        net = model
        if s["channels_last"]:
            net = Generator(gcfg)
            net.load_state_dict(model.state_dict())
            net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        engine = GeneratorEngine(net, device=device, amp=s["precision"] in ("bf16", "fp16"))
        if s["precision"] == "fp16":
            engine.amp_dtype = torch.float16
        if s["compile"]:
            engine.model = torch.compile(engine.model, dynamic=False)  # type: ignore[assignment]
        if s["window"]:
            engine.window = (min(s["window"], config.shape[0]), min(s["window"], config.shape[1]),
                             min(s["window"], config.shape[2]))  # fmt: skip
        engine.sw_batch_size = s["batch"]
        engine.run_network(x[:16, :16, :16])  # first-call costs (allocator, kernels) kept out of the timing
        window = engine.window or choose_window(
            config.shape, max_voxels=engine.max_window_voxels, overlap=engine.overlap
        )
        tf32_before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = s["precision"] == "tf32"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        try:
            sec = _median_seconds(functools.partial(engine.run_network, x), device, config.repeats, warmup=cuda)
        except torch.OutOfMemoryError:
            rows.append({**s, "window": list(window), "error": "CUDA out of memory"})
            continue
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_before
        peak_gb = torch.cuda.max_memory_allocated(device) / 1024**3 if cuda else _peak_rss_gb()
        achieved = flops_lr * n_lr / sec / 1e12
        peak_key = (
            s["precision"] if s["precision"] in peaks else ("bf16" if s["precision"] == "fp16" else "fp32")
        )
        rows.append(
            {
                **s,
                "window": list(window),
                "compute_s": sec,
                "lr_voxels_per_s": n_lr / sec,
                "hr_voxels_per_s": n_hr / sec,
                "peak_memory_gb": peak_gb,
                "achieved_tflops": achieved,
                "fraction_of_peak": achieved / peaks[peak_key],
            }
        )

    # The floor: trilinear interpolation of the same volume (scipy on CPU, torch on CUDA).
    if cuda:
        t = torch.from_numpy(vol.data).to(device)[None, None]
        floor_s = _median_seconds(
            lambda: torch.nn.functional.interpolate(t, scale_factor=scale, mode="trilinear", align_corners=False),
            device, config.repeats, warmup=True,
        )  # fmt: skip
    else:
        from srgan3d.sr.degrade import spline_upsample

        floor_s = _median_seconds(lambda: spline_upsample(vol.data, scale, order=1), device, 1, warmup=False)

    e2e: dict[str, Any] | None = None
    if config.end_to_end:
        with tempfile.TemporaryDirectory(prefix="srgan3d-bench-") as tmp:
            src = write_volume(vol, Path(tmp) / "in" / "bench.nii.gz")
            wdir = Path(tmp) / "weights"
            name = config.weights
            if name is None:
                from srgan3d.sr.weights import save_weights

                name = str(
                    save_weights(model, wdir / "bench.pt", card={"description": "untrained, for timing"})
                )
            ucfg = UpscaleConfig(method="generator", weights=name, device=config.device, overwrite=True)
            t0 = time.perf_counter()
            res = upscale_files([src], Path(tmp) / "out", ucfg)
            sec = time.perf_counter() - t0
            row = res.rows[0]
            if row.status != "ok":
                raise RuntimeError(f"end-to-end run failed: {row.error}")
            e2e = {
                "seconds": sec,
                "output_bytes": Path(row.output).stat().st_size,
                "peak_rss_gb": _peak_rss_gb(),
            }

    best = min((r for r in rows if "compute_s" in r), key=lambda r: r["compute_s"])
    result = {
        "date": date.today().isoformat(),
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"cpu: {platform.processor() or platform.machine()}",
        "torch_threads": torch.get_num_threads(),
        "input_shape": list(config.shape),
        "output_shape": [n * s for n, s in zip(config.shape, scale, strict=True)],
        "generator": gcfg.to_dict(),
        "flops_per_output_voxel": flops_lr / int(np.prod(scale)),
        "matmul_peak_tflops": peaks,
        "rows": rows,
        "best": best,
        "trilinear_s": floor_s,
        "end_to_end": e2e,
        "config": asdict(config),
        "versions": versions(),
    }
    result["table"] = markdown_table(result)
    return result


def markdown_table(result: dict[str, Any]) -> str:
    lines = [
        f"Input {tuple(result['input_shape'])} -> {tuple(result['output_shape'])} on {result['device']} "
        f"({result['torch_threads']} threads), {result['date']}; generator "
        f"{result['flops_per_output_voxel'] / 1e3:.1f} kFLOP per output voxel; matmul peak "
        + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in result["matmul_peak_tflops"].items()),
        "",
        "| window | batch | precision | compile | channels_last | compute s | M HR vox/s | peak GB | TFLOP/s | of peak |",
        "|---|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        w = "x".join(map(str, r["window"]))
        if "error" in r:
            lines.append(
                f"| {w} | {r['batch']} | {r['precision']} | {r['compile']} | {r['channels_last']} | {r['error']} |||||"
            )
            continue
        lines.append(
            f"| {w} | {r['batch']} | {r['precision']} | {r['compile']} | {r['channels_last']} | {r['compute_s']:.3f} | "
            f"{r['hr_voxels_per_s'] / 1e6:.2f} | {r['peak_memory_gb']:.2f} | {r['achieved_tflops']:.3f} | "
            f"{r['fraction_of_peak']:.1%} |"
        )
    lines.append("")
    lines.append(f"Trilinear interpolation of the same volume: {result['trilinear_s']:.3f} s.")
    if result["end_to_end"]:
        e = result["end_to_end"]
        lines.append(
            f"End to end (read .nii.gz, normalise, upscale with the default settings, write .nii.gz): "
            f"{e['seconds']:.2f} s; output {e['output_bytes'] / 1e6:.0f} MB."
        )
    return "\n".join(lines)
