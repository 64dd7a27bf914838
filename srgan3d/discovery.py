"""Finding scans on disk: NIfTI files, DICOM series (one scan per SeriesInstanceUID of a folder)
and NRRD/MetaImage files under files and folders; formats we do not read are reported."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from srgan3d.io import read_volume
from srgan3d.io.formats import (
    ITK_SUFFIXES,
    NIFTI_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    is_dicom_candidate,
    is_itk,
    is_nifti,
)
from srgan3d.volume import Volume, VolumeError

log = logging.getLogger(__name__)

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
    excluded = [Path(p).resolve() for p in exclude]
    found: list[ScanSource] = []
    seen: set[tuple[Path, str | None]] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        sources = [_given_file(p)] if p.is_file() else _walk(p, excluded)
        for src in sources:
            key = (src.path.resolve(), src.series_uid)
            if key not in seen:
                seen.add(key)
                found.append(src)
    return found


def _given_file(p: Path) -> ScanSource:
    """A file named directly: its own scan (a DICOM file stands for its folder's series)."""
    if is_nifti(p):
        return ScanSource(p, "nifti", Path(p.name))
    if is_itk(p):
        return ScanSource(p, "itk", Path(p.name))
    if is_dicom_candidate(p):
        return ScanSource(p.parent, "dicom", Path(p.parent.name))
    return ScanSource(p, "unsupported", Path(p.name))


def _walk(root: Path, excluded: list[Path]) -> list[ScanSource]:
    """The scans under a folder, in sorted order, the excluded folders left out."""
    out: list[ScanSource] = []
    for folder, dirnames, filenames in os.walk(root):
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
            if is_nifti(f):
                out.append(ScanSource(f, "nifti", f.relative_to(root)))
            elif is_itk(f):
                out.append(ScanSource(f, "itk", f.relative_to(root)))
            elif name.lower().endswith(UNSUPPORTED_SUFFIXES):
                out.append(ScanSource(f, "unsupported", f.relative_to(root)))
            elif is_dicom_candidate(f):
                uid = _series_uid(f)
                series[uid] = series.get(uid, 0) + 1
            else:
                log.debug("ignored non-image file %s", f)
        out += _dicom_scans(fdir, root, series)
    return out


def _series_uid(f: Path) -> str | None:
    import pydicom

    try:
        return pydicom.dcmread(f, stop_before_pixels=True).get("SeriesInstanceUID")
    except Exception:  # noqa: BLE001 - damaged: let reading the series report it
        return None


def _dicom_scans(fdir: Path, root: Path, series: dict[str | None, int]) -> list[ScanSource]:
    """One scan per DICOM series of a folder (the folder itself when it holds one)."""
    if not series:
        return []
    real = [u for u in series if u is not None]
    rel = fdir.relative_to(root) if fdir != root else Path(root.name)
    if len(real) <= 1:
        return [ScanSource(fdir, "dicom", rel)]
    return [ScanSource(fdir, "dicom", rel, series_uid=uid) for uid in sorted(real)]
