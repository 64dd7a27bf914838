"""Do the study's numbers hold when the features change at the 9th digit? (issue 38)

    python benchmarks/noise_stability.py DEMO_OUT [--json benchmarks/noise_stability_DATE.json]

DEMO_OUT is a finished `srgan3d demo -o DEMO_OUT`: its cohort (`cohort/cohort.csv`) and the
features its evaluation extracted (`evaluation/features_pre.csv`, `features_post.csv`). The study
is run twice on those tables with the demo's modelling options (`srgan3d.demo.demo_study_configs`):
once as extracted, once with every feature multiplied by 1 + 1e-9 x N(0, 1) (far above the noise
of ITK's threaded sums, ~1e-12). Reported: every AUC in results.json that moved by 0.005 or more
(none is the target), the largest move, and whether the panel's pick and every hyperparameter
choice stayed the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from srgan3d.atomic import write_text_atomic
from srgan3d.demo import demo_study_configs
from srgan3d.provenance import versions
from srgan3d.study.evaluation import evaluate_cohort
from srgan3d.study.results import reported_aucs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", type=Path)
    ap.add_argument("--json", type=Path, default=Path(f"benchmarks/noise_stability_{date.today().isoformat()}.json"))
    ap.add_argument("--scale", type=float, default=1e-9)
    args = ap.parse_args()
    cohort = args.demo_out / "cohort" / "cohort.csv"
    work = args.demo_out / "noise_stability"
    _, modeling, _ = demo_study_configs("sinc", workers=2)
    rng = np.random.default_rng(0)
    results = {}
    for name, scale in (("as extracted", 0.0), ("perturbed", args.scale)):
        tables = []
        for which in ("pre", "post"):
            df = pd.read_csv(args.demo_out / "evaluation" / f"features_{which}.csv")
            feats = [c for c in df.columns if c not in ("patient_id", "Image", "Mask") and not c.startswith("diagnostics_")]
            df[feats] = df[feats] * (1 + scale * rng.standard_normal(df[feats].shape))
            path = work / f"{name.replace(' ', '_')}_{which}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False, float_format="%.17g")
            tables.append(path)
        out = work / name.replace(" ", "_")
        res = evaluate_cohort(cohort, out, modeling=modeling, features=tables[0], features_sr=tables[1])
        results[name] = json.loads(json.dumps(res.to_dict()))
    a, b = reported_aucs(results["as extracted"]), reported_aucs(results["perturbed"])
    moves = {k: abs(a[k] - b[k]) for k in a if k in b and np.isfinite(a[k]) and np.isfinite(b[k])}
    pa, pb = results["as extracted"]["panel"], results["perturbed"]["panel"]
    params_same = all(m["params"] == pb["models"][n][i]["params"] for n, ims in pa["models"].items() for i, m in ims.items())
    spread = {f"{n}/{i}": m["seed_spread"] for n, ims in pa["models"].items() for i, m in ims.items()}
    summary = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/noise_stability.py " + " ".join(sys.argv[1:]),
        "machine": platform.processor() or platform.machine(),
        "scale": args.scale,
        "n_aucs": len(moves),
        "largest_move": max(moves.values()) if moves else None,
        "moved_0.005_or_more": {k: [a[k], b[k]] for k, v in moves.items() if v >= 0.005},
        "panel_pick": [pa["best"], pb["best"]],
        "panel_pick_same": pa["best"] == pb["best"],
        "hyperparameters_same": params_same,
        "lasso_C_same": {k: v["C"] for k, v in results["as extracted"]["fitted"]["radscore"].items()}
        == {k: v["C"] for k, v in results["perturbed"]["fitted"]["radscore"].items()},
        "panel_seed_spread": spread,
        "versions": versions(),
    }
    write_text_atomic(args.json, json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("versions", "panel_seed_spread")}, indent=2))


if __name__ == "__main__":
    main()
