"""NIfTI-1/2 files: read (a .nii.gz inflated by ISA-L's igzip) and saved (threaded igzip, level 1)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from srgan3d.io.formats import check_finite
from srgan3d.volume import Volume, VolumeError


def gzip_threads() -> int:
    """Threads for compressing one .nii.gz: up to 4, never more than the machine's cores."""
    return max(1, min(4, os.cpu_count() or 1))


def load_nifti(path: Path) -> nib.filebasedimages.FileBasedImage:
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


def read_nifti(path: Path) -> Volume:
    try:
        img = load_nifti(path)
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
    data, n_bad = check_finite(data, path)
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


def save_nifti(img: nib.Nifti1Image, path: Path) -> None:
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
