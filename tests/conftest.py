from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from srgan3d.cli import app
from srgan3d.study.synthetic import CohortSpec, make_cohort

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
REAL_SCAN = TEST_DATA / "totalseg_example_mr_sm.nii.gz"
# A model card whose training data are licence-clean (an Apache-2.0 source, `srgan3d.sr.licences`):
# what `--method auto` needs besides a held-out gain to take weights under the default name.
#: A generator training run small enough for a test.
TINY_TRAIN = dict(channels=8, n_blocks=1, upsample_channels=8, patch_size=8, batch_size=2, val_crop=16, phantoms=1)
CLEAN_CARD = {"training_data": ["totalseg_example_ct_abdomen_pelvis_3mm.nii.gz"]}


def oblique_affine(spacing=(0.8, 1.1, 3.0), angles=(0.3, -0.2, 0.5), origin=(-40.0, 12.5, 7.0)) -> np.ndarray:
    """Rotation about three axes times anisotropic spacing, plus an origin."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def smooth_volume(shape, seed=0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return (500 + 2000 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)


@pytest.fixture
def oblique_nifti(tmp_path) -> Path:
    """A 16x16x8 oblique, anisotropic int16 NIfTI with scl_slope 2 and scl_inter 10."""
    data = (smooth_volume((16, 16, 8)) / 2).astype(np.int16)
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_slope_inter(2.0, 10.0)
    img.set_qform(oblique_affine(), code=1)
    img.set_sform(oblique_affine(), code=1)
    path = tmp_path / "oblique.nii.gz"
    nib.save(img, str(path))
    return path


def write_dicom_series(
    folder: Path,
    data_lps_rows: np.ndarray,
    *,
    row_dir=(0.9950, 0.0998, 0.0),
    col_dir=(-0.0998, 0.9950, 0.0),
    pixel_spacing=(0.7, 0.9),
    slice_step=2.5,
    origin=(-100.0, -80.0, 30.0),
    slope=2.0,
    intercept=-1024.0,
    series_uid="1.2.826.0.1.3680043.8.498.1",
    shuffle_seed=3,
    skip_slices=(),
    extra_gap_after=None,
    prefix="IM",
) -> list[dict]:
    """Write an MR series (one file per slice, names in shuffled order) with pydicom.

    `data_lps_rows[k]` is slice k as stored pixels (Rows x Columns, uint16). Returns, per written
    slice, the stored pixels and its ImagePositionPatient for independent checks.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    r, c = np.asarray(row_dir, float), np.asarray(col_dir, float)
    n = np.cross(r, c)
    written = []
    order = np.random.default_rng(shuffle_seed).permutation(len(data_lps_rows))
    for k in range(len(data_lps_rows)):
        if k in skip_slices:
            continue
        pos = np.asarray(origin) + n * slice_step * k
        if extra_gap_after is not None and k > extra_gap_after:
            pos = pos + n * 0.7
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.PatientID = "anon"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*r, *c)]
        ds.PixelSpacing = [str(pixel_spacing[0]), str(pixel_spacing[1])]
        ds.SliceThickness = str(slice_step)
        ds.RescaleSlope = str(slope)
        ds.RescaleIntercept = str(intercept)
        px = np.asarray(data_lps_rows[k], dtype=np.uint16)
        ds.Rows, ds.Columns = px.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = px.tobytes()
        ds.save_as(folder / f"{prefix}{order[k]:04d}.dcm", enforce_file_format=True)
        written.append({"pixels": px, "ipp": pos})
    return written


@pytest.fixture
def dicom_series(tmp_path):
    rng = np.random.default_rng(7)
    slices = rng.integers(0, 4000, size=(8, 12, 10)).astype(np.uint16)  # 8 slices of 12 rows x 10 columns
    folder = tmp_path / "series"
    written = write_dicom_series(folder, slices)
    return folder, written


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    """An untrained tiny generator whose detail branch is randomised (not the silent default)."""
    from srgan3d.sr.nets import Generator, GeneratorConfig
    from srgan3d.sr.weights import save_weights

    torch.manual_seed(0)
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return save_weights(model, tmp_path / "w" / "tiny_x2.pt", {"note": "untrained, for tests only"})


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def force_bf16(monkeypatch):
    """The bf16 path on any CPU: `use_bf16` answers as on a CPU with bf16 units (AMX-BF16 or
    AVX512-BF16), so the engine and training autocast to bf16. Where the CPU has no such units
    bf16 is emulated and slow: keep tests that use this tiny."""
    import srgan3d.sr.device as device

    monkeypatch.setattr(device, "_CPU_BF16", True)
    assert device.use_bf16(torch.device("cpu"), True)


