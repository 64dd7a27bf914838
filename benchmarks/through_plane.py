"""Through-plane SR on real scans made thick along an axis: per scan (self-supervised) and per
protocol (one network for several scans), against zero-filled k-space, cubic B-spline and
B-spline + slice-profile consistency along that axis.

    python benchmarks/through_plane.py SCAN:AXIS ... [--profiles boxcar,gaussian] [--factor 2]
        [--minutes 4] [--protocol-train SCAN:AXIS ... --protocol-minutes 15] --json OUT.json

Each scan is made `factor`x thick along AXIS by the slice profile (`thick_slice_copy`: boxcar of
the new spacing, or a Gaussian with FWHM = the new spacing, on the affine rule's grid), upscaled
back by each method, and scored against the thin truth: PSNR and SSIM over the foreground
(voxels above 5% of the 99.5th percentile; intensities scaled by the thick copy's robust range).
Self-supervised: the network is trained on the thick copy's own planes (`PlanePairs`,
`fit_plane_net`) and applied whatever the held-out gate says; the gate's decision (what `auto`
and `--method self-supervised` would run) is reported beside it. With `--protocol-train`, one
network is trained on those scans' thick copies (per profile) and applied to every SCAN above,
which it never saw (list no scan in both).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_volume
from srgan3d.provenance import versions
from srgan3d.sr.config import ThroughPlaneConfig
from srgan3d.sr.degrade import sinc_upsample, spline_upsample
from srgan3d.sr.device import use_bf16
from srgan3d.sr.engine import IntensityScaling
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.protocol import save_plane_net
from srgan3d.sr.slice_profile import (
    SliceProfile,
    bspline_consistent,
    inplane_can_teach,
    measure_axis_detail,
    slice_roughness_ratio,
    slices_can_learn,
    teaching_axes,
)
from srgan3d.sr.through_plane import PlaneNet, PlanePairs, apply_plane_net, fit_plane_net, thick_slice_copy


def _case(spec: str, kind: str, factor: int) -> dict:
    path, _, ax = spec.partition(":")
    axis = int(ax or 2)
    vol = read_volume(path)
    n = vol.shape[axis] - vol.shape[axis] % factor
    truth = np.take(vol.data, np.arange(n), axis=axis).astype(np.float32)
    profile = SliceProfile(kind, factor, 1.0)
    thick = thick_slice_copy(vol, factor, axis=axis, profile=profile)
    order = [a for a in range(3) if a != axis] + [axis]
    scaling = IntensityScaling.fit(thick.data)
    x = scaling.forward(np.transpose(thick.data, order))
    spacing = [thick.spacing_mm[a] for a in order]
    return {"spec": spec, "name": Path(path).name, "axis": axis, "truth": truth, "thick": thick, "order": order,
            "scaling": scaling, "x": np.ascontiguousarray(x), "profile": profile, "spacing": spacing,
            "teach": teaching_axes(spacing, 2, factor), "mask": foreground_mask(scaling.forward(truth))}  # fmt: skip


def _back(case: dict, y: np.ndarray) -> np.ndarray:
    return np.transpose(case["scaling"].inverse(y), np.argsort(case["order"]))


def _score(case: dict, out: np.ndarray) -> dict[str, float]:
    t, o = case["scaling"].forward(case["truth"]), case["scaling"].forward(out)
    return {"psnr_db": round(psnr(t, o, mask=case["mask"]), 3), "ssim": round(ssim(t, o, mask=case["mask"]), 4)}


def _baselines(case: dict) -> dict[str, dict[str, float]]:
    f = [1, 1, 1]
    f[case["axis"]] = case["profile"].factor
    thick = case["thick"].data
    cons = bspline_consistent(torch.from_numpy(case["x"]), case["profile"]).numpy()
    return {"zero-filled k-space": _score(case, sinc_upsample(thick, f)),
            "B-spline": _score(case, spline_upsample(thick, f, order=3)),
            "B-spline + consistency": _score(case, _back(case, cons))}  # fmt: skip


def _per_scan(case: dict, cfg: ThroughPlaneConfig) -> tuple[dict, dict]:
    detail = measure_axis_detail(case["x"])
    ok, why = inplane_can_teach(detail, case["teach"])
    ratio = slice_roughness_ratio(case["x"], case["teach"], case["profile"])
    if ok:
        ok, why = slices_can_learn(case["x"], case["teach"], case["profile"])
    pairs = PlanePairs(case["profile"])
    pairs.add_volume(case["x"], holdout_every=cfg.holdout_every, teach=case["teach"])
    t0 = time.perf_counter()
    model, fit = fit_plane_net(pairs, cfg, progress=False)
    t1 = time.perf_counter()
    y = apply_plane_net(model, case["x"], case["profile"], teach=case["teach"], amp=cfg.amp)
    t2 = time.perf_counter()
    gate = "network" if ok and fit.gain_db > cfg.min_gain_db else "B-spline + consistency"
    info = {"teach_axes": list(case["teach"]), "detail": detail.to_dict(), "slice_roughness_ratio": round(ratio, 3),
            "detail_ok": ok, "detail_reason": why,
            "fit": fit.to_dict(), "train_s": round(t1 - t0, 1), "apply_s": round(t2 - t1, 1), "gate": gate}  # fmt: skip
    return _score(case, _back(case, y)), info


def _protocol(train: list[dict], cfg: ThroughPlaneConfig, save: Path) -> tuple[PlaneNet, dict]:
    """One network on the thick copies of `train`, saved to `save` (a start for --init)."""
    pairs = PlanePairs(train[0]["profile"])
    for case in train:
        pairs.add_volume(case["x"], holdout_every=cfg.holdout_every, teach=case["teach"])
    model, fit = fit_plane_net(pairs, cfg, progress=False)
    spacing = train[0]["spacing"]
    card = {"kind": "through-plane", "description": "benchmarks/through_plane.py protocol model (thick copies)",
            "protocol": {"profile": train[0]["profile"].kind, "factor": train[0]["profile"].factor,
                         "spacing_mm": spacing[2], "thickness_mm": spacing[2], "inplane_mm": spacing[:2],
                         "inplane_factor": 1},
            "training_data": [{"file": c["spec"]} for c in train], "held_out": fit.to_dict(), "config": cfg.to_dict()}  # fmt: skip
    save.parent.mkdir(parents=True, exist_ok=True)
    save_plane_net(model, save, card)
    return model, {"scans": [c["spec"] for c in train], "fit": fit.to_dict(), "saved": str(save)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", nargs="+", help="SCAN:AXIS (the axis made thick)")
    ap.add_argument("--profiles", default="boxcar")
    ap.add_argument("--factor", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=ThroughPlaneConfig.minutes)
    ap.add_argument("--no-per-scan", action="store_true", help="skip the per-scan networks")
    ap.add_argument("--protocol-train", nargs="*", default=[])
    ap.add_argument("--protocol-minutes", type=float, default=15.0)
    ap.add_argument("--save-protocol", default="data/through_plane_protocol_{profile}.pt",
                    help="where the protocol model is written (a start for --init)")
    ap.add_argument("--init", default=None, help="per-scan networks start from these through-plane weights")
    ap.add_argument("--json", default="benchmarks/through_plane.json")
    args = ap.parse_args()
    cfg = ThroughPlaneConfig(minutes=args.minutes, init=args.init)
    rows, protocols = [], []
    for kind in args.profiles.split(","):
        proto = None
        if args.protocol_train:
            train = [_case(s, kind, args.factor) for s in args.protocol_train]
            proto, pinfo = _protocol(train, replace(cfg, minutes=args.protocol_minutes, init=None),
                                     Path(args.save_protocol.format(profile=kind)))
            protocols.append({"profile": kind, **pinfo})
            print(f"protocol model ({kind}): {pinfo}", flush=True)
        for spec in args.scans:
            case = _case(spec, kind, args.factor)
            scores = _baselines(case)
            row = {"scan": case["name"], "axis": case["axis"], "profile": kind, "factor": args.factor,
                   "truth_shape": list(case["truth"].shape), "thick_spacing_mm": [round(float(v), 3) for v in case["thick"].spacing_mm]}  # fmt: skip
            if not args.no_per_scan:
                scores["self-supervised"], row["self_supervised"] = _per_scan(case, cfg)
            if proto is not None:
                t0 = time.perf_counter()
                y = apply_plane_net(proto, case["x"], case["profile"], teach=case["teach"], amp=cfg.amp)
                row["protocol_apply_s"] = round(time.perf_counter() - t0, 1)
                scores["protocol model"] = _score(case, _back(case, y))
            base = scores["B-spline"]["psnr_db"]
            row["scores"] = scores
            row["gain_over_bspline_db"] = {m: round(v["psnr_db"] - base, 3) for m, v in scores.items()}
            rows.append(row)
            print(f"{row['scan']} axis {case['axis']} {kind} x{args.factor}: " + ", ".join(
                f"{m} {v['psnr_db']:.2f}/{v['ssim']:.4f}" for m, v in scores.items())
                + (f"; gate {row['self_supervised']['gate']}, held-out {row['self_supervised']['fit']['gain_db']:+.2f} dB, "
                   f"{row['self_supervised']['fit']['steps']} steps, train {row['self_supervised']['train_s']} s, "
                   f"apply {row['self_supervised']['apply_s']} s" if "self_supervised" in row else ""), flush=True)  # fmt: skip
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    out = {"date": date.today().isoformat(), "command": "python benchmarks/through_plane.py " + " ".join(
               args.scans) + f" --profiles {args.profiles} --factor {args.factor} --minutes {args.minutes:g}"
               + (f" --protocol-train {' '.join(args.protocol_train)} --protocol-minutes {args.protocol_minutes:g}"
                  if args.protocol_train else "") + (f" --init {args.init}" if args.init else ""),
           "machine": f"{cpu}, {torch.get_num_threads()} torch threads",
           "precision": "bf16" if use_bf16(torch.device("cpu"), True) else "fp32", "config": cfg.to_dict(),
           "rows": rows, "protocols": protocols, "versions": versions()}  # fmt: skip
    write_text_atomic(Path(args.json), json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
