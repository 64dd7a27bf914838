"""`srgan3d demo`: the whole study on built-in synthetic data.

1. One phantom, degraded 2x by k-space truncation and upscaled by the best installed method and
   the interpolation baselines, scored against its true high resolution (`phantom/`).
2. A synthetic cohort (default 122 patients, 68 responders, and an external set `centre_B` of 30
   patients from a noisier scanner; SIMULATED responses; `cohort/`) run through `evaluate`: SR of every tumour, radiomics before and after, the models, the statistics
   and the HTML report (`evaluation/`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_volume, write_volume
from srgan3d.provenance import versions
from srgan3d.serialisation import Record
from srgan3d.sr.degrade import crop_to_multiple, degrade_volume
from srgan3d.sr.method_choice import resolve_method_and_weights
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.synthetic import make_phantom
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import DEFAULT_WEIGHTS
from srgan3d.study.results import SrMethodQuality, SrQuality

if TYPE_CHECKING:
    from srgan3d.study.config import DeepConfig, ModelingConfig, RadiomicsConfig

log = logging.getLogger(__name__)


def best_method() -> str:
    """What `--method auto` uses: the generator when the shipped weights' model card shows a
    held-out gain over zero-filled k-space, else zero-filled k-space ("sinc")."""
    return resolve_method_and_weights("auto", DEFAULT_WEIGHTS)[0]


@dataclass(frozen=True)
class PhantomSummary(Record):
    """The demo's first part: each method on the phantom against its true high resolution, and the
    terminal table of it."""

    method: str
    note: str
    seed: int
    lr_shape: tuple[int, ...]
    hr_shape: tuple[int, ...]
    lr_spacing_mm: tuple[float, ...]
    hr_spacing_mm: tuple[float, ...]
    results: tuple[SrMethodQuality, ...]
    versions: dict[str, str]
    table: str

    def quality(self) -> SrQuality:
        """The part of it the study's results and report show."""
        return SrQuality(self.method, self.note, self.hr_shape, self.hr_spacing_mm, self.results)


@dataclass(frozen=True)
class DemoSeconds(Record):
    phantom: float
    cohort: float
    evaluate: float


@dataclass(frozen=True)
class DemoSummary(PhantomSummary):
    """The whole demo (`summary.json` is its `to_dict()`): the phantom's part, then where the
    report is, the study's terminal summary, the seconds each part took, and that the responses
    are simulated."""

    report: str
    evaluation_table: str
    seconds: DemoSeconds
    simulated_responses: bool


def run_phantom_demo(outdir: str | Path, *, seed: int = 0, progress: bool = False) -> PhantomSummary:
    """Render a phantom, degrade it 2x by k-space truncation, upscale it with the best installed
    method and with interpolation baselines, and score each against the true high resolution.

    Returns the summary (`run_demo` writes it, with the study's, to `summary.json`).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    phantom = make_phantom(seed=seed)
    hr = crop_to_multiple(phantom.image, 2)
    mask = crop_to_multiple(phantom.tumour_mask, 2)
    lr = degrade_volume(hr, 2, model="kspace")
    write_volume(hr, outdir / "truth" / "phantom_hr.nii.gz", description="srgan3d demo phantom, truth")
    write_volume(mask, outdir / "truth" / "tumour_mask_hr.nii.gz", description="srgan3d demo tumour VOI")
    lr_path = write_volume(lr, outdir / "input" / "phantom_lr.nii.gz", description="srgan3d demo, 2x k-space")

    method = best_method()
    methods = [method] + [m for m in ("sinc", "tricubic", "trilinear") if m != method]
    fg = foreground_mask(hr.data)
    tumour = mask.data > 0.5
    rows = []
    for m in methods:
        result = upscale_files(
            [lr_path], outdir / f"sr_{m}", UpscaleConfig(method=m, overwrite=True), progress=progress
        )
        row = result.rows[0]
        if row.status != "ok":
            raise RuntimeError(f"demo upscaling with {m} failed: {row.error}")
        sr = read_volume(row.output)
        if not np.allclose(sr.affine, hr.affine, atol=1e-5):
            raise RuntimeError(f"demo: {m} output affine differs from the truth's")
        seconds = round(row.seconds, 2) if row.seconds is not None else float("nan")  # as the manifest has it
        rows.append(SrMethodQuality(m, psnr(hr.data, sr.data, mask=fg), ssim(hr.data, sr.data, mask=fg),
                                    psnr(hr.data, sr.data, mask=tumour), seconds))  # fmt: skip
    head = f"{'method':10s} {'PSNR dB':>8s} {'SSIM':>7s} {'tumour PSNR':>12s} {'seconds':>8s}"
    lines = [head] + [
        f"{r.method:10s} {r.psnr_db:8.2f} {r.ssim:7.4f} {r.psnr_tumour_db:12.2f} {r.seconds:8.2f}" for r in rows
    ]
    return PhantomSummary(
        method=method, note="synthetic phantom; PSNR/SSIM over the body foreground against the true high resolution",
        seed=seed, lr_shape=lr.shape, hr_shape=hr.shape, lr_spacing_mm=lr.spacing_mm, hr_spacing_mm=hr.spacing_mm,
        results=tuple(rows), versions=versions(), table="\n".join(lines),
    )  # fmt: skip


def demo_study_configs(
    method: str, *, seed: int = 0, n_bootstrap: int = 100, workers: int = 1
) -> tuple[RadiomicsConfig, ModelingConfig, DeepConfig]:
    """The options the demo runs its study with (one home: `run_demo` and
    `tools/reevaluate_demo.py` both take them from here): SR of the VOIs by `method`, a 5 mm ring,
    BCLC and Child-Pugh as comparators, the panel's bootstrap at most 25, the tiny deep model."""
    from srgan3d.study.config import DeepConfig, ModelingConfig, RadiomicsConfig

    return (
        RadiomicsConfig(method=method, workers=workers, peritumoral=(5.0,)),
        ModelingConfig(seed=seed, n_bootstrap=n_bootstrap, comparators=("bclc", "child_pugh"),
                       panel_bootstrap=min(25, n_bootstrap), workers=workers),
        DeepConfig.tiny(seed=seed),
    )  # fmt: skip


