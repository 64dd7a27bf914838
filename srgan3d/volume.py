"""Scans in and out: the `Volume` type, NIfTI, DICOM series and NRRD/MetaImage (through SimpleITK), and the
geometry of scaled grids.

Voxel order is NIfTI's (X, Y, Z); the affine maps voxel indices to RAS+ millimetres. This module
imports no torch.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from srgan3d.provenance import atomic_path

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: 3D Slicer's and ITK's formats, read through SimpleITK (a `.seg.nrrd` is a Slicer segmentation).
ITK_SUFFIXES = (".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Image formats we recognise but do not read; found in a folder they are reported, not ignored.
UNSUPPORTED_SUFFIXES = (".mgz", ".mgh", ".hdr", ".img")
#: Relative tolerance on slice spacing before a DICOM series counts as unevenly spaced.
SPACING_RTOL = 0.01

#: LPS (DICOM, ITK) <-> RAS (NIfTI): flip the first two world axes; its own inverse. The one home of
#: the conversion (readers here, `srgan3d.study.radiomics.to_sitk`).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def crop_affine(affine: np.ndarray, start: Sequence[float]) -> np.ndarray:
    """The affine of a sub-grid whose voxel 0 is voxel `start` (per axis, may be negative for a
    padded crop) of `affine`'s grid: same axes, origin moved. The one home of the crop rule."""
    out = np.array(affine, float, copy=True)
    out[:3, 3] = out[:3, :3] @ np.asarray(start, float) + out[:3, 3]
    return out


class VolumeError(ValueError):
    """A scan that cannot be read as one 3D volume; the message names the file and the fix."""


