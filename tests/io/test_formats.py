"""Which file is which format (`srgan3d.io.formats`), and the one check of voxel values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srgan3d.io.formats import check_finite, has_dicom_magic, is_dicom_candidate, is_itk, is_nifti
from srgan3d.volume import VolumeError


def test_formats_are_told_apart_by_name_and_dicom_by_its_magic(tmp_path):
    assert is_nifti(Path("a.NII.GZ")) and is_nifti(Path("a.nii")) and not is_nifti(Path("a.nii.bak"))
    assert is_itk(Path("s.seg.nrrd")) and is_itk(Path("x.mha")) and not is_itk(Path("x.mgz"))
    dicom = tmp_path / "IM0001"  # no suffix, as scanners write them
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\2\0")
    other = tmp_path / "notes"
    other.write_bytes(b"\0" * 128 + b"TEXT")
    assert has_dicom_magic(dicom) and is_dicom_candidate(dicom) and not has_dicom_magic(other)
    assert is_dicom_candidate(tmp_path / "x.dcm") and not has_dicom_magic(tmp_path / "missing")


def test_non_finite_voxels_are_counted_and_zeroed_and_an_empty_image_refused():
    x = np.ones((3, 3, 3), np.float32)
    x[0, 0, 0], x[1, 1, 1] = np.nan, np.inf
    y, n = check_finite(x, Path("a.nii.gz"))
    assert n == 2 and y[0, 0, 0] == 0 and y[1, 1, 1] == 0 and y.sum() == 25
    with pytest.raises(VolumeError, match=r"a\.nii\.gz: every voxel is NaN or infinite"):
        check_finite(np.full((2, 2, 2), np.nan, np.float32), Path("a.nii.gz"))
