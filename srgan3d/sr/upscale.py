"""Batches of files: discovery, the manifest, resume, shards, and reading/writing beside the device.

`upscale_files` runs a folder batch through `srgan3d.sr.engine` (one volume at a time), skips
finished outputs, reports a bad scan and goes on, and writes `manifest.csv`.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from srgan3d.discovery import ScanSource, find_scans
from srgan3d.io import output_array, write_volume
from srgan3d.provenance import remove_stale_temps, versions, write_csv_atomic
from srgan3d.sr.config import SELF_SUPERVISED, UpscaleConfig
from srgan3d.sr.device import resolve_device
from srgan3d.sr.engine import GeneratorEngine, StageClock, axes_for_generator, upscale_volume
from srgan3d.sr.methods import resolve_method_and_weights, say_once
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.weights import WeightsError, WeightsInfo, find_weights
from srgan3d.volume import Volume, VolumeError

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "input", "output", "status", "error", "note", "method", "scale", "input_shape", "output_shape",
    "input_spacing_mm", "output_spacing_mm", "orientation", "seconds", "date", "device", "precision", "weights",
    "weights_sha256", "data_consistency", "adapt_steps", "adapt_seconds", "slice_profile",
    "self_supervised_budget_min", "self_supervised_steps", "self_supervised_seconds", "output_dtype",
    "nonfinite_voxels", "clipped_voxels", "dtype_clipped_voxels", "srgan3d", "torch", "monai",
)  # fmt: skip
#: Row statuses: the output exists and this row's provenance made it (ok); it existed before this
#: run and was kept, provenance from the run that made it (skipped); the last attempt failed
#: (failed); not processed yet (pending: queued, or left when a run was interrupted).
STATUSES = ("ok", "skipped", "failed", "pending")


class BatchInterrupted(Exception):
    """SIGTERM or SIGINT stopped a batch; the manifest was written first. `exit_code` is 128 +
    the signal number (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


# --------------------------------------------------------------------------------------------
# Batches of files


@dataclass
class ManifestRow:
    input: str
    output: str = ""
    status: str = ""
    error: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {c: "" for c in MANIFEST_COLUMNS}
        d.update({k: v for k, v in self.values.items() if k in d})
        d.update(input=self.input, output=self.output, status=self.status, error=self.error)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> ManifestRow:
        core = ("input", "output", "status", "error")
        return cls(d["input"], d.get("output", ""), d.get("status", ""), d.get("error", ""),
                   {k: v for k, v in d.items() if k not in core and v is not None})  # fmt: skip


@dataclass
class BatchResult:
    rows: list[ManifestRow]
    manifest: Path

    @property
    def failed(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.status == "failed"]


def output_path_for(src: ScanSource, outdir: Path, *, suffix: str, compress: bool) -> Path:
    ext = ".nii.gz" if compress else ".nii"
    return outdir / src.relative.parent / f"{src.name}{suffix}{ext}"


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> Path:
    """Write the manifest CSV atomically, one row per input, sorted by input."""
    return write_csv_atomic(path, (r.as_dict() for r in sorted(rows, key=lambda r: r.input)), MANIFEST_COLUMNS)


def read_manifest(path: Path) -> dict[str, ManifestRow]:
    """The rows of an existing manifest by input (empty when there is none). A manifest that
    cannot be parsed is set aside as `<name>.unreadable-<time>` with a warning, never lost."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [ManifestRow.from_dict(d) for d in csv.DictReader(f)]
    except (OSError, csv.Error, KeyError, UnicodeDecodeError) as exc:
        keep = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        path.rename(keep)
        log.warning("%s: not a readable manifest (%s); kept as %s, starting a new one", path, exc, keep)
        return {}
    return {_key(r.input): r for r in rows}


def _key(path: str | Path) -> str:
    """A ledger row's key: the input's absolute path, so that `scans/a.nii.gz` and its absolute
    spelling are one row."""
    return str(Path(path).resolve())



def _weights_installed(name: str) -> bool:
    try:
        find_weights(name)
    except WeightsError:
        return False
    return True




def _self_supervised(vol: Volume, factors: Sequence[int], config: UpscaleConfig) -> tuple[Volume, dict[str, Any]]:
    """Through-plane SR of one scan learnt from its own in-plane planes (`upscale_through_plane`),
    with the manifest values that say how: slice profile, budget, steps, seconds."""
    from srgan3d.sr.through_plane import ThroughPlaneConfig, upscale_through_plane

    axes = [a for a, f in enumerate(factors) if f > 1]
    if len(axes) != 1:
        raise ValueError(f"--method {SELF_SUPERVISED} upscales along one axis; this scan's factors are {tuple(factors)}")
    axis = axes[0]
    cfg = ThroughPlaneConfig(factor=int(factors[axis]), minutes=config.self_supervised_minutes)
    sr, fit = upscale_through_plane(vol, cfg, axis=axis, device=str(resolve_device(config.device)))
    spacing = vol.spacing_mm[axis]
    return sr, {
        "slice_profile": f"boxcar {spacing:.3g} mm (thickness = slice spacing; data consistency to it)",
        "self_supervised_budget_min": f"{config.self_supervised_minutes:g}",
        "self_supervised_steps": fit.steps, "self_supervised_seconds": f"{fit.seconds:.1f}",
    }


def _adapt_and_upscale(
    vol: Volume, factors: tuple[int, ...], engine: GeneratorEngine, config: UpscaleConfig
) -> tuple[Volume, dict[str, float]]:
    """Internal learning on this scan, then upscaling with the adapted copy (the shared engine's
    model is left as it was for the next scan)."""
    from srgan3d.sr.adapt import adapt_generator

    perm = axes_for_generator(factors, tuple(engine.scale))
    moved = Volume(np.ascontiguousarray(np.transpose(vol.data, perm)), vol.affine, vol.meta)
    adapted, info = adapt_generator(engine.model, moved, steps=config.adapt_steps, device=engine.device)
    original = engine.model
    engine.model = adapted
    try:
        sr = upscale_volume(vol, method="generator", factors=factors, engine=engine)
    finally:
        engine.model = original
    log.info("adapted to %s in %.1f s (loss %.4f -> %.4f)", vol.meta.get("source", "scan"), info["seconds"],
             info["loss_first"], info["loss_last"])  # fmt: skip
    return sr, info


def merge_manifests(outdir: str | Path) -> Path:
    """Join the `manifest.shard-K-of-N.csv` files of `outdir` into `manifest.csv` (atomically).

    Raises if shards are missing or of different N, naming them.
    """
    import re

    outdir = Path(outdir)
    found = {}
    for p in sorted(outdir.glob("manifest.shard-*-of-*.csv")):
        m = re.fullmatch(r"manifest\.shard-(\d+)-of-(\d+)\.csv", p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    if not found:
        raise FileNotFoundError(f"no manifest.shard-K-of-N.csv files in {outdir}")
    ns = {n for _, n in found}
    if len(ns) != 1:
        raise ValueError(
            f"{outdir}: shard manifests of different N: {sorted(p.name for p in found.values())}"
        )
    n = ns.pop()
    missing = [k for k in range(1, n + 1) if (k, n) not in found]
    if missing:
        raise FileNotFoundError(
            f"{outdir}: shard(s) {', '.join(f'{k}/{n}' for k in missing)} have no manifest yet; run them first"
        )
    rows: list[dict[str, str]] = []
    for k in range(1, n + 1):
        with found[(k, n)].open(newline="") as f:
            rows.extend(csv.DictReader(f))
    rows.sort(key=lambda r: r["input"])
    return write_csv_atomic(outdir / "manifest.csv", rows, MANIFEST_COLUMNS)


def check_writable(outdir: Path) -> None:
    """Create `outdir` and prove a file can be written there, or raise with the fix."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / f".srgan3d-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"{outdir}: cannot write outputs there ({exc.strerror}); choose another -o folder"
        ) from exc


