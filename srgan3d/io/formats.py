"""The image formats srgan3d reads and writes, told apart by name (and DICOM's magic bytes), and
the one check of the voxel values every reader applies."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from srgan3d.volume import VolumeError

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


#: 3D Slicer's and ITK's formats, read through SimpleITK (a `.seg.nrrd` is a Slicer segmentation).
ITK_SUFFIXES = (".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd")


#: Image formats we recognise but do not read; found in a folder they are reported, not ignored.
UNSUPPORTED_SUFFIXES = (".mgz", ".mgh", ".hdr", ".img")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_candidate(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or has_dicom_magic(path)


def is_itk(path: Path) -> bool:
    return path.name.lower().endswith(ITK_SUFFIXES)


def check_finite(data: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
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
