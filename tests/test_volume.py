from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from conftest import REAL_SCAN, oblique_affine, write_dicom_series

from srgan3d.discovery import find_scans
from srgan3d.io import read_volume, write_volume
from srgan3d.volume import Volume, VolumeError, downscaled_affine, upscaled_affine


def world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


AFFINES = [
    oblique_affine(),
    oblique_affine(spacing=(3.0, 0.7, 0.7), angles=(-1.1, 0.4, 2.0), origin=(5, -3, 200)),
    np.diag([-0.9, -0.9, 4.0, 1.0]),  # LPS-like axis flips
]


@pytest.mark.parametrize("affine", AFFINES)
@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 1, 2), (3, 2, 1)])
def test_lr_voxel_centre_is_mean_of_its_children(affine, factors):
    hr = upscaled_affine(affine, factors)
    for i in itertools.product(range(3), range(2), range(2)):
        children = itertools.product(*[range(s * ii, s * ii + s) for s, ii in zip(factors, i, strict=True)])
        mean = np.mean([world(hr, j) for j in children], axis=0)
        np.testing.assert_allclose(mean, world(affine, i), atol=1e-9)


@pytest.mark.parametrize("affine", AFFINES)
def test_field_of_view_and_orientation_preserved(affine):
    shape = np.array([10, 7, 5])
    f = np.array([2, 2, 2])
    hr = upscaled_affine(affine, f)
    # The outer edges of the grid: index -0.5 and n - 0.5 on both grids.
    for corner in itertools.product(*[(0, 1)] * 3):
        c = np.array(corner)
        lr_edge = np.where(c, shape - 0.5, -0.5)
        hr_edge = np.where(c, shape * f - 0.5, -0.5)
        np.testing.assert_allclose(world(hr, hr_edge), world(affine, lr_edge), atol=1e-9)
    assert nib.aff2axcodes(hr) == nib.aff2axcodes(affine)
    np.testing.assert_allclose(np.linalg.norm(hr[:3, :3], axis=0), np.linalg.norm(affine[:3, :3], axis=0) / 2)
    np.testing.assert_allclose(downscaled_affine(hr, f), affine, atol=1e-12)


def test_nifti_roundtrip_with_scaling(oblique_nifti, tmp_path):
    raw = nib.load(str(oblique_nifti))
    stored = np.asarray(raw.dataobj.get_unscaled())
    vol = read_volume(oblique_nifti)
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.data, stored * 2.0 + 10.0)
    np.testing.assert_allclose(vol.affine, oblique_affine(), atol=1e-5)
    np.testing.assert_allclose(vol.spacing_mm, (0.8, 1.1, 3.0), atol=1e-5)
    out = write_volume(vol, tmp_path / "out" / "copy.nii.gz", description="test")
    again = read_volume(out)
    np.testing.assert_array_equal(again.data, vol.data)
    np.testing.assert_allclose(again.affine, vol.affine, atol=1e-6)
    hdr = nib.load(str(out)).header
    assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
    assert hdr["descrip"].tobytes().startswith(b"test")
    assert not list(out.parent.glob(".*tmp*")), "temporary file left behind"