def chromium_layout(html_path: Path, tmp_path: Path) -> dict:
    """Lay a report out in headless Chromium at 1280 px: the page width, the window width, and
    every table, figure or paragraph that reaches past the window. Skips the test where no
    Chromium is installed (`.ci/run` installs Debian's)."""
    import html as html_mod
    import json
    import re
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    probe = """<script>window.addEventListener('load', () => {
      const W = document.documentElement.clientWidth, wide = [];
      document.querySelectorAll('table, img, figure, p, ul, h1, h2').forEach((t) => {
        const r = t.getBoundingClientRect();
        if (r.right > W + 0.5) wide.push(t.tagName + ': ' + t.innerText.slice(0, 60));
      });
      const pre = document.createElement('pre'); pre.id = 'probe';
      pre.textContent = JSON.stringify({page: document.documentElement.scrollWidth, window: W, wide: wide});
      document.body.appendChild(pre);});</script>"""
    page = tmp_path / "probe_report.html"
    page.write_text(Path(html_path).read_text().replace("</body>", probe + "</body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                          "--disable-background-networking", "--disable-component-update", "--no-first-run",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html_mod.unescape(found.group(1)))


def toy_radiomics_cohort(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Radiomic features before and after SR (a weak signal in f0 before, a strong one in f1 after),
    the two clinical variables and labels, for the modelling and panel tests."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.55).astype(int)
    idx = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    noise = rng.normal(size=(n, 60))
    pre = pd.DataFrame(noise, index=idx, columns=[f"f{i}" for i in range(60)])
    pre["f0"] += 1.0 * y  # weak signal before SR
    post = pre.copy()
    post["f1"] += 2.0 * y  # stronger after
    pre["const"] = 1.0  # removed by the variance filter
    post["const"] = 1.0
    clin = pd.DataFrame(
        {
            "diameter_mm": rng.normal(40, 10, n) - 8 * y,
            "arterial_enhancement": (rng.random(n) < 0.4 + 0.3 * y).astype(float),
        },
        index=idx,
    )
    return pre, post, clin, y


FAST_PARAMS = """
imageType:
  Original: {}
featureClass:
  firstorder:
  glcm:
  glrlm:
  shape:
setting:
  normalize: true
  normalizeScale: 100
  voxelArrayShift: 300
  binWidth: 10
  label: 1
  minimumROISize: 8
"""


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A 24-patient synthetic cohort with a second phase and a 10-patient external set, and a fast
    pyradiomics parameter file beside it; one per test session."""
    root = tmp_path_factory.mktemp("cohort")
    spec = CohortSpec(n_patients=24, n_responders=12, shape=(64, 56, 24), spacing_mm=(2.0, 2.0, 3.5), second_phase=True,
                      n_external=10, external_responders=5)
    csv = make_cohort(root / "cohort", spec, seed=1, workers=2)
    (root / "fast.yaml").write_text(FAST_PARAMS)
    return csv


@pytest.fixture(scope="session")
def evaluated(tiny_cohort, tmp_path_factory) -> tuple[Path, list[str], str]:
    """One end-to-end `evaluate` of the tiny cohort (every part of the study): its output folder,
    arguments, and the digest of the cohort folder before it ran."""
    before = tree_digest(tiny_cohort.parent)
    out = tmp_path_factory.mktemp("evaluated") / "eval"
    args = ["evaluate", str(tiny_cohort), "-o", str(out), "--params", str(tiny_cohort.parent.parent / "fast.yaml"),
            "--bootstrap", "4", "--method", "sinc", "--workers", "2",
            "--classifiers", "lr,svm", "--panel-bootstrap", "2", "--comparators", "bclc,child_pugh",
            "--peritumoral", "6", "--dl", "resnet10", "--dl-epochs", "4", "--dl-crop-vox", "16", "--dl-widen", "0.25",
            "--dl-dual", "ring"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out, args, before


def noisy_generator(seed: int = 0):
    """A small generator with a non-trivial output (its last layer drawn, not zero)."""
    import torch

    from srgan3d.sr.nets import Generator, GeneratorConfig

    torch.manual_seed(seed)
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    torch.nn.init.normal_(model.tail.weight, std=0.2)
    return model
