"""Scans in and out: `read_volume` reads a NIfTI file, a DICOM series or an NRRD/MetaImage file
(`srgan3d.io.nifti`, `.dicom`, `.itk`) as a float32 `srgan3d.volume.Volume` in RAS+;
`write_volume` writes NIfTI atomically, in the output type `output_array` chooses. Imports no
torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from srgan3d.atomic import atomic_path
from srgan3d.io.dicom import read_dicom_series
from srgan3d.io.formats import is_dicom_candidate, is_itk, is_nifti
from srgan3d.io.itk import read_itk, split_segment
from srgan3d.io.nifti import gzip_threads, read_nifti, save_nifti
from srgan3d.volume import Volume, VolumeError

__all__ = ["read_volume", "read_mask", "write_volume", "output_array", "StoredType", "check_dtype_policy", "split_segment",
           "read_dicom_series", "gzip_threads", "OUTPUT_DTYPES"]  # fmt: skip


def read_mask(path: str | Path, like: Volume | str | Path) -> Volume:
    """A mask for the image `like` (a `Volume`, or the image's path, read when needed): a DICOM-SEG
    segment (``seg.dcm#Liver``) or RTSTRUCT ROI (``rs.dcm#GTV``) is placed on that image's grid
    (`srgan3d.io.dicom_masks`); any other mask is read as it is (`read_volume`), its grid checked
    against the image's by the caller."""
    from srgan3d.io.dicom_masks import dicom_mask_kind, read_dicom_mask

    file, selector = split_segment(path)
    if file.is_file() and dicom_mask_kind(file) is not None:
        reference = like if isinstance(like, Volume) else read_volume(like)
        return read_dicom_mask(file, selector, reference)
    return read_volume(path)

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
    if is_nifti(path):
        return read_nifti(path)
    if is_itk(path):
        return read_itk(path, segment)
    if is_dicom_candidate(path):
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


OUTPUT_DTYPES = ("float32", "input")


def check_dtype_policy(policy: str) -> None:
    """The one check of `--dtype`: float32 or input."""
    if policy not in OUTPUT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(OUTPUT_DTYPES)}, not {policy!r}")


@dataclass(frozen=True)
class StoredType:
    """The type an output is stored in (`output_array`): its numpy name, the voxels clipped to
    its range, and what was done."""

    dtype: str = "float32"
    clipped_voxels: int = 0
    note: str = ""


def output_array(volume: Volume, policy: str = "float32") -> tuple[np.ndarray, StoredType]:
    """The array to store for `volume` under `--dtype` `policy`, and what was done to it.

    "float32": the values as computed. "input": the source's stored type (`meta["source_dtype"]`):
    an integer source without scaling gets the values rounded and clipped to its type (the clipped
    voxels are counted); an integer source with scl_slope/inter is stored as float data that
    nibabel scales into that type with the slope/intercept that keeps the output's range; a float
    or unknown source stays float32.
    """
    check_dtype_policy(policy)
    data = np.asarray(volume.data, dtype=np.float32)
    src = volume.meta.get("source_dtype")
    if policy == "float32":
        return data, StoredType()
    if not src or not np.issubdtype(np.dtype(src), np.integer):
        return data, StoredType(note=f"source type {src or 'unknown'}: kept float32")
    target = np.dtype(src)
    if (volume.meta.get("scl_slope", 1.0), volume.meta.get("scl_inter", 0.0)) != (1.0, 0.0):
        return data, StoredType(target.name, note=f"{target.name} with scl_slope/scl_inter fitted to the output range")
    lim = np.iinfo(target)
    rounded = np.rint(data)
    clipped = int(np.count_nonzero((rounded < lim.min) | (rounded > lim.max)))
    return np.clip(rounded, lim.min, lim.max).astype(target), StoredType(target.name, clipped, f"rounded to {target.name}")


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
    if not is_nifti(path):
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
        save_nifti(img, tmp)
    return path
