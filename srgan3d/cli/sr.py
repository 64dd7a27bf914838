"""The SR wing's commands: `upscale`, `benchmark`, `merge-manifests`, `info`, `train`, `export`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm.contrib.logging import logging_redirect_tqdm

from srgan3d.cli.common import TP, UP, clear_errors, parse_ints, parse_shard
from srgan3d.sr.config import TrainConfig, UpscaleConfig


@clear_errors
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
    ] = UP.method,
    weights: Annotated[
        str, typer.Option(help="Weights name (see `srgan3d info`) or path to a .pt.")
    ] = UP.weights,
    scale: Annotated[
        str,
        typer.Option(help="Factor: 2, or one per axis such as 1,1,2; 'through-plane' = thickest axis only."),
    ] = "2",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = UP.device,
    window: Annotated[
        str | None,
        typer.Option(
            help="Input window per axis for the generator, e.g. 64 or 96,96,48 (default: from memory)."
        ),
    ] = None,
    sw_batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = UP.sw_batch_size,
    overlap: Annotated[float, typer.Option(help="Window overlap fraction (>= 0.25).")] = UP.overlap,
    amp: Annotated[
        bool,
        typer.Option(help="bfloat16 autocast on CUDA and on CPUs with bf16 matrix units (AMX/AVX512-BF16); fp32 elsewhere."),
    ] = UP.amp,
    dtype: Annotated[
        str,
        typer.Option(
            help="Output data type: float32, or input (the input's integer type, rounded and clipped; "
            "a scaled input keeps a fitted scl_slope/scl_inter).",
        ),
    ] = UP.dtype,
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="channels_last_3d memory format for the generator (default: on the CPU, off on CUDA).",
        ),
    ] = UP.channels_last,
    cudnn_benchmark: Annotated[
        bool, typer.Option(help="Let cuDNN autotune per scan shape (pays when many scans share one shape).")
    ] = UP.cudnn_benchmark,
    overwrite: Annotated[
        bool, typer.Option(help="Replace existing outputs instead of skipping them.")
    ] = UP.overwrite,
    compress: Annotated[
        bool, typer.Option(help="Write .nii.gz (gzip level 1) or .nii (--no-compress).")
    ] = UP.compress,
    output_format: Annotated[
        str,
        typer.Option(help="nifti, or dicom: a DICOM series in gets a derived DICOM series out (new series, same "
                          "study and frame of reference: PACS/OHIF/Slicer place it on the original); NIfTI in, NIfTI out."),
    ] = UP.output_format,
    dc: Annotated[
        bool,
        typer.Option(
            help="k-space data consistency of the generator's output: the band the scan measured is "
            "kept exactly, the network adds only what lies beyond it (--no-dc: the raw network output)."
        ),
    ] = UP.dc,
    self_supervised_minutes: Annotated[
        float, typer.Option(help="--method self-supervised: training minutes per scan.")
    ] = UP.self_supervised_minutes,
    slice_profile: Annotated[
        str | None,
        typer.Option(help="Through-plane: boxcar or gaussian (FWHM = thickness); default: the weights' own, else boxcar."),
    ] = UP.slice_profile,
    slice_thickness: Annotated[
        float | None,
        typer.Option(help="Through-plane: slice thickness in mm (default: a DICOM series' SliceThickness, else the spacing)."),
    ] = UP.slice_thickness_mm,
    adapt: Annotated[
        int,
        typer.Option(
            "--adapt",
            help="Fine-tune a copy of the generator on each scan for this many steps first (0: off). No "
            "measured gain: with data consistency it scored 0.2-0.4 dB below the shipped weights alone on held-out "
            "abdominal MRI, and on contrast-enhanced T1 no better (benchmarks/RESULTS.md); kept for experiments. "
            "For a site's protocol, fine-tune once with `srgan3d train --init` instead.",
        ),
    ] = UP.adapt_steps,
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
    factors = (1, 1, 2) if through_plane else parse_ints(scale, "--scale")
    config = UpscaleConfig(
        method=method, weights=weights, scale=factors, through_plane=through_plane, device=device,
        window=parse_ints(window, "--window") if window else None, sw_batch_size=sw_batch_size,
        overlap=overlap, amp=amp, overwrite=overwrite, compress=compress, shard=parse_shard(shard), output_format=output_format,
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




@clear_errors
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
            shape=parse_ints(shape, "--shape"), device=device, windows=ints(windows), batches=ints(batches),
            repeats=repeats, end_to_end=end_to_end, weights=weights, folder=folder,
            folder_shape=parse_ints(folder_shape, "--folder-shape") if folder_shape else None,
            memory_gb=memory_gb,
        )  # fmt: skip
    with logging_redirect_tqdm():
        result = run_benchmark(cfg, progress=True)
    write_text_atomic(output / "benchmark.json", json.dumps(result.to_dict(), indent=2))
    write_text_atomic(output / "benchmark.md", result.table + "\n")
    typer.echo(result.table)
    typer.echo(f"\nwritten: {output / 'benchmark.json'}, {output / 'benchmark.md'}")


@clear_errors
def merge_manifests_cmd(
    output: Annotated[
        Path, typer.Argument(metavar="OUTDIR", help="The -o folder that the shards of `upscale --shard` wrote to.")
    ],
) -> None:
    """Join the shard manifests of one output folder into manifest.csv."""
    from srgan3d.sr.upscale import merge_manifests

    path = merge_manifests(output)
    typer.echo(f"wrote {path}")


@clear_errors
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


@clear_errors
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
            f"through-plane --weights RUN/<name>.pt`. Budget: --minutes (default {TP.minutes:g}).",
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

    from srgan3d.sr.protocol import train_protocol

    given: dict[str, Any] = dict(minutes=minutes, seed=seed, amp=amp, init=init)
    cfg = replace(TP, **{k: v for k, v in given.items() if v is not None})
    with logging_redirect_tqdm():
        model = train_protocol(data, output, cfg, profile=slice_profile, thickness_mm=slice_thickness,
                               device=device or "cpu", progress=True)  # fmt: skip
    fit = model.fit
    typer.echo(f"wrote {model.weights} ({len(model.scans)} scans, {fit.steps} steps): {fit.gain_db:+.2f} dB over "
               f"B-spline + consistency on {fit.held_out_planes} held-out in-plane planes")  # fmt: skip


@clear_errors
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
