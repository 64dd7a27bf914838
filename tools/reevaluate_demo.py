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

import shutil
import sys
import time
from pathlib import Path

from srgan3d.study.config import DeepConfig, ModelingConfig, RadiomicsConfig
from srgan3d.study.evaluation import evaluate_cohort


def main(out: str, demo: str = "demo_out") -> None:
    dst, src = Path(out), Path(demo)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src / "evaluation", dst, ignore=shutil.ignore_patterns("results.json", "report.html", "*.csv"))
    t = time.perf_counter()
    # the options `srgan3d demo` uses (srgan3d/demo.py: run_demo), with its default seed and bootstrap
    evaluate_cohort(src / "cohort" / "cohort.csv", dst,
                    radiomics=RadiomicsConfig(method="generator", workers=2, peritumoral=(5.0,)),
                    modeling=ModelingConfig(seed=0, n_bootstrap=100, comparators=("bclc", "child_pugh"),
                                            panel_bootstrap=25, workers=2),
                    deep=DeepConfig.tiny(seed=0))  # fmt: skip
    print(f"re-evaluated in {time.perf_counter() - t:.0f} s: {dst / 'results.json'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