def test_sform_preferred_then_qform(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    s_aff, q_aff = np.diag([2.0, 2, 2, 1]), np.diag([3.0, 3, 3, 1])
    img = nib.Nifti1Image(data, None)
    img.set_sform(s_aff, code=2)
    img.set_qform(q_aff, code=1)
    nib.save(img, str(tmp_path / "both.nii"))
    np.testing.assert_allclose(read_volume(tmp_path / "both.nii").affine, s_aff)
    img.set_sform(s_aff, code=0)
    nib.save(img, str(tmp_path / "qonly.nii"))
    np.testing.assert_allclose(read_volume(tmp_path / "qonly.nii").affine, q_aff)


def test_real_sform_only_lps_scan_keeps_its_header(tmp_path):
    vol = read_volume(REAL_SCAN)
    src = nib.load(str(REAL_SCAN))
    assert vol.orientation == "LPS" and vol.meta["qform_code"] == 0 and vol.meta["sform_code"] > 0
    np.testing.assert_array_equal(vol.data, np.asarray(src.dataobj).astype(np.float32))
    out = read_volume(write_volume(vol, tmp_path / "c.nii.gz"))
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-6)
    hdr = nib.load(str(tmp_path / "c.nii.gz")).header
    assert int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == int(src.header["sform_code"])


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


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), str(p)),
            "a single 2D slice; srgan3d upscales 3D volumes",
        ),
        (
            lambda p: nib.save(nib.Nifti1Image(np.ones((8, 8, 1), np.float32), np.eye(4)), str(p)),
            "a single 2D slice",
        ),
        (lambda p: nib.save(nib.Nifti1Image(np.ones((8, 8, 4, 3, 2), np.float32), np.eye(4)), str(p)), "expected one 3D volume"),
        (lambda p: nib.save(nib.Nifti1Image(np.ones((8, 8, 4, 3), np.float32), np.eye(4)), str(p)), "4D"),
        (
            lambda p: nib.save(nib.Nifti1Image(np.full((8, 8, 4), np.nan, np.float32), np.eye(4)), str(p)),
            "NaN",
        ),
    ],
)
def test_bad_nifti_errors_name_the_file(tmp_path, make, message):
    p = tmp_path / "bad.nii.gz"
    make(p)
    with pytest.raises(VolumeError, match=message) as err:
        read_volume(p)
    assert str(p) in str(err.value)


def test_truncated_nifti(oblique_nifti, tmp_path):
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(oblique_nifti.read_bytes()[:300])
    with pytest.raises(VolumeError, match="trunc.nii.gz"):
        read_volume(bad)


def test_trailing_singleton_4d_is_accepted(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.float32), np.eye(4)), str(tmp_path / "a.nii"))
    assert read_volume(tmp_path / "a.nii").shape == (4, 5, 6)


def test_volume_validates_its_parts():
    with pytest.raises(VolumeError, match=r"Affine shape must be \(4, 4\), not \(3, 3\)"):
        Volume(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(VolumeError, match="must be 3D"):
        Volume(np.zeros((2, 2)), np.eye(4))


def test_find_scans_discovers_and_classifies(tmp_path, oblique_nifti):
    root = tmp_path / "data"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "x.nii.gz").write_bytes(oblique_nifti.read_bytes())
    (root / "notes.txt").write_text("not an image")
    (root / "scan.nrrd").write_text("NRRD0004")
    (root / "brain.mgz").write_bytes(b"\x00" * 10)
    write_dicom_series(root / "a" / "dcm", np.zeros((3, 4, 4), np.uint16))
    found = {(s.kind, str(s.relative)) for s in find_scans([root])}
    assert found == {("nifti", "a/b/x.nii.gz"), ("itk", "scan.nrrd"), ("unsupported", "brain.mgz"), ("dicom", "a/dcm")}


def test_our_gzip_is_standard_gzip_and_reads_back_exactly(tmp_path):
    """The threaded ISA-L writer produces plain gzip: Python's gzip module and nibabel's own
    reader open it, and give the very array and affine written."""
    import gzip

    rng = np.random.default_rng(3)
    vol = Volume(rng.normal(size=(33, 20, 9)).astype(np.float32) * 100, oblique_affine(), {})
    out = write_volume(vol, tmp_path / "fast.nii.gz")
    assert gzip.decompress(out.read_bytes())[:4] == np.int32(348).tobytes()  # a NIfTI-1 header inside
    ref = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(ref.dataobj), vol.data)
    np.testing.assert_allclose(ref.affine, vol.affine, atol=1e-6)
    np.testing.assert_array_equal(read_volume(out).data, vol.data)


def test_nifti2_gz_is_read(tmp_path):
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    p = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti2Image(data, np.diag([1.5, 1.5, 3.0, 1.0])), str(p))
    vol = read_volume(p)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing_mm == pytest.approx((1.5, 1.5, 3.0))