def run_demo(
    outdir: str | Path,
    *,
    seed: int = 0,
    n_patients: int = 122,
    n_responders: int = 68,
    n_external: int = 30,
    external_responders: int = 16,
    n_bootstrap: int = 100,
    workers: int = 1,
    progress: bool = False,
) -> DemoSummary:
    """Both parts of the demo; returns the summary also written to `outdir/summary.json`.

    The synthetic cohort is reused when `outdir/cohort` already holds one of the same spec and seed.
    """
    from srgan3d.study.evaluation import evaluate_cohort, write_results
    from srgan3d.study.report import terminal_summary
    from srgan3d.study.synthetic import COHORT_FORMAT, CohortSpec, make_cohort

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log.info("1/2 single-phantom SR quality against truth")
    phantom = run_phantom_demo(outdir / "phantom", seed=seed, progress=progress)
    t1 = time.perf_counter()
    spec = CohortSpec(n_patients=n_patients, n_responders=n_responders, n_external=n_external,
                      external_responders=external_responders)
    cohort_dir = outdir / "cohort"
    card = cohort_dir / "cohort.json"
    wanted = spec.record()
    if (
        card.is_file()
        and json.loads(card.read_text()).get("spec") == wanted
        and json.loads(card.read_text()).get("seed") == seed
        and json.loads(card.read_text()).get("format") == COHORT_FORMAT
    ):
        log.info("2/2 reusing the synthetic cohort in %s", cohort_dir)
    else:
        log.info("2/2 synthetic cohort: %d patients, %d responders, and an external set of %d (simulated)",
                 n_patients, n_responders, n_external)
        make_cohort(cohort_dir, spec, seed=seed, workers=workers, progress=progress)
    t2 = time.perf_counter()
    radiomics, modeling, deep = demo_study_configs(phantom.method, seed=seed, n_bootstrap=n_bootstrap,
                                                   workers=workers)  # fmt: skip
    results = evaluate_cohort(cohort_dir / "cohort.csv", outdir / "evaluation", radiomics=radiomics,
                              modeling=modeling, deep=deep, progress=progress)  # fmt: skip
    # The phantom's SR quality goes into the study's results and report too.
    from srgan3d.study.report import write_report

    write_results(outdir / "evaluation", replace(results, sr_quality=phantom.quality()))
    write_report(outdir / "evaluation")
    t3 = time.perf_counter()
    summary = DemoSummary(
        **{f.name: getattr(phantom, f.name) for f in fields(PhantomSummary)},
        report=str(outdir / "evaluation" / "report.html"), evaluation_table=terminal_summary(results),
        seconds=DemoSeconds(round(t1 - t0, 1), round(t2 - t1, 1), round(t3 - t2, 1)), simulated_responses=True,
    )  # fmt: skip
    write_text_atomic(outdir / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary
