"""`upscale --output-format dicom`: a derived series that the project's reader and dcm2niix read
back to the NIfTI output's voxels and geometry, with new UIDs where a PACS needs them and the
original's where a viewer places it."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from srgan3d.cli import app
from srgan3d.io import read_volume

CT = Path(__file__).resolve().parents[1] / "data" / "ct_3slice"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_out")
    for fmt in ("nifti", "dicom"):
        res = CliRunner().invoke(app, ["upscale", str(CT), "-o", str(root / fmt), "--method", "sinc",
                                       "--output-format", fmt])  # fmt: skip
        assert res.exit_code == 0, res.output
    return root


def test_the_series_reads_back_as_the_nifti_output_within_the_rescale_step(outputs):
    nifti = read_volume(outputs / "nifti" / "ct_3slice_sr2x.nii.gz")
    series = outputs / "dicom" / "ct_3slice_sr2x"
    back = read_volume(series)
    assert back.shape == nifti.shape == (1024, 1024, 6)
    np.testing.assert_allclose(back.affine, nifti.affine, atol=1e-4)
    step = float(pydicom.dcmread(sorted(series.glob("*.dcm"))[0]).RescaleSlope)
    assert np.abs(back.data - nifti.data).max() <= step  # rounding to the step, plus float32 in the reader
    assert not list((outputs / "dicom").glob(".*tmp*")), "a temporary folder was left"


def test_uids_are_new_where_they_must_be_and_kept_where_a_viewer_needs_them(outputs):
    src = [pydicom.dcmread(p) for p in sorted(CT.glob("*.dcm"))]
    out = [pydicom.dcmread(p) for p in sorted((outputs / "dicom" / "ct_3slice_sr2x").glob("*.dcm"))]
    s0 = src[0]
    assert len({d.SOPInstanceUID for d in out}) == 6 and not {d.SOPInstanceUID for d in out} & {d.SOPInstanceUID for d in src}
    assert {d.SeriesInstanceUID for d in out} == {out[0].SeriesInstanceUID} != {s0.SeriesInstanceUID}
    for d in out:
        assert d.StudyInstanceUID == s0.StudyInstanceUID and d.FrameOfReferenceUID == s0.FrameOfReferenceUID
        assert d.PatientID == s0.PatientID and d.get("PatientName") == s0.get("PatientName")
        assert list(d.ImageType[:2]) == ["DERIVED", "SECONDARY"] and d.SeriesNumber == s0.SeriesNumber + 1000
        assert d.SeriesDescription.endswith("SR 2x") and "sinc" in d.DerivationDescription
        assert d.ReferencedSeriesSequence[0].SeriesInstanceUID == s0.SeriesInstanceUID
        assert d.SourceImageSequence[0].ReferencedSOPInstanceUID in {x.SOPInstanceUID for x in src}
        assert d.WindowCenter == s0.WindowCenter and d.WindowWidth == s0.WindowWidth
        assert float(d.SliceThickness) == pytest.approx(0.5, abs=1e-6) and float(d.PixelSpacing[0]) == pytest.approx(
            float(s0.PixelSpacing[0]) / 2, abs=1e-6)  # fmt: skip
    assert [int(d.InstanceNumber) for d in out] == list(range(1, 7))


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix (Debian package) is not installed")
def test_dcm2niix_converts_it_to_the_same_geometry(outputs, tmp_path):
    subprocess.run(["dcm2niix", "-o", str(tmp_path), "-f", "sr", str(outputs / "dicom" / "ct_3slice_sr2x")],
                   check=True, capture_output=True)  # fmt: skip
    theirs = nib.as_closest_canonical(nib.load(tmp_path / "sr.nii"))
    ours = nib.as_closest_canonical(nib.load(outputs / "nifti" / "ct_3slice_sr2x.nii.gz"))
    np.testing.assert_allclose(theirs.affine, ours.affine, atol=1e-3)
    step = float(pydicom.dcmread(sorted((outputs / "dicom" / "ct_3slice_sr2x").glob("*.dcm"))[0]).RescaleSlope)
    assert np.abs(np.asarray(theirs.dataobj, float) - np.asarray(ours.dataobj, float)).max() <= step


def test_a_second_run_keeps_the_series_and_a_nifti_input_gets_nifti(outputs, tmp_path):
    res = CliRunner().invoke(app, ["upscale", str(CT), "-o", str(outputs / "dicom"), "--method", "sinc",
                                   "--output-format", "dicom"])  # fmt: skip
    assert res.exit_code == 0 and "1 skipped" in res.output
    nii = outputs / "nifti" / "ct_3slice_sr2x.nii.gz"
    res = CliRunner().invoke(app, ["upscale", str(nii), "-o", str(tmp_path / "n"), "--method", "sinc",
                                   "--output-format", "dicom"])  # fmt: skip
    assert res.exit_code == 0, res.output
    row = next(csv.DictReader((tmp_path / "n" / "manifest.csv").open()))
    assert row["output"].endswith(".nii.gz") and "gets NIfTI output" in row["note"]
    res = CliRunner().invoke(app, ["upscale", str(CT), "-o", str(tmp_path / "x"), "--output-format", "png"])
    assert res.exit_code != 0 and "--output-format must be nifti or dicom" in res.output


def test_a_generator_series_names_its_weights_full_sha256(tmp_path, tiny_weights):
    """The derived series says what made it: the method and the weights' whole checksum."""
    from srgan3d.sr.weights import sha256_file

    res = CliRunner().invoke(app, ["upscale", str(CT), "-o", str(tmp_path / "g"), "--method", "generator",
                                   "--weights", str(tiny_weights), "--output-format", "dicom"])  # fmt: skip
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "g" / "ct_3slice_sr2x").iterdir())
    d = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert "generator" in d.DerivationDescription and "by srgan3d" in d.DerivationDescription
    assert f"weights sha256 {sha256_file(tiny_weights)}" in d.DerivationDescription
