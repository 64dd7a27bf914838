"""Batches of files: `upscale_files` finds the scans (`srgan3d.discovery`), runs them through
`srgan3d.sr.engine` one at a time with reading and writing in background threads, skips finished
outputs, reports a bad scan and goes on, and keeps the folder's ledger (`srgan3d.sr.ledger`)
true after every scan; SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, ClassVar, TypeAlias

import numpy as np
from tqdm.auto import tqdm

from srgan3d.atomic import remove_stale_temps
from srgan3d.discovery import ScanSource, find_scans
from srgan3d.io import output_array, write_volume
from srgan3d.io.dicom_write import write_dicom_series
from srgan3d.provenance import versions
from srgan3d.sr.config import (
    BSPLINE_CONSISTENT,
    SELF_SUPERVISED,
    THROUGH_PLANE_NETWORK,
    ThroughPlaneConfig,
    UpscaleConfig,
)
from srgan3d.sr.device import resolve_device
from srgan3d.sr.engine import EngineOptions, GeneratorEngine, StageClock, axes_for_generator, upscale_volume
from srgan3d.sr.ledger import (
    STATUSES,
    BatchResult,
    ManifestRow,
    ManifestValues,
    check_writable,
    ledger_key,
    merge_manifests,
    plan_rows,
    read_manifest,
    write_manifest,
)
from srgan3d.sr.method_choice import resolve_method_and_weights, say_once
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.weights import WeightsCard, WeightsError, WeightsInfo, find_weights
from srgan3d.volume import Volume, VolumeError

if TYPE_CHECKING:
    from srgan3d.sr.through_plane import PlaneNet

log = logging.getLogger(__name__)

__all__ = ["UpscaleConfig", "BatchInterrupted", "BatchResult", "merge_manifests", "upscale_files"]


class BatchInterrupted(Exception):
    """SIGTERM or SIGINT stopped a batch; the manifest was written first. `exit_code` is 128 +
    the signal number (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


# --------------------------------------------------------------------------------------------
# Batches of files


def _weights_installed(name: str) -> bool:
    try:
        find_weights(name)
    except WeightsError:
        return False
    return True


@dataclass
class _ThroughPlane:
    """How a through-plane run upscales each scan: per scan (`SELF_SUPERVISED`,
    `BSPLINE_CONSISTENT`) or with protocol weights (`THROUGH_PLANE_NETWORK`, loaded once)."""

    method: str
    config: UpscaleConfig
    model: PlaneNet | None = None  # protocol weights' network (THROUGH_PLANE_NETWORK only)
    info: WeightsInfo | None = None

    def upscale(self, vol: Volume, factors: Sequence[int]) -> tuple[Volume, ManifestValues]:
        from srgan3d.sr.protocol import upscale_with_protocol
        from srgan3d.sr.slice_profile import slice_geometry
        from srgan3d.sr.through_plane import (
            ThroughPlaneRecord,
            upscale_bspline_consistent,
            upscale_through_plane,
        )

        axes = [a for a, f in enumerate(factors) if f > 1]
        if len(axes) != 1:
            raise ValueError(f"--method {self.method} upscales along one axis; this scan's factors are {tuple(factors)}")
        axis, factor, c = axes[0], int(factors[axes[0]]), self.config
        if self.method == THROUGH_PLANE_NETWORK:
            assert self.info is not None and self.model is not None
            sr, geometry, fallback = upscale_with_protocol(vol, self.model, self.info, factor=factor,
                                                           thickness_mm=c.slice_thickness_mm, amp=c.amp)  # fmt: skip
            gain = self.info.card.held_out_gain_db or 0.0
            record = (ThroughPlaneRecord(BSPLINE_CONSISTENT, fallback, geometry, None) if fallback else
                      ThroughPlaneRecord(THROUGH_PLANE_NETWORK, f"protocol weights, {gain:+.2f} dB held out", geometry, None))  # fmt: skip
            if fallback:
                log.warning("%s: B-spline + consistency instead of %s: %s", vol.meta.get("source", "scan"),
                            self.info.name, fallback)  # fmt: skip
            return sr, record.manifest_values()
        kind = c.slice_profile or "boxcar"
        if self.method == BSPLINE_CONSISTENT:
            geometry = slice_geometry(vol.spacing_mm, vol.meta, axis=axis, factor=factor, kind=kind,
                                      thickness_mm=c.slice_thickness_mm)  # fmt: skip
            record = ThroughPlaneRecord(BSPLINE_CONSISTENT, self.why, geometry, None)
            return upscale_bspline_consistent(vol, geometry), record.manifest_values()
        tp = ThroughPlaneConfig(minutes=c.self_supervised_minutes, amp=c.amp)
        sr, record = upscale_through_plane(vol, tp, axis=axis, factor=factor, profile=kind,
                                           thickness_mm=c.slice_thickness_mm, device=str(resolve_device(c.device)))  # fmt: skip
        if record.method != SELF_SUPERVISED:
            log.warning("%s: B-spline + consistency instead of the network: %s", vol.meta.get("source", "scan"), record.reason)
        return sr, {**record.manifest_values(), "self_supervised_budget_min": c.self_supervised_minutes}

    @property
    def why(self) -> str:
        return "asked for" if self.config.method == BSPLINE_CONSISTENT else "no through-plane weights given"


def _through_plane_method(config: UpscaleConfig) -> _ThroughPlane | None:
    """The through-plane way of this run, or None when it is not a one-axis run that needs one.

    `--method auto` (or generator) with through-plane weights: those weights, if their card
    records a held-out gain over B-spline + consistency; `auto` without them: B-spline +
    consistency, said once; `self-supervised` / `bspline-consistent` as asked."""
    from srgan3d.sr.protocol import is_through_plane_weights
    from srgan3d.sr.through_plane import load_plane_net

    one_axis = config.through_plane or sorted(config.scale)[:2] == [1, 1]
    if config.method in (SELF_SUPERVISED, BSPLINE_CONSISTENT):
        return _ThroughPlane(config.method, config)
    if not one_axis or config.method not in ("auto", "generator") or config.adapt_steps:
        return None
    if is_through_plane_weights(config.weights):
        model, info = load_plane_net(config.weights)
        model.to(resolve_device(config.device))
        gain = info.card.held_out_gain_db if info.card.held_out_gain_db is not None else float("nan")
        if config.method == "auto" and not gain > ThroughPlaneConfig.min_gain_db:
            say_once(f"--method auto: the through-plane weights {info.name} are {gain:+.2f} dB against B-spline + "
                     "consistency on their held-out planes; using B-spline + slice-profile consistency")  # fmt: skip
            return _ThroughPlane(BSPLINE_CONSISTENT, config)
        return _ThroughPlane(THROUGH_PLANE_NETWORK, config, model, info)
    if config.method == "auto" and config.through_plane:
        say_once(
            f"--method auto with --scale through-plane: no through-plane weights given ({config.weights} is "
            f"an isotropic generator); using the cubic B-spline along the slices made consistent with the slice "
            f"profile ({BSPLINE_CONSISTENT}). Train weights for your protocol with `srgan3d train --through-plane`, "
            f"or learn from each scan with --method {SELF_SUPERVISED}"
        )
        return _ThroughPlane(BSPLINE_CONSISTENT, config)
    return None


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


def _fmt(t: Sequence[float], digits: int = 4) -> str:
    return "x".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in t)