@dataclass
class Volume:
    """A 3D scan.

    Attributes:
        data: float32 array of shape (X, Y, Z) in NIfTI voxel order.
        affine: (4, 4) float64 matrix, voxel index -> RAS+ millimetres.
        meta: free-form provenance (source path, header codes, DICOM series UID...).
    """

    data: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.data.ndim != 3:
            raise VolumeError(f"Volume data must be 3D (X, Y, Z), not shape {self.data.shape}")
        if self.affine.shape != (4, 4):
            raise VolumeError(f"Affine shape must be (4, 4), not {self.affine.shape}")
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise VolumeError(f"Affine must be finite and invertible, got\n{self.affine}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along each array axis, from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes such as 'RAS' or 'LPS' (nibabel's closest-axis convention)."""
        return "".join(nib.aff2axcodes(self.affine))


# --------------------------------------------------------------------------------------------
# Geometry of scaled grids


def _as_factors(factors: int | Sequence[int]) -> tuple[int, int, int]:
    out = (int(factors),) * 3 if isinstance(factors, int | np.integer) else tuple(int(f) for f in factors)
    if len(out) != 3 or any(f < 1 for f in out):
        raise ValueError(f"Scale factors must be three positive integers, not {factors!r}")
    return out


def upscaled_affine(affine: np.ndarray, factors: int | Sequence[int]) -> np.ndarray:
    """Affine of the grid refined by integer `factors`, keeping the field of view.

    The outer edges of the voxel grid stay where they were: fine voxel j along an axis scaled by s
    has its centre at coarse index (j + 0.5) / s - 0.5, so each coarse voxel centre is the mean
    of the centres of its s children.

    Args:
        affine: (4, 4) voxel -> world matrix of the coarse grid.
        factors: one integer or one per array axis.

    Returns:
        (4, 4) voxel -> world matrix of the fine grid.
    """
    s = np.asarray(_as_factors(factors), dtype=np.float64)
    fine_to_coarse = np.eye(4)
    fine_to_coarse[:3, :3] = np.diag(1.0 / s)
    fine_to_coarse[:3, 3] = 0.5 / s - 0.5
    return np.asarray(affine, dtype=np.float64) @ fine_to_coarse


def downscaled_affine(affine: np.ndarray, factors: int | Sequence[int]) -> np.ndarray:
    """Inverse of `upscaled_affine`: coarse voxel i is centred at fine index s*i + (s-1)/2."""
    s = np.asarray(_as_factors(factors), dtype=np.float64)
    coarse_to_fine = np.eye(4)
    coarse_to_fine[:3, :3] = np.diag(s)
    coarse_to_fine[:3, 3] = (s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ coarse_to_fine


# --------------------------------------------------------------------------------------------
# Reading


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _is_dicom_candidate(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(path)


def read_volume(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series, or an NRRD/MetaImage file as a float32 `Volume` in RAS+.

    Args:
        path: a `.nii`/`.nii.gz` file; a folder holding one DICOM series; one file of a DICOM
            series (the other files of that series are taken from its folder); or a `.nrrd`,
            `.nhdr`, `.mha`, `.mhd` file (read through SimpleITK, LPS converted to RAS), a Slicer
            `.seg.nrrd` naming its segment after `#`.
        series_uid: for a folder with several series, the SeriesInstanceUID to read.

    Raises:
        FileNotFoundError: the path does not exist.
        VolumeError: the file is not one readable 3D volume; the message says why and what to do.
    """
    path, segment = split_segment(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    if _is_nifti(path):
        return _read_nifti(path)
    if _is_itk(path):
        return _read_itk(path, segment)
    if _is_dicom_candidate(path):
        import pydicom

        try:
            uid = pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID")
        except Exception as exc:  # pydicom raises several types for damaged files
            raise VolumeError(f"{path}: not a readable DICOM file ({exc}); remove or replace it") from exc
        return read_dicom_series(path.parent, series_uid=series_uid or uid)
    raise VolumeError(
        f"{path}: unsupported file type; give a NIfTI file (.nii, .nii.gz), an NRRD or MetaImage file "
        "(.nrrd, .seg.nrrd, .mha, .mhd) or a DICOM series folder"
    )


def _is_itk(path: Path) -> bool:
    return path.name.lower().endswith(ITK_SUFFIXES)


def split_segment(path: str | Path) -> tuple[Path, str | None]:
    """A mask path with an optional segment selector: ``masks/P001.seg.nrrd#tumour`` (by name) or
    ``...#2`` (by label value) -> (the file, the selector); a path without one -> (path, None)."""
    text = str(path)
    if "#" in text and not Path(text).exists():
        base, _, segment = text.rpartition("#")
        if _is_itk(Path(base)) and segment:
            return Path(base), segment
    return Path(text), None


def _slicer_segments(img: Any) -> list[dict[str, Any]]:
    """The segments a 3D Slicer segmentation's header lists (``Segment<i>_Name``, ``_LabelValue``,
    ``_Layer``), in order; empty for any other file."""
    header = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    out = []
    i = 0
    while f"Segment{i}_Name" in header or f"Segment{i}_ID" in header:
        seg = {k: header.get(f"Segment{i}_{k}", "") for k in ("Name", "ID", "LabelValue", "Layer")}
        out.append({"name": seg["Name"] or seg["ID"], "value": int(seg["LabelValue"] or 1),
                    "layer": int(seg["Layer"] or 0)})  # fmt: skip
        i += 1
    return out


def _read_itk(path: Path, segment: str | None = None) -> Volume:
    """An NRRD / MetaImage file through SimpleITK, as a `Volume` in RAS+.

    ITK's geometry is LPS: world = origin + direction @ (spacing * index), with the array in
    (z, y, x) order. The affine in RAS flips the first two world axes: exact, no resampling. A
    Slicer segmentation (``.seg.nrrd``, a labelmap with one or more layers) gives one segment as a
    0/1 mask: the only one, or the one `segment` names (by name or label value); with several and
    none named, the error lists them.
    """
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise VolumeError(f"{path}: not a readable NRRD/MetaImage file ({str(exc).strip().splitlines()[-1]}); "
                          "re-export or remove it") from exc  # fmt: skip
    if img.GetDimension() != 3:
        raise VolumeError(f"{path}: a {img.GetDimension()}D image (size {img.GetSize()}); srgan3d reads 3D volumes")
    segments = _slicer_segments(img)
    arr = sitk.GetArrayFromImage(img)  # (z, y, x) or (z, y, x, components)
    if segments or segment is not None:
        if not segments:
            raise VolumeError(f"{path}: a segment ({segment!r}) was asked for, but the file lists no segments")
        listing = ", ".join(f"{s['name']} (value {s['value']})" for s in segments)
        if segment is None:
            if len(segments) > 1:
                raise VolumeError(f"{path}: a segmentation with {len(segments)} segments ({listing}); name one as "
                                  f"{path.name}#NAME or #VALUE")  # fmt: skip
            chosen = segments[0]
        else:
            hits = [s for s in segments if s["name"] == segment or (segment.isdigit() and s["value"] == int(segment))]
            if len(hits) != 1:
                raise VolumeError(f"{path}: segment {segment!r} is {'ambiguous' if hits else 'not in the file'}; "
                                  f"its segments: {listing}")  # fmt: skip
            chosen = hits[0]
        layer = arr[..., chosen["layer"]] if arr.ndim == 4 else arr
        arr = (layer == chosen["value"]).astype(np.float32)
    elif arr.ndim != 3:
        raise VolumeError(f"{path}: {img.GetNumberOfComponentsPerPixel()} values per voxel; give one 3D scalar volume")
    data = np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.float32)
    if sum(n > 1 for n in data.shape) < 3:
        raise VolumeError(f"{path}: image has shape {data.shape}, not a 3D volume (one voxel thick somewhere); "
                          "give the whole series as one 3D file")  # fmt: skip
    data, n_bad = _check_finite(data, path)
    direction = np.asarray(img.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing(), float)[None, :]
    lps[:3, 3] = img.GetOrigin()
    meta = {"source": str(path), "format": "itk", "source_dtype": img.GetPixelIDTypeAsString(),
            "nonfinite_voxels": n_bad, **({"segment": chosen["name"]} if segments else {})}  # fmt: skip
    return Volume(data, LPS_TO_RAS @ lps, meta)


def gzip_threads() -> int:
    """Threads for compressing one .nii.gz: up to 4, never more than the machine's cores."""
    return max(1, min(4, os.cpu_count() or 1))


def _load_nifti(path: Path) -> Any:
    """nibabel's image of `path`; a .nii.gz is inflated by ISA-L (python-isal) when installed,
    about 1.7x faster than Python's zlib, then parsed from memory."""
    if not path.name.lower().endswith(".gz"):
        return nib.load(str(path))
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a dependency; nibabel's reader is the fallback
        return nib.load(str(path))
    raw = igzip.decompress(path.read_bytes())
    try:
        return nib.Nifti1Image.from_bytes(raw)
    except nib.spatialimages.HeaderDataError:
        return nib.Nifti2Image.from_bytes(raw)


def _read_nifti(path: Path) -> Volume:
    try:
        img = _load_nifti(path)
    except Exception as exc:
        raise VolumeError(
            f"{path}: not a readable NIfTI file, it is truncated or damaged ({exc}); re-export or remove it"
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"{path}: not a NIfTI-1/2 image ({type(img).__name__})")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) in (2, 3) and sum(n > 1 for n in shape) < 2:
        raise VolumeError(
            f"{path}: image has shape {img.shape}, a single voxel or a line of voxels, not a volume; "
            "srgan3d upscales 3D volumes: give the whole series as one 3D file (or the DICOM series folder)"
        )
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        raise VolumeError(
            f"{path}: image has shape {img.shape}, a single 2D slice; srgan3d upscales 3D volumes: "
            "give the whole series as one 3D file (or the DICOM series folder)"
        )
    if len(shape) != 3:
        raise VolumeError(
            f"{path}: image has shape {img.shape}, expected one 3D volume; "
            "split 4D series into 3D volumes and give one per file"
        )
    try:
        # get_fdata applies scl_slope / scl_inter.
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise VolumeError(
            f"{path}: image data cannot be read, the file is truncated or damaged ({exc})"
        ) from exc
    data, n_bad = _check_finite(data, path)
    hdr = img.header
    slope, inter = hdr.get_slope_inter()
    sform_code = int(hdr["sform_code"])
    qform_code = int(hdr["qform_code"])
    # nibabel's img.affine prefers the sform when its code is set, then the qform.
    meta = {
        "source": str(path),
        "format": "nifti",
        "sform_code": sform_code,
        "qform_code": qform_code,
        "source_dtype": str(img.get_data_dtype()),
        "scl_slope": 1.0 if slope is None else float(slope),
        "scl_inter": 0.0 if inter is None else float(inter),
        "nonfinite_voxels": n_bad,
    }
    return Volume(data, np.asarray(img.affine, dtype=np.float64), meta)


def _check_finite(data: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """`data` with NaN/inf set to 0, and how many there were (recorded in the volume's meta and
    the manifest, never only logged)."""
    finite = np.isfinite(data)
    if not finite.any():
        raise VolumeError(f"{path}: every voxel is NaN or infinite; the image holds no data")
    n_bad = 0
    if not finite.all():
        n_bad = int(data.size - finite.sum())
        log.warning("%s: %d non-finite voxels set to 0", path, n_bad)
        data = np.where(finite, data, 0).astype(np.float32)
    return data, n_bad


_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")


def read_dicom_series(folder: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read one DICOM series from a folder (not recursive) as a RAS+ `Volume`.

    Slices are sorted by ImagePositionPatient along the slice normal and rescaled with
    RescaleSlope/RescaleIntercept. The series is refused, with a message listing what was found,
    when it is not one evenly spaced 3D stack.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    datasets = []
    unreadable = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        if not _is_dicom_candidate(f):
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

    by_series: dict[str, list] = {}
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
    items = by_series[series_uid]
    where = f"{folder} (series {series_uid})"

    for f, ds in items:
        missing = [t for t in _GEOMETRY_TAGS if t not in ds]
        if missing:
            raise VolumeError(
                f"{f}: missing geometry tags {', '.join(missing)}; the series cannot be placed in space"
            )
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise VolumeError(
                f"{f}: enhanced multi-frame DICOM is not supported; convert the series to NIfTI first"
            )

    iop = np.array([float(v) for v in items[0][1].ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    for f, ds in items:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-4):
            raise VolumeError(
                f"{where}: slice orientation differs in {f.name}; the series is not one 3D volume"
            )
        if (int(ds.Rows), int(ds.Columns)) != (int(items[0][1].Rows), int(items[0][1].Columns)):
            raise VolumeError(f"{where}: image size differs in {f.name}; the series is not one 3D volume")
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    order = np.argsort(positions @ normal, kind="stable")
    items = [items[i] for i in order]
    positions = positions[order]
    along = positions @ normal

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
    if not np.allclose(gaps, step, rtol=SPACING_RTOL, atol=1e-3):
        missing_at = [
            f"{along[i]:.2f}..{along[i + 1]:.2f} mm" for i in np.flatnonzero(gaps > step * (1 + SPACING_RTOL))
        ]
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

    planes = []
    for _f, ds in items:
        px = ds.pixel_array.astype(np.float32)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(px * slope + inter)
    # pixel_array is (Rows, Columns); NIfTI order is (column index x, row index y, slice z).
    data = np.stack(planes, axis=-1).transpose(1, 0, 2)
    data, n_bad = _check_finite(np.ascontiguousarray(data, dtype=np.float32), folder)
    scalings = {(float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)) for _, ds in items}

    row_spacing, col_spacing = (float(v) for v in items[0][1].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing  # moving along a row: next column
    lps[:3, 1] = col_dir * row_spacing  # moving down a column: next row
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(items) - 1)
    lps[:3, 3] = positions[0]
    first = items[0][1]
    meta = {
        "source": str(folder),
        "format": "dicom",
        "series_uid": series_uid,
        "n_files": len(items),
        "modality": str(first.get("Modality", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "sform_code": 1,
        "qform_code": 1,
        "nonfinite_voxels": n_bad,
    }
    if len(scalings) == 1:  # one stored type and scaling for the series: an output can keep them
        (slope, inter), = scalings
        meta.update(source_dtype=str(items[0][1].pixel_array.dtype), scl_slope=slope, scl_inter=inter)
    return Volume(data, LPS_TO_RAS @ lps, meta)


# --------------------------------------------------------------------------------------------
# Writing


OUTPUT_DTYPES = ("float32", "input")


def thickest_axis(volume: Volume) -> int:
    """The array axis with the largest voxel spacing: the slice axis of an anisotropic scan."""
    return int(np.argmax(volume.spacing_mm))


def check_dtype_policy(policy: str) -> None:
    """The one check of `--dtype`: float32 or input."""
    if policy not in OUTPUT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(OUTPUT_DTYPES)}, not {policy!r}")


def output_array(volume: Volume, policy: str = "float32") -> tuple[np.ndarray, dict[str, Any]]:
    """The array to store for `volume` under `--dtype` `policy`, and what was done to it.

    "float32": the values as computed. "input": the source's stored type (`meta["source_dtype"]`):
    an integer source without scaling gets the values rounded and clipped to its type (the clipped
    voxels are counted); an integer source with scl_slope/inter is stored as float data that
    nibabel scales into that type with the slope/intercept that keeps the output's range; a float
    or unknown source stays float32. The info dict holds `output_dtype`, `dtype_clipped_voxels`
    and `dtype_note`.
    """
    check_dtype_policy(policy)
    data = np.asarray(volume.data, dtype=np.float32)
    info: dict[str, Any] = {"output_dtype": "float32", "dtype_clipped_voxels": 0, "dtype_note": ""}
    src = volume.meta.get("source_dtype")
    if policy == "float32":
        return data, info
    if not src or not np.issubdtype(np.dtype(src), np.integer):
        info["dtype_note"] = f"source type {src or 'unknown'}: kept float32"
        return data, info
    target = np.dtype(src)
    info["output_dtype"] = target.name
    if (volume.meta.get("scl_slope", 1.0), volume.meta.get("scl_inter", 0.0)) != (1.0, 0.0):
        info["dtype_note"] = f"{target.name} with scl_slope/scl_inter fitted to the output range"
        return data, info
    lim = np.iinfo(target)
    rounded = np.rint(data)
    info["dtype_clipped_voxels"] = int(np.count_nonzero((rounded < lim.min) | (rounded > lim.max)))
    info["dtype_note"] = f"rounded to {target.name}"
    return np.clip(rounded, lim.min, lim.max).astype(target), info


def write_volume(
    volume: Volume,
    path: str | Path,
    *,
    description: str = "",
    dtype: np.dtype | type | str = np.float32,
) -> Path:
    """Write `volume` as NIfTI atomically: to a temporary file in the same folder, then renamed.

    The sform and qform both hold the affine, with the codes of the source (scanner = 1 when
    unknown; a qform code of 0 is kept, so a sform-only input gives a sform-only output; a volume
    with neither code gets sform code 2, "aligned", so its geometry is never dropped). `description`
    goes into the header's 80-character descrip field.
    """
    path = Path(path)
    if not _is_nifti(path):
        raise ValueError(f"{path}: output must end in .nii or .nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(volume.data)
    img = nib.Nifti1Image(data if data.dtype == np.dtype(dtype) else data.astype(np.float32), volume.affine)
    img.set_data_dtype(np.dtype(dtype))  # float data into an integer type: nibabel fits scl_slope/inter
    # Keep the source's codes (a sform-only file stays sform-only); a volume with neither gets
    # sform code 2 ("aligned") so that its geometry is never dropped.
    sform_code = int(volume.meta.get("sform_code", 1))
    qform_code = int(volume.meta.get("qform_code", sform_code))
    if sform_code == 0 and qform_code == 0:
        sform_code = 2
    img.set_sform(volume.affine, code=sform_code)
    if qform_code:
        img.set_qform(volume.affine, code=qform_code)
    else:
        img.set_qform(None, code=0)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    with atomic_path(path) as tmp:
        _save_nifti(img, tmp)
    return path


def _save_nifti(img: nib.Nifti1Image, path: Path) -> None:
    """`nib.save`, with a .nii.gz compressed by ISA-L's threaded igzip (python-isal) at level 1:
    standard gzip that every reader takes, about 5x faster than zlib level 1 on two cores and
    within 3% of its size (benchmarks/RESULTS.md, issue 12)."""
    if not path.name.lower().endswith(".gz"):
        nib.save(img, str(path))
        return
    try:
        from isal import igzip_threaded
    except ImportError:  # pragma: no cover - isal is a dependency
        nib.save(img, str(path))
        return
    data = img.to_bytes()
    with igzip_threaded.open(path, "wb", compresslevel=1, threads=gzip_threads()) as f:
        f.write(data)


# --------------------------------------------------------------------------------------------
# Discovery


@dataclass(frozen=True)
class ScanSource:
    """One scan found on disk.

    Attributes:
        path: the NIfTI file, or the folder holding the DICOM series.
        kind: "nifti", "itk" (NRRD, MetaImage), "dicom" or "unsupported" (found, but in a format
            we do not read).
        relative: where the scan sits relative to the folder it was found in, used to mirror
            the folder structure in the outputs (a file name for scans given directly).
        series_uid: the DICOM SeriesInstanceUID, when a folder holds several series.
    """

    path: Path
    kind: str
    relative: Path
    series_uid: str | None = None

    @property
    def name(self) -> str:
        if self.kind in ("nifti", "itk"):
            n = self.path.name
            for suf in (*NIFTI_SUFFIXES, *ITK_SUFFIXES):
                if n.lower().endswith(suf):
                    return n[: -len(suf)]
        if self.kind == "dicom" and self.series_uid:
            return f"{self.path.name}_{self.series_uid[-12:]}"
        return self.path.name

    def read(self) -> Volume:
        if self.kind == "unsupported":
            raise VolumeError(f"{self.path}: unsupported image format; convert it to NIfTI (.nii.gz)")
        return read_volume(self.path, series_uid=self.series_uid)


def find_scans(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> list[ScanSource]:
    """Discover NIfTI files, DICOM series and NRRD/MetaImage files under files and folders,
    recursively.

    Each folder's DICOM files make one scan per SeriesInstanceUID. Files that are neither NIfTI
    nor DICOM nor NRRD/MetaImage are ignored (logged), except known image formats we cannot read, which are
    returned with kind "unsupported" so the caller can report them. A damaged file with a DICOM
    suffix is returned as a DICOM scan so that reading it reports the damage.

    Args:
        paths: files or folders.
        exclude: folders never searched (for example the output folder).

    Raises:
        FileNotFoundError: a path does not exist.
    """
    import pydicom

    excluded = [Path(p).resolve() for p in exclude]
    found: list[ScanSource] = []
    seen: set[tuple[Path, str | None]] = set()

    def add(src: ScanSource) -> None:
        key = (src.path.resolve(), src.series_uid)
        if key not in seen:
            seen.add(key)
            found.append(src)

    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        if p.is_file():
            if _is_nifti(p):
                add(ScanSource(p, "nifti", Path(p.name)))
            elif _is_itk(p):
                add(ScanSource(p, "itk", Path(p.name)))
            elif _is_dicom_candidate(p):
                add(ScanSource(p.parent, "dicom", Path(p.parent.name)))
            else:
                add(ScanSource(p, "unsupported", Path(p.name)))
            continue
        for folder, dirnames, filenames in os.walk(p):
            fdir = Path(folder)
            if any(fdir.resolve() == e or e in fdir.resolve().parents for e in excluded):
                dirnames[:] = []
                continue
            dirnames.sort()
            series: dict[str | None, int] = {}
            for name in sorted(filenames):
                f = fdir / name
                if name.startswith("."):
                    continue
                if _is_nifti(f):
                    add(ScanSource(f, "nifti", f.relative_to(p)))
                elif _is_itk(f):
                    add(ScanSource(f, "itk", f.relative_to(p)))
                elif name.lower().endswith(UNSUPPORTED_SUFFIXES):
                    add(ScanSource(f, "unsupported", f.relative_to(p)))
                elif _is_dicom_candidate(f):
                    try:
                        uid = pydicom.dcmread(f, stop_before_pixels=True).get("SeriesInstanceUID")
                    except Exception:  # damaged: let reading the series report it
                        uid = None
                    series[uid] = series.get(uid, 0) + 1
                else:
                    log.debug("ignored non-image file %s", f)
            real = [u for u in series if u is not None]
            if not series:
                continue
            rel = fdir.relative_to(p) if fdir != p else Path(p.name)
            if len(real) <= 1:
                add(ScanSource(fdir, "dicom", rel))
            else:
                for uid in sorted(real):
                    add(ScanSource(fdir, "dicom", rel, series_uid=uid))
    return found
