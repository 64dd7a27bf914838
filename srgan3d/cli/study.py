"""The study's commands: `demo`, `synth-cohort`, `evaluate`, `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from tqdm.contrib.logging import logging_redirect_tqdm

from srgan3d.cli.common import DEEP, MOD, RAD, clear_errors, parse_shard, through_plane_scale
from srgan3d.study.config import (
    DEFAULT_TEST_SIZE,
    DEFAULT_TIME_UNIT,
    EXTENDED_FEATURES,
    DeepConfig,
    ModelingConfig,
    RadiomicsConfig,
)


@clear_errors
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("demo_out"),
    seed: Annotated[
        int, typer.Option(help="Seed of the phantoms, the responses, the split and the bootstrap.")
    ] = 0,
    patients: Annotated[int, typer.Option(help="Patients in the synthetic cohort.")] = 122,
    responders: Annotated[int, typer.Option(help="Responders among them.")] = 68,
    external: Annotated[int, typer.Option(help="Patients of the external test set centre_B (0: none).")] = 30,
    external_responders: Annotated[int, typer.Option(help="Responders of the external set.")] = 16,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the optimism-corrected AUC.")] = 100,
    workers: Annotated[int, typer.Option(help="Processes (default: CPU cores).")] = 0,
) -> None:
    """The whole study on a built-in synthetic cohort (simulated responses): phantom SR quality,
    then cohort -> SR of each tumour -> radiomics pre/post SR -> models -> report.html."""
    import os

    from srgan3d.demo import run_demo

    with logging_redirect_tqdm():
        summary = run_demo(
            output, seed=seed, n_patients=patients, n_responders=responders, n_external=external,
            external_responders=external_responders, n_bootstrap=bootstrap,
            workers=workers or os.cpu_count() or 1, progress=True,
        )  # fmt: skip
    typer.echo(summary.table)
    typer.echo("\n" + summary.evaluation_table)
    typer.echo(
        f"\nSR method: {summary.method}. Responses are SIMULATED. Report: {summary.report}\n"
        f"Also in {output}/: summary.json, cohort/ (synthetic cohort, cohort.csv), evaluation/ (results.json, "
        "CSVs), phantom/ (single-phantom SR quality against truth)"
    )


@clear_errors
def synth_cohort(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for images/, masks/, truth_hr/, cohort.csv.")
    ],
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 122,
    responders: Annotated[int, typer.Option(help="Number of responders (CR + PR).")] = 68,
    seed: Annotated[
        int, typer.Option(help="Seed of anatomy, tumours, clinical variables and responses.")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Processes (default: CPU cores).")] = 0,
    second_phase: Annotated[
        bool, typer.Option(help="Also write a washed-out second phase per patient (column image_2).")
    ] = False,
    external: Annotated[
        int, typer.Option(help="Patients of an external test set (set column centre_B; a noisier scanner).")
    ] = 0,
    external_responders: Annotated[int, typer.Option(help="Responders of the external set.")] = 0,
) -> None:
    """Write a synthetic cohort of arterial-phase phantoms with SIMULATED responses."""
    import os

    from srgan3d.study.synthetic import CohortSpec, make_cohort

    if output.exists() and any(output.iterdir()):
        raise ValueError(f"{output} exists and is not empty; choose a new folder")
    with logging_redirect_tqdm():
        path = make_cohort(
            output, CohortSpec(n_patients=patients, n_responders=responders, second_phase=second_phase,
                               n_external=external, external_responders=external_responders), seed=seed,
            workers=workers or os.cpu_count() or 1, progress=True,
        )  # fmt: skip
    ext = f", and {external} external (set centre_B) with {external_responders} responders" if external else ""
    typer.echo(f"wrote {path} ({patients} patients, {responders} responders{ext}; responses are simulated)")


@clear_errors
def evaluate(
    cohort: Annotated[
        Path, typer.Argument(metavar="COHORT_CSV", help="Cohort table (CSV, or an .xlsx/.xls/.ods workbook; BOOK.xlsx#Sheet for another sheet): patient_id, "
                               "image, mask, response, clinical columns.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    spacing: Annotated[
        str, typer.Option(help="native: each image's own grid; common: both resampled to one isotropic grid.")
    ] = RAD.spacing,
    common_spacing: Annotated[
        float | None,
        typer.Option(
            "--common-spacing-mm", help="Grid of --spacing common (default: the SR in-plane spacing)."
        ),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option(help=f"pyradiomics parameter file, or a shipped one: default, extended ({EXTENDED_FEATURES:,} features)."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="SR of the VOIs: auto, generator, sinc, tricubic, ...; with --scale through-plane: "
                          "auto, self-supervised or bspline-consistent.")
    ] = RAD.method,
    weights: Annotated[str, typer.Option(help="Generator weights name or path (through-plane weights with --scale through-plane).")] = RAD.weights,
    scale: Annotated[
        str, typer.Option(help="2 (isotropic, the generator's) or through-plane (2x along each scan's slice axis only).")
    ] = "through-plane" if RAD.through_plane else "2",
    through_plane_minutes: Annotated[
        float, typer.Option(help="--scale through-plane --method self-supervised: training minutes per scan.")
    ] = RAD.through_plane_minutes,
    margin: Annotated[
        int, typer.Option(help="LR voxels around each VOI's bounding box to super-resolve.")
    ] = RAD.margin_vox,
    clinical: Annotated[
        str, typer.Option(help="Candidate clinical variables, comma-separated (numeric or yes/no columns).")
    ] = ",".join(MOD.clinical),
    transform: Annotated[
        str,
        typer.Option(help="How clinical variables are modelled: COLUMN=log10 or COLUMN=none, comma-separated. Columns "
                          "not named follow the rule: positive, skewness > 2 -> log10 (the report says which)."),
    ] = "",
    test_size: Annotated[
        float | None,
        typer.Option(help=f"Fraction held out for testing (stratified; default {DEFAULT_TEST_SIZE:g}). Not with a set column."),
    ] = MOD.test_size,
    seed: Annotated[int, typer.Option(help="Seed of the split, cross-validation and bootstrap.")] = MOD.seed,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the optimism-corrected AUC (0: skip).")
    ] = MOD.n_bootstrap,
    workers: Annotated[int, typer.Option(help="Processes for feature extraction (default: CPU cores).")] = 0,
    device: Annotated[str, typer.Option(help="Device of the generator: auto, cpu, cuda[:N].")] = "auto",
    classifiers: Annotated[
        str, typer.Option(help="Classifier panel on the selected features: any of lr,svm,knn,xgboost,mlp ('' = none).")
    ] = ",".join(MOD.classifiers),
    panel_bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of the panel's optimism-corrected AUC (0: skip).")
    ] = MOD.panel_bootstrap,
    comparators: Annotated[
        str, typer.Option(help="Ordinal staging columns (e.g. bclc,child_pugh) compared with the best model.")
    ] = ",".join(MOD.comparators),
    peritumoral: Annotated[
        str, typer.Option(help="Peritumoral ring widths in mm, e.g. 3,10,20 (clipped to a liver_mask column).")
    ] = ",".join(f"{w:g}" for w in RAD.peritumoral),
    dl: Annotated[
        str, typer.Option(help="3D ResNet response model before/after SR and DLRCR: none, resnet10, resnet18, resnet34.")
    ] = "none",
    dl_dual: Annotated[
        str | None, typer.Option(help="Second branch of the deep model: ring (a 10 mm shell) or image_2 (a column).")
    ] = None,
    dl_epochs: Annotated[int, typer.Option(help="Deep model: at most this many epochs (early stopping).")] = DEEP.epochs,
    dl_crop_vox: Annotated[int, typer.Option(help="Deep model: voxels per edge of the 96 mm tumour cube.")] = DEEP.crop_vox,
    dl_widen: Annotated[float, typer.Option(help="Deep model: ResNet width factor (1 = standard).")] = DEEP.widen_factor,
    time_unit: Annotated[
        str, typer.Option(help="Unit of the survival time columns (days, weeks, months, years), for the KM axis and the medians.")
    ] = DEFAULT_TIME_UNIT,
    features: Annotated[
        Path | None,
        typer.Option(metavar="PRE_CSV", help="Pre-SR radiomic features computed elsewhere (pyradiomics batch CSV, or a "
                     "table keyed by patient_id), used instead of extracting them; image and mask become optional."),
    ] = None,
    features_sr: Annotated[
        Path | None,
        typer.Option(metavar="POST_CSV", help="Post-SR features for --features (same feature names)."),
    ] = None,
    response_ties: Annotated[
        str | None,
        typer.Option(help="With readers' columns response_1..k: what to do when they split evenly: drop, "
                     "responder or non-responder (default: refuse by name). Unread patients are left out."),
    ] = None,
    stage_order: Annotated[
        list[str] | None,
        typer.Option(metavar="COLUMN=v1<v2<...", help="Declare a staging comparator's order (repeat the option)."),
    ] = None,
    response_codes: Annotated[
        str | None,
        typer.Option(help="What numeric response codes mean, e.g. 1=CR,2=PR,3=SD,4=PD (HCC-TACE-Seg's); never "
                          "guessed: without it only 1/0 (responder call) are numbers."),
    ] = None,
    extract_only: Annotated[
        bool, typer.Option(help="Only super-resolve and extract into OUTPUT's cache (a cluster's array job); no models.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(help="With --extract-only: K/N, the K-th of N parts of the patients. Then run evaluate once "
                          "without it on the same OUTPUT to fit and report."),
    ] = None,
) -> None:
    """Radiomics before and after SR, the pre-SR, post-SR, clinical and combined models, DeLong,
    decision curves, calibration: report.html, results.json and CSVs in OUTPUT. Without images
    or --features, the clinical half: clinical model, staging, survival, readers."""
    import os

    from srgan3d.study.agreement import parse_response_codes
    from srgan3d.study.config import resolve_params
    from srgan3d.study.evaluation import evaluate_cohort
    from srgan3d.study.staging import parse_stage_order

    rcfg = RadiomicsConfig(
        params=resolve_params(params), spacing=spacing, common_spacing_mm=common_spacing, method=method,
        weights=weights, margin_vox=margin, device=device, workers=workers or os.cpu_count() or 1,
        peritumoral=tuple(float(w) for w in peritumoral.split(",") if w.strip()),
        through_plane=through_plane_scale(scale), through_plane_minutes=through_plane_minutes,
    )  # fmt: skip
    rcfg.check_params()
    if shard is not None and not extract_only:
        raise typer.BadParameter("--shard needs --extract-only (the shards extract; one run without both fits)")
    if extract_only:
        from srgan3d.study.evaluation import extract_shard

        if features is not None:
            raise typer.BadParameter("--extract-only extracts from the images: it does not take --features")
        with logging_redirect_tqdm():
            done = extract_shard(cohort, output, parse_shard(shard) or (1, 1), radiomics=rcfg,
                                 response_ties=response_ties, response_codes=parse_response_codes(response_codes),
                                 progress=True)  # fmt: skip
        typer.echo(done.describe())
        typer.echo(f"when every shard has run: srgan3d evaluate {cohort} -o {output} (the same options) fits and reports")
        return
    mcfg = ModelingConfig(
        test_size=test_size, seed=seed, n_bootstrap=bootstrap,
        clinical=tuple(c.strip() for c in clinical.split(",") if c.strip()),
        classifiers=tuple(c.strip() for c in classifiers.split(",") if c.strip()), panel_bootstrap=panel_bootstrap,
        comparators=tuple(c.strip() for c in comparators.split(",") if c.strip()),
        workers=workers or os.cpu_count() or 1, transforms=tuple(t for t in transform.split(",") if t.strip()),
    )  # fmt: skip
    deep = None
    if dl != "none":
        deep = DeepConfig(arch=dl, dual=dl_dual, epochs=dl_epochs, crop_vox=dl_crop_vox, widen_factor=dl_widen, seed=seed,
                          device="cuda" if device.startswith("cuda") else "cpu")  # fmt: skip
    with logging_redirect_tqdm():
        results = evaluate_cohort(cohort, output, radiomics=rcfg, modeling=mcfg, deep=deep, time_unit=time_unit,
                                  features=features, features_sr=features_sr, response_ties=response_ties,
                                  stage_order=parse_stage_order(stage_order or []), progress=True,
                                  response_codes=parse_response_codes(response_codes))  # fmt: skip
    from srgan3d.study.report import terminal_summary

    typer.echo(terminal_summary(results))
    extracted = ", features_*.csv" if results.radiomics.extracted else ""
    typer.echo(f"\nreport: {output / 'report.html'}; data: results.json, predictions.csv, coefficients.csv{extracted}")


@clear_errors
def report(
    output: Annotated[Path, typer.Argument(metavar="OUTDIR", help="An evaluate output folder (holding results.json).")],
) -> None:
    """Re-render report.html from results.json alone."""
    from srgan3d.study.report import write_report

    path = write_report(output)
    typer.echo(f"wrote {path}")