def _method_and_engine(config: UpscaleConfig) -> tuple[str, GeneratorEngine | _ThroughPlane | None, ManifestValues]:
    """The method `config` resolves to, the engine for it (weights and device resolved once), and
    the manifest values every row shares."""
    resolve_device(config.device)  # --device cuda without CUDA is refused whatever the method
    vers = versions()
    common: ManifestValues = {
        "method": config.method, "srgan3d": vers["srgan3d"], "torch": vers["torch"], "monai": vers["monai"],
        "device": "cpu",
    }  # fmt: skip
    through = _through_plane_method(config)
    if through is not None:
        common.update(method=through.method, device=str(resolve_device(config.device)), data_consistency="slice profile")
        if through.info is not None:
            common.update(weights=through.info.name, weights_sha256=through.info.sha256,
                          weights_licence=through.info.licence.licence)
        return through.method, through, common
    method, weights = resolve_method_and_weights(config.method, config.weights)
    if config.adapt_steps and method != "generator":
        if config.method not in ("auto", "generator"):
            raise ValueError(f"--adapt needs the generator; it cannot adapt --method {config.method}")
        method = "generator"
    common["method"] = method
    if method != "generator":
        return method, None, common
    options: EngineOptions = dict(
        window=config.window, sw_batch_size=config.sw_batch_size, overlap=config.overlap,
        amp=config.amp, dc=config.dc, channels_last=config.channels_last,
        cudnn_benchmark=config.cudnn_benchmark,
    )  # fmt: skip
    if config.adapt_steps and not _weights_installed(config.weights):
        # zero detail branch: starts as zero-filled k-space
        engine = GeneratorEngine(Generator(GeneratorConfig()), device=resolve_device(config.device), **options)
        engine.weights = WeightsInfo("untrained (adapted per scan)", Path("-"), WeightsCard({"sha256": ""}))
    else:
        engine = GeneratorEngine.from_weights(weights, device=config.device, **options)
    assert engine.weights is not None
    common.update(
        device=str(engine.device), precision=engine.precision, weights=engine.weights.name,
        weights_sha256=engine.weights.sha256, data_consistency="yes" if config.dc else "no",
        weights_licence=engine.weights.licence.licence if engine.weights.sha256 else "",
    )  # fmt: skip
    return method, engine, common


