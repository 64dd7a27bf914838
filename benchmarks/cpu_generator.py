"""Time the default generator and the interpolation baselines on one clinical-size volume.

Usage: python benchmarks/cpu_generator.py [--shape 192,192,100] [--json out.json]

Prints a markdown table and writes JSON. Weights do not change the arithmetic, so an untrained
default-architecture generator is timed; the window is the engine's automatic choice.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import date

import numpy as np
import torch
from scipy import ndimage

from srgan3d.provenance import versions
from srgan3d.sr.engine import GeneratorEngine, choose_window, upscale_volume
from srgan3d.sr.nets import Generator, GeneratorConfig, flops_per_input_voxel
from srgan3d.volume import Volume


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="192,192,100")
    ap.add_argument("--json", default="benchmarks/cpu_generator.json")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    data = (1000 * ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 2)).astype(np.float32)
    vol = Volume(data, np.diag([1.5, 1.5, 3.0, 1.0]))
    cfg = GeneratorConfig()
    torch.manual_seed(0)
    model = Generator(cfg)
    torch.nn.init.normal_(model.tail.weight, std=0.01)
    engine = GeneratorEngine(model, device=torch.device("cpu"))
    window = choose_window(shape, max_voxels=engine.max_window_voxels, overlap=engine.overlap)

    rows = []
    for method in ("generator", "sinc", "tricubic", "trilinear"):
        t0 = time.perf_counter()
        out = upscale_volume(
            vol, method=method, factors=(2, 2, 2), engine=engine if method == "generator" else None
        )
        dt = time.perf_counter() - t0
        rows.append(
            {
                "method": method,
                "seconds": dt,
                "lr_voxels_per_s": data.size / dt,
                "output_shape": list(out.shape),
            }
        )
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    gen = rows[0]
    result = {
        "date": date.today().isoformat(),
        "command": f"python benchmarks/cpu_generator.py --shape {args.shape}",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "input_shape": list(shape),
        "precision": engine.precision,  # the generator row's; bf16 only where the CPU has bf16 units
        "generator": cfg.to_dict(),
        "window": list(window),
        "gflop_per_s": flops_per_input_voxel(cfg) * data.size / gen["seconds"] / 1e9,
        "peak_rss_gb": peak_rss_gb,
        "rows": rows,
        "versions": versions(),
    }
    print(f"input {shape} -> 2x, window {window}, {engine.precision}, torch threads {torch.get_num_threads()}")
    print("| method | seconds | M LR voxels/s |")
    print("|---|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.1f} | {r['lr_voxels_per_s'] / 1e6:.3f} |")
    print(
        f"generator compute (no-overlap FLOPs) {result['gflop_per_s']:.0f} GFLOP/s; peak RSS {peak_rss_gb:.1f} GB"
    )
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
