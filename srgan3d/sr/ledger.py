"""The ledger of an output folder: `manifest.csv`, one row per input ever processed into it
(`ManifestRow`, a typed field per column, written and read back byte for byte), with each row's
status (`STATUSES`), output and provenance; which scans a run must do and which outputs it keeps;
shard manifests and their merge.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeAlias

import numpy as np

from srgan3d.atomic import write_csv_atomic
from srgan3d.discovery import ScanSource
from srgan3d.sr.config import UpscaleConfig

log = logging.getLogger(__name__)

#: Row statuses: the output exists and this row's provenance made it (ok); it existed before this
#: run and was kept, provenance from the run that made it (skipped); the last attempt failed
#: (failed); not processed yet (pending: queued, or left when a run was interrupted).
STATUSES = ("ok", "skipped", "failed", "pending")

#: What the producers of a row hand it (`ManifestRow.update` checks the names and types).
ManifestValues: TypeAlias = "dict[str, str | int | float | tuple[int, ...] | tuple[float, ...] | None]"

_CORE = ("input", "output", "status", "error")


def _written_as(spec: str) -> dict[str, str]:
    """A number column's format in the CSV (field metadata)."""
    return {"fmt": spec}


@dataclass
class ManifestRow:
    """One row of `manifest.csv`, a typed field per column in the CSV's order. Empty cells are ""
    (text), None (numbers) or () (shapes, spacings); a number's `fmt` metadata is how the CSV
    writes it, so that a row read back writes the same bytes."""

    input: str
    output: str = ""
    status: str = ""
    error: str = ""
    note: str = ""
    method: str = ""
    scale: tuple[int, ...] = ()
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    input_spacing_mm: tuple[float, ...] = field(default=(), metadata=_written_as(".4g"))
    output_spacing_mm: tuple[float, ...] = field(default=(), metadata=_written_as(".4g"))
    orientation: str = ""
    seconds: float | None = field(default=None, metadata=_written_as(".2f"))
    date: str = ""  # ISO 8601, to the second
    device: str = ""
    precision: str = ""
    weights: str = ""
    weights_sha256: str = ""
    weights_licence: str = ""
    data_consistency: str = ""
    adapt_steps: int | None = None
    adapt_seconds: float | None = field(default=None, metadata=_written_as(".2f"))
    slice_profile: str = ""
    slice_thickness_mm: float | None = field(default=None, metadata=_written_as(".4g"))
    slice_thickness_from: str = ""
    slice_gap_mm: float | None = field(default=None, metadata=_written_as(".4g"))
    acquired_inplane_mm: tuple[float, ...] = field(default=(), metadata=_written_as(".4g"))
    axis_detail_upper_share: tuple[float, ...] = field(default=(), metadata=_written_as(".4f"))
    held_out_gain_db: float | None = field(default=None, metadata=_written_as(".3f"))
    through_plane_reason: str = ""
    self_supervised_budget_min: float | None = field(default=None, metadata=_written_as("g"))
    self_supervised_steps: int | None = None
    self_supervised_seconds: float | None = field(default=None, metadata=_written_as(".1f"))
    output_dtype: str = ""
    nonfinite_voxels: int | None = None
    clipped_voxels: int | None = None
    dtype_clipped_voxels: int | None = None
    srgan3d: str = ""
    torch: str = ""
    monai: str = ""

    def update(self, **values: object) -> ManifestRow:
        """Set columns by name, each checked against its type (numpy numbers and lists are taken
        as the Python number / tuple they hold); an unknown name or a wrong type raises."""
        for name, value in values.items():
            kind = _KINDS.get(name)
            if kind is None:
                raise KeyError(f"manifest has no column {name!r}; its columns are {', '.join(MANIFEST_COLUMNS)}")
            setattr(self, name, _coerce(name, kind, value))
        return self

    def provenance(self) -> ManifestValues:
        """Every column but input/output/status/error, as this row holds them."""
        return {c: getattr(self, c) for c in MANIFEST_COLUMNS if c not in _CORE}

    def take_provenance(self, other: ManifestRow) -> ManifestRow:
        """This row's provenance replaced by `other`'s (a kept output keeps the run that made it)."""
        return self.update(**other.provenance())

    def as_csv(self) -> dict[str, str]:
        return {f.name: _format(getattr(self, f.name), _KINDS[f.name], f.metadata.get("fmt", "")) for f in fields(self)}

    @classmethod
    def from_csv(cls, d: Mapping[str, str | None]) -> ManifestRow:
        """A row as `csv.DictReader` gives it; a cell that is not its column's type raises
        ValueError naming the input and the column. Columns this release does not know are
        dropped."""
        row = cls(d["input"] or "")
        for name, kind in _KINDS.items():
            text = d.get(name)
            if name == "input" or not text:
                continue
            try:
                setattr(row, name, _parse(text, kind))
            except ValueError:
                raise ValueError(f"manifest row {row.input}: column {name} holds {text!r}, not {kind}") from None
        return row