def _source_stub(vol: Volume) -> Volume:
    """What a derived DICOM series needs of its source (geometry along the slices, identity, the
    template file), without holding the source's voxels while the output is written."""
    return Volume(np.zeros((1, 1, vol.shape[2]), np.float32), vol.affine.copy(), dict(vol.meta))


def _write_output(out_vol: Volume, out: Path, source: Volume, what: str, weights_sha256: str) -> Path:
    """NIfTI (atomically), or for a folder output a derived DICOM series (atomically, as a folder)
    whose DerivationDescription names the method and the weights' full sha256."""
    if out.name.lower().endswith((".nii", ".nii.gz")):
        return write_volume(out_vol, out, description=what, dtype=out_vol.data.dtype)
    derivation = f"{what}; by srgan3d" + (f"; weights sha256 {weights_sha256}" if weights_sha256 else "")
    write_dicom_series(out_vol, out, source, derivation=derivation)
    return out


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

    def handler(signum: int, frame: FrameType | None) -> None:
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
    sources, manifest = _sources(inputs, outdir, config)
    method, engine, common = _method_and_engine(config)
    through = engine if isinstance(engine, _ThroughPlane) else None
    engine = engine if isinstance(engine, GeneratorEngine) else None
    previous = read_manifest(manifest)
    rows, todo = plan_rows(sources, outdir, config, common, previous)
    ledger = dict(previous)
    ledger.update((ledger_key(r.input), r) for r in rows)

    def save() -> None:
        write_manifest(ledger.values(), manifest)

    save()  # the pending rows are on disk before the first scan starts
    bar = tqdm(total=len(todo), desc="upscale", unit="scan", disable=not progress)
    try:
        with _stop_on_signals():
            _Batch(method, engine, config, previous, save, bar, clock, through).run(todo)
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


def _sources(inputs: Sequence[str | Path], outdir: Path, config: UpscaleConfig) -> tuple[list[ScanSource], Path]:
    """The scans of this run (this shard's part of them) and its manifest; the output folder is
    checked writable and cleared of an interrupted run's temporary files."""
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
    return sources, manifest


#: A scan still to do: where it is, where its output goes, and its manifest row.
_Todo: TypeAlias = "tuple[ScanSource, Path, ManifestRow]"