def _fmt(t: Sequence[float], digits: int = 4) -> str:
    return "x".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in t)


def _method_and_engine(config: UpscaleConfig) -> tuple[str, GeneratorEngine | None, dict[str, Any]]:
    """The method `config` resolves to, the engine for it (weights and device resolved once), and
    the manifest values every row shares."""
    resolve_device(config.device)  # --device cuda without CUDA is refused whatever the method
    if config.method == SELF_SUPERVISED:
        vers = versions()
        return SELF_SUPERVISED, None, {"method": SELF_SUPERVISED, "srgan3d": vers["srgan3d"], "torch": vers["torch"],
                                       "monai": vers["monai"], "device": str(resolve_device(config.device)),
                                       "data_consistency": "slice profile"}  # fmt: skip
    method, weights = resolve_method_and_weights(config.method, config.weights)
    if config.through_plane and method == "generator" and config.method == "auto" and not config.adapt_steps:
        scale = tuple(find_weights(weights).card.get("generator", {}).get("scale", (2, 2, 2)))
        if sorted(scale) != [1, 1, max(config.scale)]:
            # Never fail a scan for want of through-plane weights: cubic along the slices, said once.
            say_once(
                f"--method auto with --scale through-plane: the installed weights {find_weights(weights).name} are "
                f"{'x'.join(map(str, scale))}, not a through-plane model; using cubic interpolation along the slice "
                "axis (--method tricubic, which is cubic along that axis only)"
            )
            method = "tricubic"
    if config.adapt_steps and method != "generator":
        if config.method not in ("auto", "generator"):
            raise ValueError(f"--adapt needs the generator; it cannot adapt --method {config.method}")
        method = "generator"
    vers = versions()
    common: dict[str, Any] = {
        "method": method, "srgan3d": vers["srgan3d"], "torch": vers["torch"], "monai": vers["monai"],
        "device": "cpu",
    }  # fmt: skip
    if method != "generator":
        return method, None, common
    options: dict[str, Any] = dict(
        window=config.window, sw_batch_size=config.sw_batch_size, overlap=config.overlap,
        amp=config.amp, dc=config.dc, channels_last=config.channels_last,
        cudnn_benchmark=config.cudnn_benchmark,
    )  # fmt: skip
    if config.adapt_steps and not _weights_installed(config.weights):
        # zero detail branch: starts as zero-filled k-space
        engine = GeneratorEngine(Generator(GeneratorConfig()), device=resolve_device(config.device), **options)
        engine.weights = WeightsInfo("untrained (adapted per scan)", Path("-"), {"sha256": ""})
    else:
        engine = GeneratorEngine.from_weights(weights, device=config.device, **options)
    assert engine.weights is not None
    common.update(
        device=str(engine.device), precision=engine.precision, weights=engine.weights.name,
        weights_sha256=engine.weights.sha256, data_consistency="yes" if config.dc else "no",
    )  # fmt: skip
    return method, engine, common