_KINDS: dict[str, str] = {f.name: str(f.type) for f in fields(ManifestRow)}
MANIFEST_COLUMNS = tuple(_KINDS)
_NUMBER = {"int | None": int, "float | None": float, "tuple[int, ...]": int, "tuple[float, ...]": float}
if not set(_KINDS.values()) <= {"str", *_NUMBER}:
    raise TypeError(f"a manifest column of a type the CSV codec does not know: {set(_KINDS.values()) - {'str', *_NUMBER}}")


def _coerce(name: str, kind: str, value: object) -> object:
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"manifest column {name} takes text, not {value!r}")
        return value
    number = _NUMBER[kind]
    items = value if kind.startswith("tuple") else (value,)
    if value is None and not kind.startswith("tuple"):
        return None
    if not isinstance(items, (tuple, list)) or not all(_is_a(v, number) for v in items):
        raise TypeError(f"manifest column {name} takes {kind}, not {value!r}")
    out = tuple(number(v) for v in items)
    return out if kind.startswith("tuple") else out[0]


def _is_a(v: object, number: type) -> bool:
    if isinstance(v, bool):
        return False
    if number is int:
        return isinstance(v, (int, np.integer))
    return isinstance(v, (int, float, np.integer, np.floating))


def _format(value: object, kind: str, spec: str) -> str:
    if value is None:
        return ""
    if kind.startswith("tuple"):
        return "x".join(format(v, spec) for v in value)  # type: ignore[attr-defined]
    return format(value, spec)


def _parse(text: str, kind: str) -> object:
    if kind == "str":
        return text
    number = _NUMBER[kind]
    if kind.startswith("tuple"):
        return tuple(number(v) for v in text.split("x"))
    return number(text)


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
    return write_csv_atomic(path, (r.as_csv() for r in sorted(rows, key=lambda r: r.input)), MANIFEST_COLUMNS)


def read_manifest(path: Path) -> dict[str, ManifestRow]:
    """The rows of an existing manifest by input (empty when there is none). A manifest that
    cannot be parsed is set aside as `<name>.unreadable-<time>` with a warning, never lost."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [ManifestRow.from_csv(d) for d in csv.DictReader(f)]
    except (OSError, csv.Error, KeyError, ValueError, UnicodeDecodeError) as exc:
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
    common: ManifestValues,
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
            row = ManifestRow(str(src.path), status="failed", error="output path is an input file; choose another -o folder")
            row.update(**common)
        elif out.exists() and not config.overwrite:
            row = ManifestRow(str(src.path), str(out), "skipped")
            if made_it:
                assert prev is not None
                row.take_provenance(prev).note = "output kept from an earlier run (use --overwrite to replace it)"
            else:
                row.note = "output exists, made outside this manifest: provenance unknown (use --overwrite to replace it)"
        else:
            row = ManifestRow(str(src.path), status="pending").update(**common)
            if config.output_format == "dicom" and src.kind != "dicom":
                row.note = f"a {src.kind} input gets NIfTI output (--output-format dicom applies to DICOM series)"
            if made_it and out.exists():  # --overwrite: the earlier provenance holds until replaced
                assert prev is not None
                row.note = f"replacing the output of {prev.date or 'an earlier run'}"
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
