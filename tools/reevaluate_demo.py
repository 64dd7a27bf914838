"""Re-run the demo's evaluation on the demo's own cohort and extraction cache (minutes instead of
the demo's quarter hour), to check that a refactor moves no number:

    make demo                                   # once, before the change: demo_out/
    cp demo_out/evaluation/results.json /tmp/before.json
    # ... the change ...
    python tools/reevaluate_demo.py /tmp/reeval    # same options as `srgan3d demo`
    python tools/compare_results.py /tmp/before.json /tmp/reeval/results.json

The cohort and the per-patient feature cache are reused (copied, never modified); the models, the
bootstrap, the deep models and every statistic are refitted. `sr_quality` (the phantom's part of
the demo) is not recomputed, so the comparison lists it as the one difference.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from srgan3d.demo import demo_study_configs
from srgan3d.study.evaluation import evaluate_cohort


def main(out: str, demo: str = "demo_out") -> None:
    dst, src = Path(out), Path(demo)
    before = json.loads((src / "evaluation" / "results.json").read_text())["config"]["modeling"]
    method = json.loads((src / "summary.json").read_text())["method"]
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src / "evaluation", dst, ignore=shutil.ignore_patterns("results.json", "report.html", "*.csv"))
    t = time.perf_counter()
    # the demo's own options (`srgan3d.demo.demo_study_configs`), with the seed and bootstrap it ran with
    radiomics, modeling, deep = demo_study_configs(method, seed=before["seed"], n_bootstrap=before["n_bootstrap"],
                                                   workers=2)  # fmt: skip
    evaluate_cohort(src / "cohort" / "cohort.csv", dst, radiomics=radiomics, modeling=modeling, deep=deep)
    print(f"re-evaluated in {time.perf_counter() - t:.0f} s: {dst / 'results.json'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
