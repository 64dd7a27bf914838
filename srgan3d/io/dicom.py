"""DICOM series: one series of a folder read as a RAS+ volume, its slices ordered and checked."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from srgan3d.io.formats import check_finite, is_dicom_candidate
from srgan3d.volume import LPS_TO_RAS, Volume, VolumeError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

#: Relative tolerance on slice spacing before a DICOM series counts as unevenly spaced.
SPACING_RTOL = 0.01


_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")


def read_dicom_series(folder: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read one DICOM series from a folder (not recursive) as a RAS+ `Volume`.

    Slices are sorted by ImagePositionPatient along the slice normal and rescaled with
    RescaleSlope/RescaleIntercept. The series is refused, with a message listing what was found,
    when it is not one evenly spaced 3D stack.
    """
    folder = Path(folder)
    series_uid, items = _one_series(folder, _read_folder(folder), series_uid)
    where = f"{folder} (series {series_uid})"
    _check_slices(items, where)
    iop = np.array([float(v) for v in items[0][1].ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    order = np.argsort(positions @ normal, kind="stable")
    items = [items[i] for i in order]
    positions = positions[order]
    _check_spacing(items, positions @ normal, where)
    data, n_bad = _pixels(items, folder)
    row_spacing, col_spacing = (float(v) for v in items[0][1].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing  # moving along a row: next column
    lps[:3, 1] = col_dir * row_spacing  # moving down a column: next row
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(items) - 1)
    lps[:3, 3] = positions[0]
    first = items[0][1]
    meta = {
        "source": str(folder), "format": "dicom", "series_uid": series_uid, "n_files": len(items),
        "modality": str(first.get("Modality", "")), "series_description": str(first.get("SeriesDescription", "")),
        "sform_code": 1, "qform_code": 1, "nonfinite_voxels": n_bad,
        # the slice profile and in-plane grid as acquired (`srgan3d.sr.slice_profile.slice_geometry`)
        "slice_thickness_mm": _float_or_none(first.get("SliceThickness")),
        "spacing_between_slices_mm": _float_or_none(first.get("SpacingBetweenSlices")),
        "acquisition_matrix": [int(v) for v in (first.get("AcquisitionMatrix") or [])],
        "rows": int(first.Rows), "columns": int(first.Columns),
        # identity, for masks that reference this series (DICOM-SEG, RTSTRUCT) and derived series written from it
        "study_uid": str(first.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "")),
        "sop_instance_uids": [str(ds.get("SOPInstanceUID", "")) for _, ds in items],  # one per slice, in array order
        "files": [str(f) for f, _ in items],
    }  # fmt: skip
    scalings = {(float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)) for _, ds in items}
    if len(scalings) == 1:  # one stored type and scaling for the series: an output can keep them
        (slope, inter), = scalings
        meta.update(source_dtype=str(first.pixel_array.dtype), scl_slope=slope, scl_inter=inter)
    return Volume(data, LPS_TO_RAS @ lps, meta)


def _float_or_none(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


#: A file of a series and its dataset.
_Item: TypeAlias = "tuple[Path, Dataset]"


def _read_folder(folder: Path) -> list[_Item]:
    """Every readable DICOM file of the folder; unreadable ones are logged (all unreadable: an error)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets: list[_Item] = []
    unreadable = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        if not is_dicom_candidate(f):
            continue
        try:
            datasets.append((f, pydicom.dcmread(f)))
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            unreadable.append(f"{f.name} ({exc})")
    if not datasets:
        detail = f": {'; '.join(unreadable[:5])}" if unreadable else ""
        raise VolumeError(f"{folder}: no readable DICOM files found{detail}; remove or replace damaged files")
    if unreadable:
        log.warning("%s: skipped unreadable DICOM files: %s", folder, "; ".join(unreadable))
    return datasets


def _one_series(folder: Path, datasets: list[_Item], series_uid: str | None) -> tuple[str, list[_Item]]:
    """The files of the series asked for, or of the folder's only series."""
    by_series: dict[str, list[_Item]] = {}
    for f, ds in datasets:
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "<missing>")), []).append((f, ds))
    if series_uid is None:
        if len(by_series) > 1:
            found = ", ".join(f"{uid} ({len(v)} files)" for uid, v in by_series.items())
            raise VolumeError(
                f"{folder}: holds {len(by_series)} DICOM series ({found}); "
                "put each series in its own folder or give its SeriesInstanceUID"
            )
        series_uid = next(iter(by_series))
    if series_uid not in by_series:
        raise VolumeError(f"{folder}: no DICOM series with SeriesInstanceUID {series_uid}")
    return series_uid, by_series[series_uid]


def _check_slices(items: list[_Item], where: str) -> None:
    """Every slice placed in space, single-frame, of one orientation and one size."""
    for f, ds in items:
        missing = [t for t in _GEOMETRY_TAGS if t not in ds]
        if missing:
            raise VolumeError(f"{f}: missing geometry tags {', '.join(missing)}; the series cannot be placed in space")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise VolumeError(f"{f}: enhanced multi-frame DICOM is not supported; convert the series to NIfTI first")
    iop = [float(v) for v in items[0][1].ImageOrientationPatient]
    size = (int(items[0][1].Rows), int(items[0][1].Columns))
    for f, ds in items:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-4):
            raise VolumeError(f"{where}: slice orientation differs in {f.name}; the series is not one 3D volume")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise VolumeError(f"{where}: image size differs in {f.name}; the series is not one 3D volume")


def _check_spacing(items: list[_Item], along: np.ndarray, where: str) -> None:
    """At least two slices, none sharing a position, evenly spaced (a gap of whole steps is named
    as missing slices)."""
    if len(items) < 2:
        raise VolumeError(f"{where}: only one slice found; a 3D volume needs at least two")
    gaps = np.diff(along)
    if np.any(gaps < 1e-3 * max(abs(gaps).max(), 1e-6)):
        dup = [items[i + 1][0].name for i in np.flatnonzero(gaps < 1e-3 * abs(gaps).max())]
        raise VolumeError(
            f"{where}: several slices share one position ({', '.join(dup[:5])}); "
            "the folder mixes acquisitions or time points; keep one volume per folder"
        )
    step = float(np.median(gaps))
    if np.allclose(gaps, step, rtol=SPACING_RTOL, atol=1e-3):
        return
    missing_at = [f"{along[i]:.2f}..{along[i + 1]:.2f} mm" for i in np.flatnonzero(gaps > step * (1 + SPACING_RTOL))]
    ratio = gaps / step
    if missing_at and np.allclose(ratio, np.round(ratio), atol=0.05):
        raise VolumeError(
            f"{where}: {len(items)} slices at {step:.3f} mm with slice(s) missing between "
            f"{', '.join(missing_at[:5])}; restore the missing files"
        )
    raise VolumeError(
        f"{where}: uneven slice spacing (gaps from {gaps.min():.3f} to {gaps.max():.3f} mm); "
        "resample the series to even spacing first"
    )


def _pixels(items: list[_Item], folder: Path) -> tuple[np.ndarray, int]:
    """The rescaled slices stacked in NIfTI order (column x, row y, slice z), non-finite set to 0."""
    planes = []
    for _f, ds in items:
        px = ds.pixel_array.astype(np.float32)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(px * slope + inter)
    # pixel_array is (Rows, Columns); NIfTI order is (column index x, row index y, slice z).
    data = np.stack(planes, axis=-1).transpose(1, 0, 2)
    return check_finite(np.ascontiguousarray(data, dtype=np.float32), folder)
