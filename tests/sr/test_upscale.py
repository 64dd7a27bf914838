from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REAL_SCAN, smooth_volume, tree_digest, write_dicom_series

from srgan3d.io import read_volume
from srgan3d.sr.engine import GeneratorEngine, upscale_volume
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import WeightsError, load_generator
from srgan3d.volume import Volume, upscaled_affine


@pytest.mark.parametrize("method", ["sinc", "tricubic", "generator"])
def test_real_scan_upscales_with_exact_geometry(tmp_path, tiny_weights, method):
    before = tree_digest(REAL_SCAN.parent)
    config = UpscaleConfig(method=method, weights=str(tiny_weights), window=(64, 64, 20))
    result = upscale_files([REAL_SCAN], tmp_path / "out", config)
    (row,) = result.rows
    assert row.status == "ok", row.error
    src, out = nib.load(str(REAL_SCAN)), nib.load(row.output)
    assert out.shape == tuple(2 * n for n in src.shape)
    np.testing.assert_allclose(out.affine, upscaled_affine(src.affine, 2), atol=1e-5)
    assert nib.aff2axcodes(out.affine) == ("L", "P", "S")
    assert (
        int(out.header["sform_code"]) == int(src.header["sform_code"]) and int(out.header["qform_code"]) == 0
    )
    from srgan3d.sr.device import use_bf16

    # The manifest records the precision the network ran in: bf16 only where the CPU has bf16 units.
    expected = ("bf16" if use_bf16(torch.device("cpu"), True) else "fp32") if method == "generator" else ""
    assert row.precision == expected
    data = out.get_fdata()
    if method != "generator":  # the test generator is untrained; interpolation must stay faithful
        from srgan3d.sr.degrade import degrade_array

        back = degrade_array(data.astype(np.float32), 2)
        orig = np.asarray(src.dataobj, dtype=np.float32)
        assert np.corrcoef(back.ravel(), orig.ravel())[0, 1] > 0.98
    assert tree_digest(REAL_SCAN.parent) == before