def _plan(
    sources: Sequence[ScanSource],
    outdir: Path,
    config: UpscaleConfig,
    common: dict[str, Any],
    previous: dict[str, ManifestRow],
) -> tuple[list[ManifestRow], list[tuple[ScanSource, Path, ManifestRow]]]:
    """This run's manifest rows, one per scan, and the scans still to do.

    An output that exists is kept (unless `config.overwrite`) and its row keeps the provenance
    of the run that made it, from `previous`; a scan to do is `pending` until its output is
    written.
    """
    suffix = config.suffix or f"_sr{max(config.scale)}x"
    input_files = {s.path.resolve() for s in sources}
    rows: list[ManifestRow] = []
    todo: list[tuple[ScanSource, Path, ManifestRow]] = []
    for src in sources:
        prev = previous.get(_key(src.path))
        # an input the ledger knows keeps its row's output, however it is named on the command
        # line (a file given alone, or its folder): one output per input
        out = _known_output(prev, outdir) or output_path_for(src, outdir, suffix=suffix, compress=config.compress)
        made_it = (prev is not None and bool(prev.output) and _same_file(prev.output, out, outdir)
                   and prev.status in ("ok", "skipped"))  # fmt: skip
        if out.resolve() in input_files:
            row = ManifestRow(str(src.path), "", "failed", "output path is an input file; choose another -o folder",
                              dict(common))  # fmt: skip
        elif out.exists() and not config.overwrite:
            if made_it:
                assert prev is not None
                row = ManifestRow(str(src.path), str(out), "skipped", "", dict(prev.values))
                row.values["note"] = "output kept from an earlier run (use --overwrite to replace it)"
            else:
                row = ManifestRow(str(src.path), str(out), "skipped", "",
                                  {"note": "output exists, made outside this manifest: provenance unknown "
                                           "(use --overwrite to replace it)"})  # fmt: skip
        else:
            row = ManifestRow(str(src.path), "", "pending", "", dict(common))
            if made_it and out.exists():  # --overwrite: the earlier provenance holds until replaced
                assert prev is not None
                row.values["note"] = f"replacing the output of {prev.values.get('date') or 'an earlier run'}"
            todo.append((src, out, row))
        rows.append(row)
    return rows, todo


