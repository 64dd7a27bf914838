"""Time, memory and feature count of one VOI's extraction with each shipped pyradiomics parameter
file, before (LR crop) and after SR (the cached SR crop of an `evaluate` run).

    python benchmarks/extended_radiomics.py EVAL_DIR COHORT_CSV PATIENT_ID
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

from srgan3d.io import read_volume
from srgan3d.study.config import SHIPPED_PARAMS
from srgan3d.study.radiomics import crop, extract_features, make_extractor, voi_box
from srgan3d.volume import Volume


def main() -> None:
    eval_dir, cohort_csv, pid = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    row = pd.read_csv(cohort_csv).set_index("patient_id").loc[pid]
    image, mask = read_volume(cohort_csv.parent / row["image"]), read_volume(cohort_csv.parent / row["mask"])
    box = voi_box(mask.data, 16)
    lr, lr_mask = crop(image, box), crop(mask, box)
    lr_mask = Volume((lr_mask.data > 0.5).astype("uint8"), lr_mask.affine, lr_mask.meta)
    sr, sr_mask = read_volume(eval_dir / "sr" / f"{pid}.nii.gz"), read_volume(eval_dir / "sr" / f"{pid}_mask.nii.gz")
    out = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, 1 process", "patient": pid,
           "lr_crop": list(lr.shape), "sr_crop": list(sr.shape), "rows": []}  # fmt: skip
    for name in ("default", "extended"):
        ex = make_extractor(SHIPPED_PARAMS[name])
        for label, img, m in (("pre-SR", lr, lr_mask), ("post-SR", sr, sr_mask)):
            t0 = time.perf_counter()
            feats = extract_features(ex, img, m)
            out["rows"].append({"params": name, "image": label, "features": len(feats),
                                "seconds": round(time.perf_counter() - t0, 2),
                                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)})  # fmt: skip
            print(out["rows"][-1], flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
