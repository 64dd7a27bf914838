"""Training-step and forward-pass time of the generator per precision and memory format on this CPU.

Usage:
    python benchmarks/cpu_precision.py [--modes fp32,fp32_cl,bf16_cl] [--archs 32x4x16,48x6x24]
        [--steps 3] [--json out.json]

A training step is Adam on L1 for a batch of 8 LR patches of 16^3 (the recipe's); the forward pass
is one 64x64x48 input under inference mode. bf16 autocast runs whether or not the CPU has bf16
matrix units, so this shows what emulation costs where it has none (one step only for bf16 on such
a CPU, and no forward pass: minutes each). The first step of each setting is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch

from srgan3d.atomic import write_text_atomic
from srgan3d.provenance import versions
from srgan3d.sr.device import cpu_has_bf16_units
from srgan3d.sr.nets import Generator, GeneratorConfig


def time_setting(cfg: GeneratorConfig, mode: str, steps: int, *, forward: bool) -> dict:
    torch.manual_seed(0)
    g = Generator(cfg)
    cl = mode.endswith("_cl")
    bf16 = mode.startswith("bf16")
    fmt = torch.channels_last_3d if cl else torch.contiguous_format
    g = g.to(memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.Adam(g.parameters(), 2e-4)
    x = torch.randn(8, 1, 16, 16, 16).contiguous(memory_format=fmt)
    y = torch.randn(8, 1, 32, 32, 32)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = g(x).float()
        loss = (out - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    row = {"mode": mode, "train_step_s": sorted(times[1:])[len(times[1:]) // 2] if steps else times[0]}
    if forward:
        x2 = torch.randn(1, 1, 64, 64, 48).contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            g(x2)
            t0 = time.perf_counter()
            g(x2)
            row["forward_64x64x48_s"] = time.perf_counter() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="fp32,fp32_cl,bf16_cl")
    ap.add_argument("--archs", default="32x4x16,48x6x24", help="channels x blocks x upsample channels")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/cpu_precision.json")
    args = ap.parse_args()
    units = cpu_has_bf16_units()
    rows = []
    for arch in args.archs.split(","):
        c, b, u = (int(v) for v in arch.split("x"))
        cfg = GeneratorConfig(channels=c, n_blocks=b, upsample_channels=u)
        for mode in args.modes.split(","):
            emulated = mode.startswith("bf16") and not units
            if emulated and c != 32:
                continue  # minutes per step: one small architecture shows the cost
            row = {"arch": arch, **time_setting(cfg, mode, 0 if emulated else args.steps, forward=not emulated)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = {
        "date": date.today().isoformat(),
        "command": f"python benchmarks/cpu_precision.py --modes {args.modes} --archs {args.archs} --steps {args.steps}",
        "machine": f"{platform.machine()} {platform.processor()}, {torch.get_num_threads()} torch threads, "
        f"bf16 matrix units: {units}",
        "rows": rows,
        "versions": versions(),
    }
    write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