def _resolve_output(recorded: str, outdir: Path) -> Path:
    """A manifest's output path as a file: absolute as written; a relative one as the run that
    wrote it saw it (from the working folder then), else inside `outdir`."""
    p = Path(recorded)
    if p.is_absolute():
        return p
    return p if p.exists() or not (outdir / p).exists() else outdir / p


def _same_file(recorded: str, out: Path, outdir: Path) -> bool:
    return _resolve_output(recorded, outdir).resolve() == out.resolve()


def _known_output(prev: ManifestRow | None, outdir: Path) -> Path | None:
    """The output a ledger row names, when it still exists inside `outdir`."""
    if prev is None or not prev.output or prev.status not in ("ok", "skipped", "failed"):
        return None
    p = _resolve_output(prev.output, outdir)
    inside = outdir.resolve() in p.resolve().parents
    return p if inside and p.is_file() else None


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM (what SLURM and `kill` send) and SIGINT (Ctrl-C) raise `BatchInterrupted` in the
    main thread, once: the handlers are restored at the first signal, so a second one acts as
    usual. Elsewhere than the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGINT)
    before = {s: signal.getsignal(s) for s in sigs}

    def handler(signum: int, frame: Any) -> None:
        for s, h in before.items():
            signal.signal(s, h)
        raise BatchInterrupted(signum, f"interrupted by {signal.Signals(signum).name}")

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def upscale_files(
    inputs: Sequence[str | Path],
    outdir: str | Path,
    config: UpscaleConfig | None = None,
    *,
    progress: bool = False,
    clock: StageClock | None = None,
) -> BatchResult:
    """Super-resolve every scan found under `inputs` into `outdir`, mirroring folder structure.

    Finished outputs are skipped unless `config.overwrite`, so an interrupted batch resumes. A scan
    that fails is recorded with its reason and the batch goes on. `manifest.csv` in `outdir` is a
    ledger: one row per input ever processed into that folder, merged on every run (rows of
    inputs not in this run are kept; a kept output keeps the provenance of the run that made it),
    rewritten atomically after each scan with statuses that are true at that moment (`STATUSES`).
    Temporary files of killed runs are removed first (`remove_stale_temps`). `clock` times the
    engine's stages (the benchmark's device-busy fraction).

    Raises:
        FileNotFoundError: an input path does not exist, or no scans were found.
        PermissionError: `outdir` cannot be written.
        BatchInterrupted: SIGTERM or SIGINT; the write under way was finished and the manifest
            written first.
    """
    config = config or UpscaleConfig()
    outdir = Path(outdir)
    sources = find_scans(inputs, exclude=[outdir])
    if not sources:
        raise FileNotFoundError(
            f"no scans found in {', '.join(str(p) for p in inputs)}: expected NIfTI files (.nii, .nii.gz) "
            "or folders of DICOM files"
        )
    check_writable(outdir)
    manifest = outdir / "manifest.csv"
    if config.shard is not None:
        k, n = config.shard
        sources = sources[k - 1 :: n]
        manifest = outdir / f"manifest.shard-{k}-of-{n}.csv"
        log.info("shard %d of %d: %d scans", k, n, len(sources))
    removed = remove_stale_temps(outdir)
    if removed:
        log.warning("removed %d temporary file(s) left by an interrupted run: %s", len(removed),
                    ", ".join(p.name for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))  # fmt: skip
    method, engine, common = _method_and_engine(config)
    winfo = engine.weights if engine is not None else None
    previous = read_manifest(manifest)
    rows, todo = _plan(sources, outdir, config, common, previous)
    ledger = dict(previous)
    ledger.update((_key(r.input), r) for r in rows)

    def save() -> None:
        write_manifest(ledger.values(), manifest)

    save()  # the pending rows are on disk before the first scan starts
    errors = (VolumeError, FileNotFoundError, ValueError, OSError, RuntimeError, MemoryError)
    bar = tqdm(total=len(todo), desc="upscale", unit="scan", disable=not progress)
    try:
        with _stop_on_signals():
            _run_batch(todo, method, engine, winfo, config, previous, errors, bar, save, clock)
    except BatchInterrupted as stop:
        bar.close()
        save()
        counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
        raise BatchInterrupted(
            stop.signum,
            f"{stop}: {counts['ok']} written, {counts['failed']} failed, {counts['skipped']} kept from earlier, "
            f"{counts['pending']} not done (status pending in {manifest}); run the same command again to resume",
        ) from None
    bar.close()
    save()
    return BatchResult(rows, manifest)


