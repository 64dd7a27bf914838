"""The ledger of an output folder: `manifest.csv`, one row per input ever processed into it, with
each row's status (`STATUSES`), output and provenance; which scans a run must do and which
outputs it keeps; shard manifests and their merge.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srgan3d.atomic import write_csv_atomic
from srgan3d.discovery import ScanSource
from srgan3d.sr.config import UpscaleConfig

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "input", "output", "status", "error", "note", "method", "scale", "input_shape", "output_shape",
    "input_spacing_mm", "output_spacing_mm", "orientation", "seconds", "date", "device", "precision", "weights",
    "weights_sha256", "weights_licence", "data_consistency", "adapt_steps", "adapt_seconds", "slice_profile", "slice_thickness_mm",
    "slice_thickness_from", "slice_gap_mm", "acquired_inplane_mm", "axis_detail_upper_share", "held_out_gain_db",
    "through_plane_reason", "self_supervised_budget_min", "self_supervised_steps", "self_supervised_seconds", "output_dtype",
    "nonfinite_voxels", "clipped_voxels", "dtype_clipped_voxels", "srgan3d", "torch", "monai",
)  # fmt: skip


#: Row statuses: the output exists and this row's provenance made it (ok); it existed before this
#: run and was kept, provenance from the run that made it (skipped); the last attempt failed
#: (failed); not processed yet (pending: queued, or left when a run was interrupted).
STATUSES = ("ok", "skipped", "failed", "pending")


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


def output_path_for(src: ScanSource, outdir: Path, *, suffix: str, compress: bool, output_format: str = "nifti") -> Path:
    """Where a scan's output goes: `<name><suffix>.nii.gz` (or .nii), or, for a DICOM series with
    `--output-format dicom`, the folder `<name><suffix>/` of the derived series."""
    if output_format == "dicom" and src.kind == "dicom":
        return outdir / src.relative.parent / f"{src.name}{suffix}"
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
    return {ledger_key(r.input): r for r in rows}


def ledger_key(path: str | Path) -> str:
    """A ledger row's key: the input's absolute path, so that `scans/a.nii.gz` and its absolute
    spelling are one row."""
    return str(Path(path).resolve())


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


def plan_rows(
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
        prev = previous.get(ledger_key(src.path))
        # an input the ledger knows keeps its row's output, however it is named on the command
        # line (a file given alone, or its folder): one output per input
        out = _known_output(prev, outdir) or output_path_for(src, outdir, suffix=suffix, compress=config.compress,
                                                             output_format=config.output_format)  # fmt: skip
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
            if config.output_format == "dicom" and src.kind != "dicom":
                row.values["note"] = f"a {src.kind} input gets NIfTI output (--output-format dicom applies to DICOM series)"
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
