"""NRRD, Slicer segmentations and MetaImage in, exactly as NIfTI (issue 24).

The NRRD and MHA copies are written by SimpleITK from the NIfTI file (its own NIfTI reader), so
the check is independent of srgan3d's LPS -> RAS conversion: the volumes srgan3d reads from them
must equal nibabel's reading of the NIfTI, voxel for voxel and affine for affine.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from srgan3d.io import read_volume
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.volume import VolumeError

REAL_MR = Path(__file__).parents[1] / "data" / "totalseg_example_mr_sm.nii.gz"


def _copies(nifti: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.ReadImage(str(nifti))
    out = []
    for ext in (".nrrd", ".mha", ".mhd"):
        p = folder / (nifti.name.split(".")[0] + ext)
        sitk.WriteImage(img, str(p))
        out.append(p)
    return out


@pytest.mark.parametrize("which", ["real", "oblique"])
def test_nrrd_and_metaimage_read_exactly_as_nifti(which, oblique_nifti, tmp_path):
    src = REAL_MR if which == "real" else oblique_nifti
    ref = nib.load(str(src))
    want = np.asarray(ref.get_fdata(dtype=np.float32))
    for p in _copies(src, tmp_path):
        vol = read_volume(p)
        np.testing.assert_array_equal(vol.data, want, err_msg=p.name)
        np.testing.assert_allclose(vol.affine, ref.affine, rtol=0, atol=1e-5, err_msg=p.name)


def test_a_real_scan_as_nifti_nrrd_and_mha_gives_identical_outputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    nii = folder / "mr.nii.gz"
    nii.write_bytes(REAL_MR.read_bytes())
    nrrd, mha, _ = _copies(REAL_MR, tmp_path / "other")
    outs = {}
    for name, path in (("nifti", nii), ("nrrd", nrrd), ("mha", mha)):
        res = upscale_files([path], tmp_path / f"out_{name}", UpscaleConfig(method="sinc"))
        (row,) = res.rows
        assert row.status == "ok", row.error
        assert row.output.endswith(".nii.gz")  # outputs stay NIfTI
        outs[name] = nib.load(row.output)
    base = outs["nifti"]
    for name in ("nrrd", "mha"):
        np.testing.assert_array_equal(np.asarray(outs[name].dataobj), np.asarray(base.dataobj), err_msg=name)
        np.testing.assert_allclose(outs[name].affine, base.affine, rtol=0, atol=1e-5, err_msg=name)


def _slicer_segmentation(labels: np.ndarray, like: Path, path: Path, segments: list[tuple[str, int]]) -> None:
    """A 3D Slicer-style .seg.nrrd: one labelmap layer, each segment named in the header."""
    ref = sitk.ReadImage(str(like))
    img = sitk.GetImageFromArray(np.transpose(labels, (2, 1, 0)).astype(np.uint8))
    img.CopyInformation(ref)
    for i, (name, value) in enumerate(segments):
        img.SetMetaData(f"Segment{i}_ID", f"Segment_{i + 1}")
        img.SetMetaData(f"Segment{i}_Name", name)
        img.SetMetaData(f"Segment{i}_LabelValue", str(value))
        img.SetMetaData(f"Segment{i}_Layer", "0")
    sitk.WriteImage(img, str(path), True)


def test_a_slicer_segmentation_gives_the_voi_of_its_nifti_export(tmp_path):
    ref = nib.load(str(REAL_MR))
    shape = ref.shape
    labels = np.zeros(shape, np.uint8)
    c = [n // 2 for n in shape]
    labels[c[0] - 6 : c[0] + 5, c[1] - 4 : c[1] + 6, c[2] - 2 : c[2] + 3] = 1  # tumour
    labels[: c[0] - 8, : c[1] - 6, :] = 2  # liver
    seg = tmp_path / "P001.seg.nrrd"
    _slicer_segmentation(labels, REAL_MR, seg, [("tumour", 1), ("liver", 2)])
    export = tmp_path / "tumour.nii.gz"
    nib.save(nib.Nifti1Image((labels == 1).astype(np.uint8), ref.affine), str(export))
    want = read_volume(export)
    got = read_volume(f"{seg}#tumour")
    np.testing.assert_array_equal(got.data, want.data)
    np.testing.assert_allclose(got.affine, want.affine, atol=1e-5)
    np.testing.assert_array_equal(read_volume(f"{seg}#2").data, (labels == 2).astype(np.float32))
    with pytest.raises(VolumeError, match=r"2 segments \(tumour \(value 1\), liver \(value 2\)\); name one"):
        read_volume(seg)
    with pytest.raises(VolumeError, match="segment 'lesion' is not in the file; its segments: tumour"):
        read_volume(f"{seg}#lesion")
    one = tmp_path / "only.seg.nrrd"
    _slicer_segmentation(labels, REAL_MR, one, [("tumour", 1)])
    np.testing.assert_array_equal(read_volume(one).data, want.data)  # one segment: no name needed


def test_a_cohort_table_takes_segmentation_masks_by_segment_name(tmp_path):
    """`mask` = P.seg.nrrd#tumour passes the cohort's checks (the file exists, its grid is the
    image's); a misspelt file is named."""
    from srgan3d.study.cohort import CohortError, read_cohort

    ref = nib.load(str(REAL_MR))
    labels = np.zeros(ref.shape, np.uint8)
    labels[10:20, 10:20, 5:9] = 1
    rows = ["patient_id,image,mask,response"]
    for i in range(20):
        img = tmp_path / f"P{i:02d}.nrrd"
        sitk.WriteImage(sitk.ReadImage(str(REAL_MR)), str(img))
        _slicer_segmentation(labels, REAL_MR, tmp_path / f"P{i:02d}.seg.nrrd", [("tumour", 1), ("liver", 2)])
        rows.append(f"P{i:02d},{img.name},P{i:02d}.seg.nrrd#tumour,{'PR' if i % 2 else 'PD'}")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    cohort = read_cohort(tmp_path / "cohort.csv")
    assert len(cohort.table) == 20
    rows[1] = rows[1].replace("P00.seg.nrrd", "P00.segm.nrrd")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(CohortError, match="file P00.segm.nrrd#tumour not found"):
        read_cohort(tmp_path / "cohort.csv")
