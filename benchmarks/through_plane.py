"""Through-plane SR on real thin-slice scans made thick: self-supervised (SMORE-like) against cubic
and sinc interpolation along the slices.

    python benchmarks/through_plane.py SCAN[:AXIS] ... [--minutes 4] --json benchmarks/through_plane_DATE.json

Each scan's thick-slice copy (2x along its slice axis, boxcar profile: `thick_slice_copy`) is
upscaled back by cubic spline interpolation along the slices, cubic + the slice-profile
consistency, zero-filled k-space (sinc) along the slices, and `upscale_through_plane` (trained on
the thick copy's own in-plane planes only), and each is scored against the thin truth: PSNR and
SSIM over the foreground (intensities scaled by the thick copy's range). Per volume, a table and
JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_volume
from srgan3d.provenance import versions
from srgan3d.sr.degrade import sinc_upsample, spline_upsample
from srgan3d.sr.device import use_bf16
from srgan3d.sr.engine import IntensityScaling
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.through_plane import (
    ThroughPlaneConfig,
    slice_profile_consistency,
    thick_slice_copy,
    upscale_through_plane,
)
from srgan3d.volume import Volume


def _scores(truth: np.ndarray, out: np.ndarray, scaling: IntensityScaling, mask: np.ndarray) -> dict[str, float]:
    t, o = scaling.forward(truth), scaling.forward(out)
    return {"psnr_db": psnr(t, o, mask=mask), "ssim": ssim(t, o, mask=mask)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", nargs="+", help="SCAN or SCAN:AXIS (the axis made thick; default 2)")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--init", default="srgan3d_x2", help="weights to start from, or 'none'")
    ap.add_argument("--json", default="benchmarks/through_plane.json")
    args = ap.parse_args()
    rows = []
    for spec in args.scans:
        path, _, ax = spec.partition(":")
        axis = int(ax or 2)
        vol = read_volume(path)
        n = vol.shape[axis] - vol.shape[axis] % 2
        truth = np.take(vol.data, np.arange(n), axis=axis).astype(np.float32)
        thick = thick_slice_copy(vol, 2, axis=axis)
        f = [1, 1, 1]
        f[axis] = 2
        scaling = IntensityScaling.fit(thick.data)
        mask = foreground_mask(scaling.forward(truth))
        outs: dict[str, np.ndarray] = {}
        outs["cubic"] = spline_upsample(thick.data, f, order=3)
        order = [a for a in range(3) if a != axis] + [axis]
        cubic_t = torch.from_numpy(np.transpose(outs["cubic"], order).copy())
        thick_t = torch.from_numpy(np.transpose(thick.data, order).copy())
        outs["cubic + slice-profile consistency"] = np.transpose(
            slice_profile_consistency(cubic_t, thick_t, 2).numpy(), np.argsort(order))
        outs["sinc"] = sinc_upsample(thick.data, f)
        cfg = ThroughPlaneConfig(minutes=args.minutes, init=None if args.init == "none" else args.init)
        t0 = time.perf_counter()
        sr, fit = upscale_through_plane(Volume(thick.data, thick.affine, {}), cfg, axis=axis, progress=True)
        seconds = time.perf_counter() - t0
        outs["self-supervised"] = sr.data
        scores = {m: _scores(truth, o, scaling, mask) for m, o in outs.items()}
        row = {"scan": Path(path).name, "axis": axis, "truth_shape": list(truth.shape),
               "spacing_mm": [round(float(v), 4) for v in vol.spacing_mm], "seconds": round(seconds, 1),
               "steps": fit.steps, "init": fit.init, "loss_first": fit.loss_first, "loss_last": fit.loss_last,
               "scores": scores,
               "gain_vs_cubic_db": scores["self-supervised"]["psnr_db"] - scores["cubic"]["psnr_db"]}  # fmt: skip
        rows.append(row)
        print(f"{row['scan']} axis {axis} {truth.shape}: " + ", ".join(
            f"{m} {v['psnr_db']:.2f} dB / {v['ssim']:.4f}" for m, v in scores.items())
            + f"; self-supervised {row['gain_vs_cubic_db']:+.2f} dB over cubic ({fit.steps} steps, {seconds:.0f} s)",
            flush=True)  # fmt: skip
    out = {"date": date.today().isoformat(), "command": "python benchmarks/through_plane.py " + " ".join(args.scans)
           + f" --minutes {args.minutes:g} --init {args.init}",
           "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
           "precision": "bf16" if use_bf16(torch.device("cpu"), True) else "fp32", "rows": rows,
           "versions": versions()}  # fmt: skip
    write_text_atomic(Path(args.json), json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
