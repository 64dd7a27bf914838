"""One DICOM series in (`srgan3d.io.dicom`): array and affine, and the refusals that name the fix."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_dicom_series

from srgan3d.discovery import find_scans
from srgan3d.io import read_volume
from srgan3d.volume import VolumeError


def world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


def test_dicom_series_reads_to_the_right_array_and_affine(dicom_series):
    folder, written = dicom_series
    vol = read_volume(folder)
    assert vol.shape == (10, 12, 8)  # (columns, rows, slices)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    spacing_rows, spacing_cols = 0.7, 0.9
    r, c = np.array([0.9950, 0.0998, 0.0]), np.array([-0.0998, 0.9950, 0.0])
    for k, sl in enumerate(written):  # written in acquisition order = sorted order here
        for i, j in [(0, 0), (11, 9), (5, 3)]:
            # DICOM PS3.3 C.7.6.2.1.1: P = IPP + j * column spacing * row_dir + i * row spacing * col_dir
            p_lps = sl["ipp"] + j * spacing_cols * r + i * spacing_rows * c
            np.testing.assert_allclose(world(vol.affine, (j, i, k)), p_lps * lps_to_ras, atol=1e-4)
            assert vol.data[j, i, k] == pytest.approx(float(sl["pixels"][i, j]) * 2.0 - 1024.0)
    # Also through a single file of the series, and through discovery.
    one = read_volume(next(folder.glob("*.dcm")))
    np.testing.assert_array_equal(one.data, vol.data)
    (src,) = find_scans([folder])
    assert src.kind == "dicom" and src.path == folder


def test_dicom_missing_slice_is_refused_with_positions(tmp_path):
    slices = np.zeros((8, 6, 6), np.uint16)
    write_dicom_series(tmp_path / "s", slices, skip_slices=(4,))
    with pytest.raises(VolumeError, match="missing"):
        read_volume(tmp_path / "s")


def test_dicom_uneven_spacing_is_refused(tmp_path):
    write_dicom_series(tmp_path / "s", np.zeros((8, 6, 6), np.uint16), extra_gap_after=3)
    with pytest.raises(VolumeError, match="uneven slice spacing"):
        read_volume(tmp_path / "s")


def test_dicom_mixed_series_listed(tmp_path):
    write_dicom_series(tmp_path / "s", np.zeros((4, 6, 6), np.uint16), series_uid="1.2.3.1")
    write_dicom_series(tmp_path / "s", np.zeros((5, 6, 6), np.uint16), series_uid="1.2.3.2", prefix="B")
    with pytest.raises(VolumeError, match=r"holds 2 DICOM series .*1\.2\.3\.1 \(4 files\)"):
        read_volume(tmp_path / "s")
    assert len(find_scans([tmp_path / "s"])) == 2


def test_dicom_missing_geometry_tags(tmp_path):
    import pydicom

    write_dicom_series(tmp_path / "s", np.zeros((4, 6, 6), np.uint16))
    f = sorted((tmp_path / "s").glob("*.dcm"))[0]
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    ds.save_as(f)
    with pytest.raises(VolumeError, match="missing geometry tags ImagePositionPatient"):
        read_volume(tmp_path / "s")