def _nifti(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def test_batch_reports_every_bad_scan_and_goes_on(tmp_path, oblique_nifti):
    root = tmp_path / "in"
    good = root / "sub" / "good.nii.gz"
    good.parent.mkdir(parents=True)
    good.write_bytes(oblique_nifti.read_bytes())
    (root / "truncated.nii.gz").write_bytes(oblique_nifti.read_bytes()[:400])
    _nifti(root / "flat2d.nii.gz", np.ones((8, 8), np.float32))
    _nifti(root / "four_d.nii.gz", np.ones((6, 6, 4, 3), np.float32))
    _nifti(root / "nan.nii.gz", np.full((6, 6, 4), np.nan, np.float32))
    (root / "readme.txt").write_text("not an image")
    (root / "junk.dcm").write_bytes(b"\x00" * 50)
    (root / "vol.nrrd").write_text("NRRD0004")
    (root / "vol.mgz").write_bytes(b"\x00" * 10)
    write_dicom_series(root / "gappy", np.ones((6, 5, 5), np.uint16), skip_slices=(2,))
    write_dicom_series(root / "dicom_ok", np.full((4, 6, 6), 100, np.uint16))
    before = tree_digest(root)

    result = upscale_files([root], tmp_path / "out", UpscaleConfig(method="sinc"))

    status = {r.input.split("/in/")[-1]: (r.status, r.error) for r in result.rows}
    assert status["sub/good.nii.gz"][0] == "ok"
    assert status["dicom_ok"][0] == "ok"
    expected_errors = {
        "truncated.nii.gz": "truncated or damaged",
        "flat2d.nii.gz": "a single 2D slice",
        "four_d.nii.gz": "expected one 3D volume",
        "nan.nii.gz": "NaN",
        "gappy": "missing",
        "vol.nrrd": "not a readable NRRD/MetaImage file",
        "vol.mgz": "unsupported image format",
        "": "junk.dcm",  # the folder `in` itself, as a DICOM series of one damaged file
    }
    for name, fragment in expected_errors.items():
        key = name or str(root).split("/in")[-1]
        matches = [v for k, v in status.items() if k == key or (not name and k.endswith("/in"))]
        assert matches and matches[0][0] == "failed" and fragment in matches[0][1], (name, status)
    assert "readme.txt" not in " ".join(status)
    assert tree_digest(root) == before, "inputs were modified"
    out = tmp_path / "out" / "sub" / "good_sr2x.nii.gz"
    assert read_volume(out).shape == (32, 32, 16)
    with (tmp_path / "out" / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.rows) and {r["status"] for r in rows} == {"ok", "failed"}
    ok = next(r for r in rows if r["input"].endswith("good.nii.gz"))
    assert ok["input_shape"] == "16x16x8" and ok["output_shape"] == "32x32x16" and ok["torch"]


def test_resume_skips_finished_outputs_and_overwrite_redoes(tmp_path, oblique_nifti):
    out = tmp_path / "out"
    first = upscale_files([oblique_nifti], out, UpscaleConfig(method="tricubic"))
    assert first.rows[0].status == "ok"
    mtime = (out / "oblique_sr2x.nii.gz").stat().st_mtime_ns
    second = upscale_files([oblique_nifti], out, UpscaleConfig(method="tricubic"))
    assert second.rows[0].status == "skipped"
    assert (out / "oblique_sr2x.nii.gz").stat().st_mtime_ns == mtime
    third = upscale_files([oblique_nifti], out, UpscaleConfig(method="tricubic", overwrite=True))
    assert third.rows[0].status == "ok"


def test_outputs_inside_the_input_folder_are_not_rediscovered(tmp_path, oblique_nifti):
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.nii.gz").write_bytes(oblique_nifti.read_bytes())
    upscale_files([root], root / "sr", UpscaleConfig(method="sinc"))
    again = upscale_files([root], root / "sr", UpscaleConfig(method="sinc"))
    assert [r.input for r in again.rows] == [str(root / "a.nii.gz")]


def test_empty_folder_and_unwritable_output(tmp_path, oblique_nifti):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no scans found"):
        upscale_files([tmp_path / "empty"], tmp_path / "out", UpscaleConfig(method="sinc"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write outputs there"):
        upscale_files([oblique_nifti], blocker / "out", UpscaleConfig(method="sinc"))


def test_through_plane_picks_the_thickest_axis(tmp_path):
    aff = np.diag([3.0, 0.8, 0.8, 1.0])  # slices along X
    vol = Volume(smooth_volume((6, 16, 16)), aff)
    cfg = UpscaleConfig(method="sinc", through_plane=True)
    factors = cfg.factors_for(vol)
    assert factors == (2, 1, 1)
    out = upscale_volume(vol, method="sinc", factors=factors)
    assert out.shape == (12, 16, 16)
    np.testing.assert_allclose(out.spacing_mm, (1.5, 0.8, 0.8))
    torch.manual_seed(0)
    model = Generator(GeneratorConfig(channels=8, n_blocks=0, upsample_channels=8, scale=(1, 1, 2))).eval()
    engine = GeneratorEngine(model, device=torch.device("cpu"))
    g = upscale_volume(vol, method="generator", factors=factors, engine=engine)
    assert g.shape == (12, 16, 16)
    with pytest.raises(ValueError, match="cannot upscale by"):
        upscale_volume(vol, method="generator", factors=(2, 2, 2), engine=engine)


def test_weights_are_checked_and_loaded_safely(tmp_path, tiny_weights):
    model, info = load_generator(tiny_weights)
    assert info.sha256 and model.config.channels == 8
    # A tampered file is refused by its checksum.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t.pt").write_bytes(tiny_weights.read_bytes() + b"\x00")
    (bad / "t.json").write_text(tiny_weights.with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="does not match its model card"):
        load_generator(bad / "t.pt")
    # A pickle carrying an arbitrary object is refused by weights_only loading.
    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save({"x": Volume}, evil / "e.pt")
    from srgan3d.sr.weights import sha256_file

    card = {"generator": GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8).to_dict()}
    (evil / "e.json").write_text(json.dumps({**card, "sha256": sha256_file(evil / "e.pt")}))
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        load_generator(evil / "e.pt")
    # A card without a checksum is refused: nothing would check the file.
    (evil / "e.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="no sha256"):
        load_generator(evil / "e.pt")


def test_shards_partition_the_scans_and_merge_into_one_manifest(tmp_path):
    import csv

    from srgan3d.io import write_volume
    from srgan3d.sr.upscale import UpscaleConfig, merge_manifests, upscale_files
    from srgan3d.volume import Volume

    src = tmp_path / "in"
    for i in range(5):
        write_volume(
            Volume(np.full((6, 6, 4), float(i + 1), np.float32), np.eye(4), {}), src / f"s{i}.nii.gz"
        )
    (src / "broken.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    for k in (1, 2):
        upscale_files([src], out, UpscaleConfig(method="trilinear", shard=(k, 2)))
    with pytest.raises(FileNotFoundError, match="3/3"):
        upscale_files([src], tmp_path / "o3", UpscaleConfig(method="trilinear", shard=(1, 3)))
        merge_manifests(tmp_path / "o3")
    merged = merge_manifests(out)
    rows = list(csv.DictReader(merged.open()))
    assert len(rows) == 6 and len({r["input"] for r in rows}) == 6
    assert sum(r["status"] == "ok" for r in rows) == 5
    assert [r["status"] for r in rows if "broken" in r["input"]] == ["failed"]
    assert len(list(out.glob("*_sr2x.nii.gz"))) == 5
    with pytest.raises(ValueError, match="K/N"):
        UpscaleConfig(shard=(3, 2))


def test_clear_refusals_name_the_input_and_the_fix(tmp_path, oblique_nifti):
    import torch as _torch

    # through-plane on isotropic voxels: no slice axis to pick; the scan fails with the fix, the batch goes on
    iso = _nifti(tmp_path / "in" / "iso.nii.gz", smooth_volume((12, 12, 12)).astype(np.float32), np.diag([1.5, 1.5, 1.5, 1]))
    res = upscale_files([iso, oblique_nifti], tmp_path / "out", UpscaleConfig(method="sinc", through_plane=True))
    by_name = {Path(r.input).name: r for r in res.rows}
    assert by_name["iso.nii.gz"].status == "failed"
    assert "iso.nii.gz: --scale through-plane" in by_name["iso.nii.gz"].error
    assert "isotropic (1.5x1.5x1.5 mm)" in by_name["iso.nii.gz"].error and "--scale 1,1,2" in by_name["iso.nii.gz"].error
    assert by_name[oblique_nifti.name].status == "ok"
    # an unknown method names the default too
    with pytest.raises(ValueError, match=r"choose from auto \(the default\), generator"):
        UpscaleConfig(method="bogus")
    # --device cuda without CUDA is refused even for a method that needs no network
    if not _torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device; use --device cpu"):
            upscale_files([oblique_nifti], tmp_path / "out2", UpscaleConfig(method="sinc", device="cuda"))
    # a 1x1x1 image is not called a 2D slice
    one = _nifti(tmp_path / "in2" / "one.nii.gz", np.ones((1, 1, 1), np.float32))
    res = upscale_files([one], tmp_path / "out3", UpscaleConfig(method="sinc"))
    assert res.rows[0].status == "failed" and "a single voxel or a line of voxels" in res.rows[0].error
    assert "one.nii.gz" in res.rows[0].error