@dataclass
class _Batch:
    """The scans still to do, one at a time on the device. Reading (and decompressing) the next
    scan and writing the last one run in background threads while the current one is computed, so
    the device is not idle between scans; gzip, file I/O and torch release the GIL. On
    `BatchInterrupted` the write under way is finished (atomically) before it propagates."""

    method: str
    engine: GeneratorEngine | None
    config: UpscaleConfig
    previous: dict[str, ManifestRow]  # the ledger before this run (a failed scan keeps an earlier output)
    save: Callable[[], None]
    bar: tqdm
    clock: StageClock | None = None
    through: _ThroughPlane | None = None
    writes: list[tuple[Future[Path], ManifestRow, Path, float, ManifestValues]] = field(default_factory=list)

    #: What fails one scan (recorded in its row) and lets the batch go on.
    ERRORS: ClassVar = (VolumeError, FileNotFoundError, ValueError, OSError, RuntimeError, MemoryError)

    def run(self, todo: list[_Todo]) -> None:
        reader = ThreadPoolExecutor(max_workers=1)
        writer = ThreadPoolExecutor(max_workers=1)
        try:
            reads: list[Future[Volume] | None] = [reader.submit(src.read) for src, _, _ in todo[:1]]
            if self.engine is not None and todo:
                self.engine.warmup()  # first-call costs, once per process, while the first scan is read
                self.engine.clock = self.clock
            for i, (src, out, row) in enumerate(todo):
                self.bar.set_postfix_str(src.name[-30:])
                t0 = time.perf_counter()
                if i + 1 < len(todo):
                    reads.append(reader.submit(todo[i + 1][0].read))
                try:
                    read = reads[i]
                    assert read is not None
                    vol = read.result()
                    reads[i] = None  # free the input early
                    out_vol, what, values = self._upscale(vol, row)
                    source = _source_stub(vol)
                    del vol
                    self._finish()
                    write = writer.submit(_write_output, out_vol, out, source, what, row.weights_sha256)
                    self.writes.append((write, row, out, t0, values))
                    del out_vol
                except self.ERRORS as exc:
                    self._fail(row, exc, t0)
                    self._finish()
                    self.save()
                    self.bar.update()
            self._finish()
        except BatchInterrupted:
            # The scan being computed stays pending; the write under way completes (atomically).
            reader.shutdown(wait=False, cancel_futures=True)
            self._finish()
            raise
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True)
            if self.engine is not None:
                self.engine.clock = None

    def _upscale(self, vol: Volume, row: ManifestRow) -> tuple[Volume, str, ManifestValues]:
        """One scan upscaled as the run asks: the output volume (in its output type), the header's
        description, and the manifest values of the scan."""
        config, engine, method = self.config, self.engine, self.method
        factors = config.factors_for(vol)
        if self.through is not None:
            sr, values_tp = self.through.upscale(vol, factors)
            row.update(**values_tp)
            method = str(values_tp["method"])
        elif config.adapt_steps and engine is not None:
            sr, adapt_info = _adapt_and_upscale(vol, factors, engine, config)
            row.update(adapt_steps=config.adapt_steps, adapt_seconds=adapt_info["seconds"])
        else:
            sr = upscale_volume(vol, method=method, factors=factors, engine=engine)
        what = f"srgan3d {method} x{_fmt(factors)}"
        winfo = engine.weights if engine is not None else None
        if winfo:
            what += f" {winfo.name} {winfo.sha256[:12]}"
        data, stored = output_array(sr, config.dtype)
        values: ManifestValues = dict(
            scale=tuple(factors), input_shape=vol.shape, output_shape=sr.shape,
            input_spacing_mm=vol.spacing_mm, output_spacing_mm=sr.spacing_mm, orientation=vol.orientation,
            nonfinite_voxels=vol.meta.get("nonfinite_voxels", 0), clipped_voxels=sr.meta.get("clipped_voxels", 0),
            output_dtype=stored.dtype, dtype_clipped_voxels=stored.clipped_voxels,
        )  # fmt: skip
        return Volume(data, sr.affine, sr.meta), what, values

    def _fail(self, row: ManifestRow, exc: BaseException, t0: float) -> None:
        prev = self.previous.get(ledger_key(row.input))
        if prev is not None and prev.status in ("ok", "skipped") and prev.output and Path(prev.output).exists():
            row.take_provenance(prev)  # the earlier output and its provenance still stand
            row.output = prev.output
            row.note = "this run failed; the earlier output is kept"
        else:
            row.output = ""
        row.status, row.error = "failed", str(exc)
        row.seconds = time.perf_counter() - t0
        log.error("%s", exc)

    def _finish(self) -> None:
        """Every write under way waited for, its row made true and the manifest saved."""
        while self.writes:
            fut, row, out, t0, values = self.writes[0]
            try:
                fut.result()
                row.update(**values)
                row.seconds = time.perf_counter() - t0
                row.date = datetime.now().isoformat(timespec="seconds")
                if row.note.startswith("replacing the output"):  # it has been replaced
                    row.note = ""
                row.status, row.error, row.output = "ok", "", str(out)
            except self.ERRORS as exc:
                self._fail(row, exc, t0)
            self.writes.pop(0)
            self.save()
            self.bar.update()
