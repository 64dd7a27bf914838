"""The `srgan3d` command line: thin commands over the library's functions."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from tqdm.contrib.logging import logging_redirect_tqdm

from srgan3d.sr.config import ThroughPlaneConfig, TrainConfig, UpscaleConfig
from srgan3d.study.config import (
    DEFAULT_TEST_SIZE,
    DEFAULT_TIME_UNIT,
    EXTENDED_FEATURES,
    DeepConfig,
    ModelingConfig,
    RadiomicsConfig,
)

# Every option's default is its config's (one source of truth): the CLI shows, the library uses.
_UP, _RAD, _MOD, _DEEP, _TP = UpscaleConfig(), RadiomicsConfig(), ModelingConfig(), DeepConfig(), ThroughPlaneConfig()

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="3D super-resolution of liver MRI and radiomics response evaluation.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps cleanly at 80 columns, no <bool> metavars
)
_state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from srgan3d import __version__

        typer.echo(f"srgan3d {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )


def _clear_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Every error a command raises becomes one clear line and exit code 2 (`_fail`); typer's own
    exits and bad-parameter messages pass through."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes one clear line
            _fail(exc)

    return wrapper


def _fail(exc: BaseException) -> NoReturn:
    """One clear line and a non-zero exit; the traceback only with --debug."""
    if _state["debug"]:
        raise exc
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_ints(text: str, what: str) -> tuple[int, int, int]:
    try:
        vals = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be integers like 2 or 2,2,2, not {text!r}") from None
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3 or any(v < 1 for v in vals):
        raise typer.BadParameter(f"{what} must be one or three positive integers, not {text!r}")
    return tuple(vals)  # type: ignore[return-value]


@app.command(short_help="Double the resolution of scans; exact geometry, manifest.")
@_clear_errors
def upscale(
    inputs: Annotated[
        list[Path], typer.Argument(metavar="INPUT", help="NIfTI, NRRD or MetaImage files, DICOM series folders, or folders to search.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (created).")],
    method: Annotated[
        str,
        typer.Option(
            help="auto (the generator where its model card records a gain over sinc on held-out real "
            "abdominal MRI, else sinc; with --scale through-plane: through-plane --weights of the scan's "
            "protocol where their card records a held-out gain, else bspline-consistent), generator, "
            "self-supervised (through-plane: a network learnt from each scan's own in-plane planes, used "
            "where its held-out planes beat bspline-consistent), bspline-consistent (through-plane: cubic "
            "B-spline along the slices made consistent with the slice profile), or a baseline: sinc, "
            "tricubic, trilinear, nearest."
        ),
    ] = _UP.method,
    weights: Annotated[
        str, typer.Option(help="Weights name (see `srgan3d info`) or path to a .pt.")
    ] = _UP.weights,
    scale: Annotated[
        str,
        typer.Option(help="Factor: 2, or one per axis such as 1,1,2; 'through-plane' = thickest axis only."),
    ] = "2",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = _UP.device,
    window: Annotated[
        str | None,
        typer.Option(
            help="Input window per axis for the generator, e.g. 64 or 96,96,48 (default: from memory)."
        ),
    ] = None,
    sw_batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = _UP.sw_batch_size,
    overlap: Annotated[float, typer.Option(help="Window overlap fraction (>= 0.25).")] = _UP.overlap,
    amp: Annotated[
        bool,
        typer.Option(help="bfloat16 autocast on CUDA and on CPUs with bf16 matrix units (AMX/AVX512-BF16); fp32 elsewhere."),
    ] = _UP.amp,
    dtype: Annotated[
        str,
        typer.Option(
            help="Output data type: float32, or input (the input's integer type, rounded and clipped; "
            "a scaled input keeps a fitted scl_slope/scl_inter).",
        ),
    ] = _UP.dtype,
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="channels_last_3d memory format for the generator (default: on the CPU, off on CUDA).",
        ),
    ] = _UP.channels_last,
    cudnn_benchmark: Annotated[
        bool, typer.Option(help="Let cuDNN autotune per scan shape (pays when many scans share one shape).")
    ] = _UP.cudnn_benchmark,
    overwrite: Annotated[
        bool, typer.Option(help="Replace existing outputs instead of skipping them.")
    ] = _UP.overwrite,
    compress: Annotated[
        bool, typer.Option(help="Write .nii.gz (gzip level 1) or .nii (--no-compress).")
    ] = _UP.compress,
    output_format: Annotated[
        str,
        typer.Option(help="nifti, or dicom: a DICOM series in gets a derived DICOM series out (new series, same "
                          "study and frame of reference: PACS/OHIF/Slicer place it on the original); NIfTI in, NIfTI out."),
    ] = _UP.output_format,
    dc: Annotated[
        bool,
        typer.Option(
            help="k-space data consistency of the generator's output: the band the scan measured is "
            "kept exactly, the network adds only what lies beyond it (--no-dc: the raw network output)."
        ),
    ] = _UP.dc,
    self_supervised_minutes: Annotated[
        float, typer.Option(help="--method self-supervised: training minutes per scan.")
    ] = _UP.self_supervised_minutes,
    slice_profile: Annotated[
        str | None,
        typer.Option(help="Through-plane: boxcar or gaussian (FWHM = thickness); default: the weights' own, else boxcar."),
    ] = _UP.slice_profile,
    slice_thickness: Annotated[
        float | None,
        typer.Option(help="Through-plane: slice thickness in mm (default: a DICOM series' SliceThickness, else the spacing)."),
    ] = _UP.slice_thickness_mm,
    adapt: Annotated[
        int,
        typer.Option(
            "--adapt",
            help="Fine-tune a copy of the generator on each scan for this many steps first (0: off). No "
            "measured gain: with data consistency it scored 0.2-0.4 dB below the shipped weights alone on held-out "
            "abdominal MRI, and on contrast-enhanced T1 no better (benchmarks/RESULTS.md); kept for experiments. "
            "For a site's protocol, fine-tune once with `srgan3d train --init` instead.",
        ),
    ] = _UP.adapt_steps,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: process the K-th of N parts of the scan list (one per GPU, node or array job)."
        ),
    ] = None,
) -> None:
    """Double the resolution of every scan; geometry exact, manifest.csv beside the outputs."""
    from srgan3d.sr.upscale import upscale_files

    through_plane = scale == "through-plane"
    factors = (1, 1, 2) if through_plane else _parse_ints(scale, "--scale")
    config = UpscaleConfig(
        method=method, weights=weights, scale=factors, through_plane=through_plane, device=device,
        window=_parse_ints(window, "--window") if window else None, sw_batch_size=sw_batch_size,
        overlap=overlap, amp=amp, overwrite=overwrite, compress=compress, shard=_parse_shard(shard), output_format=output_format,
        adapt_steps=adapt, dc=dc, dtype=dtype, channels_last=channels_last, cudnn_benchmark=cudnn_benchmark,
        self_supervised_minutes=self_supervised_minutes, slice_profile=slice_profile,
        slice_thickness_mm=slice_thickness,
    )  # fmt: skip
    from srgan3d.sr.upscale import BatchInterrupted

    try:
        with logging_redirect_tqdm():
            result = upscale_files(inputs, output, config, progress=True)
    except BatchInterrupted as stop:
        typer.secho(str(stop), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(stop.exit_code) from None
    n_ok = sum(r.status == "ok" for r in result.rows)
    n_skip = sum(r.status == "skipped" for r in result.rows)
    typer.echo(
        f"{n_ok} upscaled, {n_skip} skipped (already done), {len(result.failed)} failed; manifest: {result.manifest}"
    )
    for r in result.failed:
        msg = r.error if r.input in r.error else f"{r.input}: {r.error}"
        typer.secho(f"failed: {msg}", fg=typer.colors.RED, err=True)
    if result.failed:
        raise typer.Exit(1)


def _through_plane_scale(scale: str) -> bool:
    if scale not in ("2", "through-plane"):
        raise typer.BadParameter(f"--scale must be 2 or through-plane, not {scale!r}")
    return scale == "through-plane"


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"--shard must look like 2/8, not {text!r}") from None
    return k, n


@app.command(short_help="Throughput and memory of the upscale engine here.")
@_clear_errors
def benchmark(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for benchmark.json and benchmark.md.")
    ] = Path("benchmark_out"),
    shape: Annotated[str, typer.Option(help="LR input shape.")] = "320,320,80",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    windows: Annotated[
        str | None, typer.Option(help="Window edges to sweep, e.g. 64,96,128 (0 = automatic).")
    ] = None,
    batches: Annotated[str | None, typer.Option(help="Window batch sizes to sweep, e.g. 1,2,4.")] = None,
    repeats: Annotated[int, typer.Option(help="Timed repeats per setting (median).")] = 3,
    end_to_end: Annotated[bool, typer.Option(help="Also time read -> upscale -> write.")] = True,
    weights: Annotated[
        str | None, typer.Option(help="Time installed weights instead of an untrained generator.")
    ] = None,
    folder: Annotated[
        int | None,
        typer.Option(help="Scans in the folder run (device-busy fraction); default 20 on CUDA, 0 on CPU."),
    ] = None,
    folder_shape: Annotated[str | None, typer.Option(help="Shape of the folder run's scans (default --shape).")] = None,
    memory_gb: Annotated[
        float | None, typer.Option(help="Cap this process's GPU memory (GB), to show a size fits a smaller card.")
    ] = None,
    quick: Annotated[bool, typer.Option(help="A few-second CPU smoke run.")] = False,
) -> None:
    """Throughput and memory of the upscale engine on this machine: the cold first call, a sweep of
    windows and batches (and precisions, torch.compile, channels_last and cuDNN autotuning on CUDA),
    the stages of one volume, end to end, a folder run, and trilinear as the floor."""
    import json

    from srgan3d.atomic import write_text_atomic
    from srgan3d.sr.bench import BenchmarkConfig, run_benchmark

    def ints(text: str | None) -> tuple[int, ...] | None:
        return tuple(int(v) for v in text.split(",")) if text else None

    if quick:
        cfg = BenchmarkConfig.quick()
    else:
        cfg = BenchmarkConfig(
            shape=_parse_ints(shape, "--shape"), device=device, windows=ints(windows), batches=ints(batches),
            repeats=repeats, end_to_end=end_to_end, weights=weights, folder=folder,
            folder_shape=_parse_ints(folder_shape, "--folder-shape") if folder_shape else None,
            memory_gb=memory_gb,
        )  # fmt: skip
    with logging_redirect_tqdm():
        result = run_benchmark(cfg, progress=True)
    write_text_atomic(output / "benchmark.json", json.dumps(result.to_dict(), indent=2))
    write_text_atomic(output / "benchmark.md", result.table + "\n")
    typer.echo(result.table)
    typer.echo(f"\nwritten: {output / 'benchmark.json'}, {output / 'benchmark.md'}")


@app.command("merge-manifests", short_help="Join the shard manifests of one output folder.")
@_clear_errors
def merge_manifests_cmd(
    output: Annotated[
        Path, typer.Argument(metavar="OUTDIR", help="The -o folder that the shards of `upscale --shard` wrote to.")
    ],
) -> None:
    """Join the shard manifests of one output folder into manifest.csv."""
    from srgan3d.sr.upscale import merge_manifests

    path = merge_manifests(output)
    typer.echo(f"wrote {path}")


@app.command()
@_clear_errors
def info() -> None:
    """Versions, compute device and installed weights."""
    import torch

    from srgan3d.provenance import versions
    from srgan3d.sr.weights import auto_eligibility, list_weights, weights_dirs

    for k, v in versions().items():
        typer.echo(f"{k:20s} {v}")
    if torch.cuda.is_available():
        typer.echo(f"{'device':20s} cuda: {torch.cuda.get_device_name(0)}")
    else:
        typer.echo(f"{'device':20s} cpu ({torch.get_num_threads()} threads); no CUDA device")
    found = list_weights()
    typer.echo(f"{'weights searched in':20s} {', '.join(str(d) for d in weights_dirs())}")
    if not found:
        typer.echo(f"{'weights':20s} none installed (upscale --method sinc works without them)")
    for w in found:
        ok, why = auto_eligibility(w)
        lic = w.licence
        if lic.opt_in:
            ok, why = False, "opt-in weights: name them with --weights"
        typer.echo(
            f"{'weights':20s} {w.name}  scale {w.card.generator.scale if w.card.generator else None}  sha256 {w.sha256[:12]}  "
            f"licence {lic.licence}{' (opt-in)' if lic.opt_in else ''}  "
            f"--method auto: {'uses it' if ok else 'not used'} ({why})"
        )


@app.command(short_help="The whole study on a built-in synthetic cohort.")
@_clear_errors
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


@app.command("synth-cohort", short_help="Write a synthetic cohort (simulated responses).")
@_clear_errors
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


@app.command(short_help="Radiomics pre/post SR, models, DeLong, DCA, report.")
@_clear_errors
def evaluate(
    cohort: Annotated[
        Path, typer.Argument(metavar="COHORT_CSV", help="Cohort table (CSV, or an .xlsx/.xls/.ods workbook; BOOK.xlsx#Sheet for another sheet): patient_id, "
                               "image, mask, response, clinical columns.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    spacing: Annotated[
        str, typer.Option(help="native: each image's own grid; common: both resampled to one isotropic grid.")
    ] = _RAD.spacing,
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
    ] = _RAD.method,
    weights: Annotated[str, typer.Option(help="Generator weights name or path (through-plane weights with --scale through-plane).")] = _RAD.weights,
    scale: Annotated[
        str, typer.Option(help="2 (isotropic, the generator's) or through-plane (2x along each scan's slice axis only).")
    ] = "through-plane" if _RAD.through_plane else "2",
    through_plane_minutes: Annotated[
        float, typer.Option(help="--scale through-plane --method self-supervised: training minutes per scan.")
    ] = _RAD.through_plane_minutes,
    margin: Annotated[
        int, typer.Option(help="LR voxels around each VOI's bounding box to super-resolve.")
    ] = _RAD.margin_vox,
    clinical: Annotated[
        str, typer.Option(help="Candidate clinical variables, comma-separated (numeric or yes/no columns).")
    ] = ",".join(_MOD.clinical),
    transform: Annotated[
        str,
        typer.Option(help="How clinical variables are modelled: COLUMN=log10 or COLUMN=none, comma-separated. Columns "
                          "not named follow the rule: positive, skewness > 2 -> log10 (the report says which)."),
    ] = "",
    test_size: Annotated[
        float | None,
        typer.Option(help=f"Fraction held out for testing (stratified; default {DEFAULT_TEST_SIZE:g}). Not with a set column."),
    ] = _MOD.test_size,
    seed: Annotated[int, typer.Option(help="Seed of the split, cross-validation and bootstrap.")] = _MOD.seed,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the optimism-corrected AUC (0: skip).")
    ] = _MOD.n_bootstrap,
    workers: Annotated[int, typer.Option(help="Processes for feature extraction (default: CPU cores).")] = 0,
    device: Annotated[str, typer.Option(help="Device of the generator: auto, cpu, cuda[:N].")] = "auto",
    classifiers: Annotated[
        str, typer.Option(help="Classifier panel on the selected features: any of lr,svm,knn,xgboost,mlp ('' = none).")
    ] = ",".join(_MOD.classifiers),
    panel_bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of the panel's optimism-corrected AUC (0: skip).")
    ] = _MOD.panel_bootstrap,
    comparators: Annotated[
        str, typer.Option(help="Ordinal staging columns (e.g. bclc,child_pugh) compared with the best model.")
    ] = ",".join(_MOD.comparators),
    peritumoral: Annotated[
        str, typer.Option(help="Peritumoral ring widths in mm, e.g. 3,10,20 (clipped to a liver_mask column).")
    ] = ",".join(f"{w:g}" for w in _RAD.peritumoral),
    dl: Annotated[
        str, typer.Option(help="3D ResNet response model before/after SR and DLRCR: none, resnet10, resnet18, resnet34.")
    ] = "none",
    dl_dual: Annotated[
        str | None, typer.Option(help="Second branch of the deep model: ring (a 10 mm shell) or image_2 (a column).")
    ] = None,
    dl_epochs: Annotated[int, typer.Option(help="Deep model: at most this many epochs (early stopping).")] = _DEEP.epochs,
    dl_crop_vox: Annotated[int, typer.Option(help="Deep model: voxels per edge of the 96 mm tumour cube.")] = _DEEP.crop_vox,
    dl_widen: Annotated[float, typer.Option(help="Deep model: ResNet width factor (1 = standard).")] = _DEEP.widen_factor,
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
        through_plane=_through_plane_scale(scale), through_plane_minutes=through_plane_minutes,
    )  # fmt: skip
    rcfg.check_params()
    if shard is not None and not extract_only:
        raise typer.BadParameter("--shard needs --extract-only (the shards extract; one run without both fits)")
    if extract_only:
        from srgan3d.study.evaluation import extract_shard

        if features is not None:
            raise typer.BadParameter("--extract-only extracts from the images: it does not take --features")
        with logging_redirect_tqdm():
            done = extract_shard(cohort, output, _parse_shard(shard) or (1, 1), radiomics=rcfg,
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


@app.command()
@_clear_errors
def report(
    output: Annotated[Path, typer.Argument(metavar="OUTDIR", help="An evaluate output folder (holding results.json).")],
) -> None:
    """Re-render report.html from results.json alone."""
    from srgan3d.study.report import write_report

    path = write_report(output)
    typer.echo(f"wrote {path}")


@app.command(short_help="Train or fine-tune the generator on your scans.")
@_clear_errors
def train(
    data: Annotated[list[Path], typer.Argument(metavar="SCAN", help="High-resolution training scans or folders.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Run folder (checkpoint, log.csv, config.json).")
    ],
    val: Annotated[
        list[Path] | None, typer.Option(metavar="SCAN", help="Held-out high-resolution scans for validation (repeat the option); without it "
                     f"{TrainConfig().holdout:.0%} of the scans (by subject), or a slab of a single scan, is held out.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML recipe; keys are TrainConfig fields (unknown keys are an error)."),
    ] = None,
    pretrain_steps: Annotated[int | None, typer.Option(help="Stage 1 (L1 + gradient) steps.")] = None,
    gan_steps: Annotated[int | None, typer.Option(help="Stage 2 (adversarial) steps.")] = None,
    patch_size: Annotated[int | None, typer.Option(help="Low-resolution patch edge, voxels.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Patches per step.")] = None,
    phantoms: Annotated[
        int | None, typer.Option(help="Synthetic abdominal phantoms added to the data.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of patches, degradations and weights.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda[:N].")] = None,
    minutes: Annotated[
        float | None,
        typer.Option(help="Stop after this many minutes of training (wherever the step count would end it)."),
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="bf16 autocast for the generator on CUDA and on CPUs with bf16 units (the "
            "recipe's amp, default on); --no-amp trains in fp32.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run folder's checkpoint.")] = False,
    init: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune: start from these weights (name, e.g. srgan3d_x2, or .pt path); "
            "the generator architecture is taken from their model card."
        ),
    ] = None,
    through_plane: Annotated[
        bool,
        typer.Option(
            "--through-plane",
            help="Train one through-plane network on thick-slice scans of one protocol (their own in-plane "
            "planes teach it) and write RUN/<RUN name>.pt with its model card; apply with `upscale --scale "
            f"through-plane --weights RUN/<name>.pt`. Budget: --minutes (default {_TP.minutes:g}).",
        ),
    ] = False,
    slice_profile: Annotated[
        str, typer.Option(help="--through-plane: boxcar or gaussian (FWHM = the slice thickness).")
    ] = "boxcar",
    slice_thickness: Annotated[
        float | None,
        typer.Option(help="--through-plane: slice thickness in mm (default: DICOM SliceThickness, else the spacing)."),
    ] = None,
) -> None:
    """Train or fine-tune the generator on your own high-resolution scans (multi-GPU: torchrun), or
    a through-plane network for one protocol (--through-plane)."""
    from srgan3d.sr.train import TrainConfig
    from srgan3d.sr.train import train as run_training

    if through_plane:
        _train_through_plane(data, output, minutes=minutes, seed=seed, device=device, amp=amp, init=init,
                             slice_profile=slice_profile, slice_thickness=slice_thickness)  # fmt: skip
        return

    overrides: dict[str, Any] = {
        k: v
        for k, v in dict(
            pretrain_steps=pretrain_steps, gan_steps=gan_steps, patch_size=patch_size, batch_size=batch_size,
            phantoms=phantoms, seed=seed, device=device, amp=amp, minutes=minutes,
        ).items()
        if v is not None
    }  # fmt: skip
    if init is not None:
        from srgan3d.sr.weights import find_weights

        arch = (g.to_dict() if (g := find_weights(init).card.generator) is not None else {})
        overrides.update(
            {
                k: v
                for k, v in arch.items()
                if k in ("channels", "n_blocks", "upsample_channels", "scale", "skip")
            }
        )
    cfg = TrainConfig.from_yaml(config, **overrides) if config else TrainConfig(**overrides)
    with logging_redirect_tqdm():
        result = run_training(data, output, cfg, val=val or [], resume=resume, init=init, progress=True)
    metrics = result.validation
    shown = (f"validation PSNR {metrics['psnr']:.2f} dB (zero-filled k-space {metrics['psnr_sinc']:.2f})"
             if "psnr" in metrics else "no validation data")  # fmt: skip
    typer.echo(f"trained to step {result.step}{' (the --minutes budget ended it)' if result.stopped_by_budget else ''}; "
               f"{shown}; held out: {result.validation_split}")


def _train_through_plane(data: list[Path], output: Path, *, minutes: float | None, seed: int | None,
                         device: str | None, amp: bool | None, init: str | None, slice_profile: str,
                         slice_thickness: float | None) -> None:  # fmt: skip
    from dataclasses import replace

    from srgan3d.sr.protocol import train_protocol

    given: dict[str, Any] = dict(minutes=minutes, seed=seed, amp=amp, init=init)
    cfg = replace(_TP, **{k: v for k, v in given.items() if v is not None})
    with logging_redirect_tqdm():
        model = train_protocol(data, output, cfg, profile=slice_profile, thickness_mm=slice_thickness,
                               device=device or "cpu", progress=True)  # fmt: skip
    fit = model.fit
    typer.echo(f"wrote {model.weights} ({len(model.scans)} scans, {fit.steps} steps): {fit.gain_db:+.2f} dB over "
               f"B-spline + consistency on {fit.held_out_planes} held-out in-plane planes")  # fmt: skip


@app.command(short_help="Write a run's generator as weights + model card.")
@_clear_errors
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A training run folder.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Weights file to write, e.g. weights/NAME.pt.")
    ],
    raw: Annotated[bool, typer.Option(help="Export the raw generator instead of its EMA.")] = False,
    description: Annotated[str, typer.Option(help="One paragraph for the model card.")] = "",
    checkpoint: Annotated[
        str, typer.Option(help="last (checkpoint.pt) or best (best.pt: the highest mean validation PSNR).")
    ] = "last",
) -> None:
    """Write a run's generator (EMA) as weights plus its model card (.json and .md)."""
    from srgan3d.sr.export import export_weights

    path = export_weights(run_dir, output, use_ema=not raw, description=description, checkpoint=checkpoint)
    typer.echo(f"wrote {path} and its model card")


if __name__ == "__main__":  # pragma: no cover
    app()
