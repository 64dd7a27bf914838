"""NIfTI in and out (`srgan3d.io.nifti`): scaling, sform/qform, headers kept, bad files named."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import REAL_SCAN, oblique_affine

from srgan3d.io import read_volume, write_volume
from srgan3d.volume import Volume, VolumeError


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