def _run_batch(
    todo: list[tuple[ScanSource, Path, ManifestRow]],
    method: str,
    engine: GeneratorEngine | None,
    winfo: WeightsInfo | None,
    config: UpscaleConfig,
    previous: dict[str, ManifestRow],
    errors: tuple[type[BaseException], ...],
    bar: Any,
    save: Callable[[], None],
    clock: StageClock | None,
) -> None:
    """The scans of `todo`, one at a time on the device. Reading (and decompressing) the next scan
    and writing the last one run in background threads while the current one is computed, so the
    device is not idle between scans; gzip, file I/O and torch release the GIL. On
    `BatchInterrupted` the write under way is finished (atomically) before it propagates."""
    reader = ThreadPoolExecutor(max_workers=1)
    writer = ThreadPoolExecutor(max_workers=1)
    pending: list[tuple[Future, ManifestRow, Path, float, dict[str, Any]]] = []

    def fail(row: ManifestRow, exc: BaseException, t0: float) -> None:
        prev = previous.get(_key(row.input))
        if prev is not None and prev.status in ("ok", "skipped") and prev.output and Path(prev.output).exists():
            row.values = dict(prev.values)  # the earlier output and its provenance still stand
            row.output = prev.output
            row.values["note"] = "this run failed; the earlier output is kept"
        else:
            row.output = ""
        row.status, row.error = "failed", str(exc)
        row.values["seconds"] = f"{time.perf_counter() - t0:.2f}"
        log.error("%s", exc)

    def finish() -> None:
        while pending:
            fut, row, out, t0, values = pending[0]
            try:
                fut.result()
                row.values.update(values)
                row.values["seconds"] = f"{time.perf_counter() - t0:.2f}"
                row.values["date"] = datetime.now().isoformat(timespec="seconds")
                row.values.pop("note", None)
                row.status, row.error, row.output = "ok", "", str(out)
            except errors as exc:
                fail(row, exc, t0)
            pending.pop(0)
            save()
            bar.update()

    try:
        reads = [reader.submit(src.read) for src, _, _ in todo[:1]]
        if engine is not None and todo:
            engine.warmup()  # first-call costs, once per process, while the first scan is read
            engine.clock = clock
        for i, (src, out, row) in enumerate(todo):
            bar.set_postfix_str(src.name[-30:])
            t0 = time.perf_counter()
            if i + 1 < len(todo):
                reads.append(reader.submit(todo[i + 1][0].read))
            try:
                vol = reads[i].result()
                reads[i] = None  # type: ignore[call-overload]  # free the input early
                factors = config.factors_for(vol)
                if method == SELF_SUPERVISED:
                    sr, ssl = _self_supervised(vol, factors, config)
                    row.values.update(ssl)
                elif config.adapt_steps and engine is not None:
                    sr, adapt_info = _adapt_and_upscale(vol, factors, engine, config)
                    row.values.update(adapt_steps=config.adapt_steps, adapt_seconds=f"{adapt_info['seconds']:.1f}")
                else:
                    sr = upscale_volume(vol, method=method, factors=factors, engine=engine)
                what = f"srgan3d {method} x{_fmt(factors)}"
                if winfo:
                    what += f" {winfo.name} {winfo.sha256[:12]}"
                data, dtype_info = output_array(sr, config.dtype)
                values = dict(
                    scale=_fmt(factors), input_shape=_fmt(vol.shape), output_shape=_fmt(sr.shape),
                    input_spacing_mm=_fmt(vol.spacing_mm), output_spacing_mm=_fmt(sr.spacing_mm),
                    orientation=vol.orientation, nonfinite_voxels=vol.meta.get("nonfinite_voxels", 0),
                    clipped_voxels=sr.meta.get("clipped_voxels", 0), **dtype_info,
                )  # fmt: skip
                values.pop("dtype_note")
                del vol
                finish()
                out_vol = Volume(data, sr.affine, sr.meta)
                pending.append((writer.submit(write_volume, out_vol, out, description=what, dtype=data.dtype),
                                row, out, t0, values))  # fmt: skip
                del sr, data, out_vol
            except errors as exc:
                fail(row, exc, t0)
                finish()
                save()
                bar.update()
        finish()
    except BatchInterrupted:
        # The scan being computed stays pending; the write under way completes (atomically).
        reader.shutdown(wait=False, cancel_futures=True)
        finish()
        raise
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
        if engine is not None:
            engine.clock = None
