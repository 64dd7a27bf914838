"""Scans found in folders (`srgan3d.discovery`)."""

from __future__ import annotations

import numpy as np
from conftest import write_dicom_series

from srgan3d.discovery import find_scans


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
