"""Masks from DICOM-SEG and RTSTRUCT on the grid of the image they were drawn on, against dcmqi's
NRRD references and an independent rasterisation."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolyPath

from srgan3d.io import read_mask, read_volume
from srgan3d.volume import LPS_TO_RAS, VolumeError

DATA = Path(__file__).resolve().parents[1] / "data"
CT = DATA / "ct_3slice"
SEG = DATA / "dicom_seg"
# dcmqi's references: the NRRD file and label of each segment of partial_overlaps.dcm
OVERLAPS = {"GREEN": (1, 1), "ORANGE": (2, 2), "PURPLE": (3, 3), "LIGHT_BLUE": (1, 4), "DARK_BLUE": (1, 5)}


@pytest.fixture(scope="module")
def ct():
    return read_volume(CT)


def test_the_liver_seg_equals_dcmqis_reference_voxel_for_voxel(ct):
    mask = read_mask(SEG / "liver.dcm", ct)
    ref = read_volume(SEG / "liver_seg.nrrd")
    np.testing.assert_allclose(ref.affine, ct.affine, atol=1e-3)  # the reference lies on the series' grid
    assert mask.shape == ct.shape and np.allclose(mask.affine, ct.affine)
    assert ref.data.sum() == 107098 and np.array_equal(mask.data > 0, ref.data > 0)
    # by label (any case) and by number, the same
    assert np.array_equal(read_mask(f"{SEG / 'liver.dcm'}#liver", ct).data, mask.data)
    assert np.array_equal(read_mask(f"{SEG / 'liver.dcm'}#1", CT).data, mask.data)  # the image given by its path


@pytest.mark.parametrize("name", list(OVERLAPS))
def test_each_overlapping_segment_equals_its_reference(ct, name):
    f, label = OVERLAPS[name]
    mask = read_mask(f"{SEG / 'partial_overlaps.dcm'}#{name}", ct)
    ref = read_volume(SEG / f"partial_overlaps-{f}.nrrd")
    assert mask.data.sum() > 1000 and np.array_equal(mask.data > 0, ref.data == label)


def test_several_segments_and_none_named_lists_them_and_an_unknown_one_is_named(ct):
    with pytest.raises(VolumeError, match=r"holds 5 segments \(1 \(GREEN\), 2 \(ORANGE\).*#GREEN"):
        read_mask(SEG / "partial_overlaps.dcm", ct)
    with pytest.raises(VolumeError, match=r"no segment 'RED'; it holds 1 \(GREEN\)"):
        read_mask(f"{SEG / 'partial_overlaps.dcm'}#RED", ct)


def test_a_seg_of_another_series_or_frame_of_reference_is_refused_with_both_uids(ct, tmp_path):
    ds = pydicom.dcmread(SEG / "liver.dcm")
    other = copy.deepcopy(ds)
    other.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.4.5"
    other.save_as(tmp_path / "other_series.dcm")
    with pytest.raises(VolumeError, match=rf"references series 1\.2\.3\.4\.5, but the image .* is series {ct.meta['series_uid']}"):
        read_mask(tmp_path / "other_series.dcm", ct)
    ds.FrameOfReferenceUID = "1.2.3.4.6"
    ds.save_as(tmp_path / "other_frame.dcm")
    with pytest.raises(VolumeError, match=rf"frame of reference 1\.2\.3\.4\.6, but the image .* has {ct.meta['frame_of_reference_uid']}"):
        read_mask(tmp_path / "other_frame.dcm", ct)
    nifti_image = read_volume(DATA / "totalseg_example_mr_sm.nii.gz")
    with pytest.raises(VolumeError, match="needs its image as a DICOM series"):
        read_mask(SEG / "liver.dcm", nifti_image)


def _lps(ct, ijk: np.ndarray) -> np.ndarray:
    """Voxel indices (i, j, k) of the CT -> LPS mm (as a contour's ContourData holds them)."""
    lps = LPS_TO_RAS @ ct.affine
    return (lps @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]


def _rtstruct(ct, rois: dict[str, list[np.ndarray]], path: Path) -> Path:
    """A structure set on the CT series (pydicom): each ROI's contours given in voxel indices."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.481.3", generate_uid(), "RTSTRUCT"
    frame = Dataset()
    frame.FrameOfReferenceUID = ct.meta["frame_of_reference_uid"]
    study, series = Dataset(), Dataset()
    series.SeriesInstanceUID = ct.meta["series_uid"]
    study.RTReferencedSeriesSequence = [series]
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = n, name
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = n
        rc.ContourSequence = []
        for ijk in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            pts = _lps(ct, ijk)
            c.NumberOfContourPoints, c.ContourData = len(pts), [f"{v:.6f}" for v in pts.ravel()]
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rtstruct_rasterises_a_known_polygon_by_the_documented_rule(ct, tmp_path):
    """A square whose corners lie on voxel centres: voxels with centres on its edge are in it (the
    documented rule); a square inside it on the same slice is a hole, its edge voxels with it; an
    ROI without contours and an unknown ROI are refused by name."""
    outer = np.array([[100, 200, 1], [110, 200, 1], [110, 215, 1], [100, 215, 1]], float)
    hole = np.array([[103, 204, 1], [106, 204, 1], [106, 208, 1], [103, 208, 1]], float)
    path = _rtstruct(ct, {"GTV": [outer, hole], "empty": []}, tmp_path / "rs.dcm")
    mask = read_mask(f"{path}#gtv", ct).data
    want = np.zeros(ct.shape, bool)
    want[100:111, 200:216, 1] = True  # edges included: i 100..110, j 200..215
    want[103:107, 204:209, 1] = False  # the hole, its edge voxels included (on its edge = inside the hole)
    assert mask.sum() == want.sum() and np.array_equal(mask > 0, want)
    with pytest.raises(VolumeError, match=r"ROI 2 \(empty\) has no contour"):
        read_mask(f"{path}#empty", ct)
    with pytest.raises(VolumeError, match=r"no ROI 'liver'; it holds 1 \(GTV\), 2 \(empty\)"):
        read_mask(f"{path}#liver", ct)


def test_rtstruct_agrees_with_an_independent_rasterisation(ct, tmp_path):
    """An irregular polygon off the voxel centres (no centre on its edge): the voxels inside are
    those matplotlib's point-in-polygon test finds."""
    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radius = rng.uniform(20, 45, 9)
    ij = np.c_[256.3 + radius * np.cos(angles), 240.7 + radius * np.sin(angles)]
    path = _rtstruct(ct, {"lesion": [np.c_[ij, np.full(len(ij), 2.0)]]}, tmp_path / "rs.dcm")
    mask = read_mask(path, ct).data[:, :, 2] > 0
    ii, jj = np.meshgrid(np.arange(ct.shape[0]), np.arange(ct.shape[1]), indexing="ij")
    inside = PolyPath(ij).contains_points(np.c_[ii.ravel(), jj.ravel()]).reshape(ii.shape)
    assert inside.sum() > 1000 and np.array_equal(mask, inside)
    assert read_mask(path, ct).data[:, :, [0, 1]].sum() == 0


def test_pydicoms_rtstruct_is_refused_on_another_image(ct):
    from pydicom.data import get_testdata_file

    rs = get_testdata_file("rtstruct.dcm")
    with pytest.raises(VolumeError, match="frame of reference .* but the image"):
        read_mask(f"{rs}#Body", ct)


def test_the_study_extracts_the_same_features_from_dicom_masks_as_from_the_same_masks_as_nifti(ct, tmp_path):
    """Radiomics before and after SR of a tiny cohort on the real CT: a DICOM-SEG segment and an
    RTSTRUCT ROI give the same features as those masks written as NIfTI."""
    import pandas as pd
    from conftest import FAST_PARAMS

    from srgan3d.io import write_volume
    from srgan3d.study.config import RadiomicsConfig
    from srgan3d.study.radiomics import extract_cohort

    seg = f"{SEG / 'partial_overlaps.dcm'}#DARK_BLUE"
    rng = np.random.default_rng(5)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
    ij = np.c_[300.2 + 25 * np.cos(angles), 260.6 + 18 * np.sin(angles)]
    rs = _rtstruct(ct, {"lesion": [np.c_[ij, np.full(len(ij), k)] for k in (0.0, 1.0, 2.0)]}, tmp_path / "rs.dcm")
    as_nifti = {name: write_volume(read_mask(m, ct), tmp_path / f"{name}.nii.gz")
                for name, m in (("seg", seg), ("rt", f"{rs}#lesion"))}  # fmt: skip
    table = pd.DataFrame({"patient_id": ["seg_dicom", "seg_nifti", "rt_dicom", "rt_nifti"], "image": [str(CT)] * 4,
                          "mask": [seg, str(as_nifti["seg"]), f"{rs}#lesion", str(as_nifti["rt"])]})  # fmt: skip
    (tmp_path / "fast.yaml").write_text(FAST_PARAMS)
    cfg = RadiomicsConfig(params=str(tmp_path / "fast.yaml"), method="sinc", margin_vox=2, workers=1)
    feats = extract_cohort(table, tmp_path / "f", cfg)
    assert not feats.failed
    for kind in ("seg", "rt"):
        for which in (feats.pre, feats.post):
            a, b = which.loc[f"{kind}_dicom"], which.loc[f"{kind}_nifti"]
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, err_msg=kind)
    assert feats.pre.loc["seg_dicom", "original_shape_VoxelVolume"] > 0


def test_a_fractional_seg_is_thresholded_at_one_half(ct, tmp_path):
    """The liver as a FRACTIONAL (probability) SEG: voxels at 200/255 are in, at 100/255 out."""
    ds = pydicom.dcmread(SEG / "liver.dcm")
    binary = ds.pixel_array.astype(np.uint8)
    frac = binary * 200
    frac[:, ::2, :] = np.where(binary[:, ::2, :] > 0, 100, 0)  # every other row below one half
    ds.SegmentationType, ds.SegmentationFractionalType, ds.MaximumFractionalValue = "FRACTIONAL", "PROBABILITY", 255
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = frac.tobytes()
    ds.save_as(tmp_path / "fractional.dcm")
    mask = read_mask(tmp_path / "fractional.dcm", ct).data > 0
    binary_mask = read_mask(SEG / "liver.dcm", ct).data > 0
    kept = binary_mask.copy()
    kept[:, ::2, :] = False  # SEG rows are the array's axis 1 (frames are rows x columns, placed by position)
    assert 0 < mask.sum() < binary_mask.sum() and np.array_equal(mask, kept)
