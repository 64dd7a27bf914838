"""Fine-tuning srgan3d_x2 to one site's scan, scored on the part no training patch touched.

    python benchmarks/site_finetune.py SCAN [SCAN ...] --minutes 10 --json benchmarks/site_finetune_DATE.json

For each scan: `srgan3d train SCAN --init srgan3d_x2 --config recipes/site_finetune.yaml --minutes M`
(no --val: the run holds out a slab, `split_for_validation`), export of the best checkpoint; then
the *whole* scan is degraded 2x by grid-consistent k-space truncation, upscaled by zero-filled
k-space, tricubic, srgan3d_x2 and the fine-tuned weights (data consistency on), and PSNR/SSIM are
taken over the foreground of the held-out slab only. Prints a table and writes JSON.
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
from srgan3d.io import read_volume, write_volume
from srgan3d.provenance import versions
from srgan3d.sr.degrade import crop_to_multiple, degrade_volume
from srgan3d.sr.device import use_bf16
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling, upscale_volume
from srgan3d.sr.export import export_weights
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.train import TrainConfig, split_for_validation, train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", nargs="+")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "site_finetune.yaml"))
    ap.add_argument("--work", default=str(ROOT / "data" / "site_finetune"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "site_finetune.json"))
    args = ap.parse_args()
    rows = []
    for path in args.scans:
        name = Path(path).name.split(".")[0]
        vol = crop_to_multiple(read_volume(path), 2)
        work = Path(args.work) / name
        work.mkdir(parents=True, exist_ok=True)
        src = write_volume(vol, work / "scan.nii.gz")  # cropped to even sizes, so split and score agree
        cfg = TrainConfig.from_yaml(args.recipe, minutes=args.minutes, device="cpu")
        t0 = time.perf_counter()
        run = work / "run"
        if run.exists():
            raise SystemExit(f"{run} exists: remove it to measure again")
        result = train([src], run, cfg, init="srgan3d_x2", progress=True)
        seconds = time.perf_counter() - t0
        weights = export_weights(run, work / f"site_{name}_x2.pt", checkpoint="best",
                                 description=f"srgan3d_x2 fine-tuned on part of {Path(path).name}")  # fmt: skip
        card = json.loads(weights.with_suffix(".json").read_text())
        # where the held-out slab lies in the whole scan
        min_slab = max(4 * max(cfg.scale), cfg.patch_size * min(cfg.scale))
        _, (held,), note = split_for_validation([vol], holdout=cfg.holdout, min_slab=min_slab)
        axis = int(note.split("of axis ")[1].split(" ")[0])
        start = vol.shape[axis] - held.shape[axis]
        lr = degrade_volume(vol, 2)
        scaling = IntensityScaling.fit(vol.data)
        hr = scaling.forward(vol.data)
        region = np.zeros(vol.shape, bool)
        index = [slice(None)] * 3
        index[axis] = slice(start, vol.shape[axis])
        region[tuple(index)] = True
        mask = foreground_mask(hr) & region
        outs = {m: upscale_volume(lr, method=m).data for m in ("sinc", "tricubic")}
        for label, w in (("srgan3d_x2", "srgan3d_x2"), ("fine-tuned", str(weights))):
            engine = GeneratorEngine.from_weights(w, device="cpu")
            outs[label] = upscale_volume(lr, method="generator", engine=engine).data
        scores = {m: {"psnr_db": psnr(hr, scaling.forward(o), mask=mask), "ssim": ssim(hr, scaling.forward(o), mask=mask)}
                  for m, o in outs.items()}  # fmt: skip
        row = {
            "scan": Path(path).name, "shape": list(vol.shape), "spacing_mm": [round(float(v), 4) for v in vol.spacing_mm],
            "held_out": note, "train_seconds": round(seconds, 1), "steps": result.step,
            "best_step": card["steps"], "scores": scores,
            "gain_vs_sinc_db": scores["fine-tuned"]["psnr_db"] - scores["sinc"]["psnr_db"],
            "gain_vs_shipped_db": scores["fine-tuned"]["psnr_db"] - scores["srgan3d_x2"]["psnr_db"],
            "shipped_vs_sinc_db": scores["srgan3d_x2"]["psnr_db"] - scores["sinc"]["psnr_db"],
            "card_site_heldout": card.get("site_heldout"),
        }  # fmt: skip
        rows.append(row)
        print(f"{row['scan']}: {result.step} steps in {seconds:.0f} s (best {card['steps']}); held-out slab: "
              + ", ".join(f"{m} {v['psnr_db']:.2f} dB / {v['ssim']:.4f}" for m, v in scores.items())
              + f"; fine-tuned {row['gain_vs_shipped_db']:+.2f} dB over srgan3d_x2, {row['gain_vs_sinc_db']:+.2f} over sinc",
              flush=True)  # fmt: skip
    out = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/site_finetune.py " + " ".join(args.scans) + f" --minutes {args.minutes:g}"
                   + f" --recipe {args.recipe}",
        "machine": f"{platform.machine()} {platform.processor()}, {torch.get_num_threads()} torch threads",
        "precision": "bf16" if use_bf16(torch.device("cpu"), True) else "fp32",
        "rows": rows,
        "versions": versions(),
    }
    write_text_atomic(Path(args.json), json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
