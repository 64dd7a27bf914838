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
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling, choose_window, upscale_volume
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import WeightsError, load_generator
from srgan3d.volume import Volume, upscaled_affine

# A model card whose training data are licence-clean (an Apache-2.0 source, `srgan3d.sr.licences`):
# what `--method auto` needs besides a held-out gain to take weights under the default name.
CLEAN = {"training_data": ["totalseg_example_ct_abdomen_pelvis_3mm.nii.gz"]}


def test_intensity_scaling_inverse_is_exact():
    x = smooth_volume((20, 20, 10)) * 3.7 - 100
    s = IntensityScaling.fit(x)
    y = s.forward(x)
    assert 0.0 < float(np.median(y)) < 1.0
    np.testing.assert_allclose(s.inverse(y), x, rtol=1e-5, atol=1e-3)


def _random_detail_generator(seed=0):
    torch.manual_seed(seed)
    model = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return model.eval()


@pytest.mark.parametrize(
    ("window", "overlap"), [((24, 24, 24), 0.5), ((48, 48, 48), 0.25), ((20, 48, 20), 0.6)]
)
def test_sliding_window_equals_whole_volume(window, overlap):
    """In fp32 (amp off, on every CPU): windows of other shapes round alike, so 1e-4 holds. The
    bf16 path has its own test with a tolerance from bf16's precision (tests/sr/test_bf16.py)."""
    model = _random_detail_generator()
    # Receptive radius 5.5 voxels fits in the halo: floor(24 * 0.5 / 2) = 6, floor(48 * 0.25 / 2) = 6.
    assert model.config.receptive_radius <= int(min(window) * overlap / 2)
    x = IntensityScaling.fit(smooth_volume((50, 41, 23))).forward(smooth_volume((50, 41, 23)))
    engine = GeneratorEngine(model, device=torch.device("cpu"), window=window, overlap=overlap, amp=False)
    assert engine.precision == "fp32"
    tiled = engine.run_network(x).numpy()
    with torch.inference_mode():
        whole = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert tiled.shape == whole.shape == (100, 82, 46)
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(whole).max() > 0.05  # the detail branch really contributes


def test_sinc_skip_untrained_generator_equals_sinc():
    x = smooth_volume((20, 18, 10))
    engine = GeneratorEngine(Generator(GeneratorConfig(channels=8, n_blocks=1)), device=torch.device("cpu"))
    g = upscale_volume(Volume(x, np.eye(4)), method="generator", factors=(2, 2, 2), engine=engine)
    s = upscale_volume(Volume(x, np.eye(4)), method="sinc", factors=(2, 2, 2))
    np.testing.assert_allclose(g.data, s.data, rtol=1e-4, atol=1e-2)


def test_background_stays_background():
    x = smooth_volume((24, 24, 12))
    x[:, :6] = 0  # padding outside the field of view
    for method in ("sinc", "tricubic"):
        out = upscale_volume(Volume(x, np.eye(4)), method=method, factors=(2, 2, 2)).data
        assert out.min() >= 0
        assert np.all(out[:, :10] == 0)  # inside the zero band (eroded by one coarse voxel)


def test_choose_window_respects_budget():
    assert choose_window((40, 40, 20), max_voxels=10**6, overlap=0.25) == (40, 40, 20)
    roi = choose_window((192, 192, 100), max_voxels=128**3, overlap=0.25)
    assert np.prod(roi) <= 128**3 and all(r <= n for r, n in zip(roi, (192, 192, 100), strict=True))


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


def test_missing_default_weights_say_how_to_get_them(tmp_path, oblique_nifti, monkeypatch):
    monkeypatch.setattr("srgan3d.sr.weights.PACKAGE_WEIGHTS", tmp_path / "none")
    with pytest.raises(WeightsError, match="--method sinc"):
        upscale_files(
            [oblique_nifti], tmp_path / "out", UpscaleConfig(method="generator", weights="srgan3d_x2")
        )


def test_auto_method_falls_back_to_sinc_without_weights(tmp_path, oblique_nifti, monkeypatch, caplog):
    monkeypatch.setattr("srgan3d.sr.weights.PACKAGE_WEIGHTS", tmp_path / "none")
    res = upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig())
    assert res.rows[0].status == "ok" and res.rows[0].method == "sinc"
    assert "no generator weights" in caplog.text
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path / "w"))
    from srgan3d.sr.nets import GeneratorConfig
    from srgan3d.sr.weights import save_weights

    # Installed weights whose card records no held-out abdominal test are not used by auto ...
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / "srgan3d_x2.pt", CLEAN)
    res = upscale_files([oblique_nifti], tmp_path / "out2", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "sinc"
    assert "records no test on held-out real abdominal MRI" in caplog.text
    # ... nor weights that lose to zero-filled k-space on one held-out volume by more than 0.05 dB ...
    vols = [
        {"name": "a", "psnr_gain_db": 0.8, "ssim": 0.95, "ssim_sinc": 0.94},
        {"name": "b", "psnr_gain_db": -0.2, "ssim": 0.95, "ssim_sinc": 0.94},
    ]
    held = {"volumes": vols}
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / "srgan3d_x2.pt",
                 {**CLEAN, "heldout_abdominal_mri": held})  # fmt: skip
    res = upscale_files([oblique_nifti], tmp_path / "out3", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "sinc" and "held-out b it is -0.20 dB" in caplog.text
    # ... only weights that gain on every held-out volume.
    vols[1]["psnr_gain_db"] = 0.1
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / "srgan3d_x2.pt",
                 {**CLEAN, "heldout_abdominal_mri": held})  # fmt: skip
    res = upscale_files([oblique_nifti], tmp_path / "out4", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "generator" and res.rows[0].weights == "srgan3d_x2"
    assert res.rows[0].data_consistency == "yes"


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


def test_adapt_fine_tunes_a_copy_per_scan_and_records_it(tmp_path, tiny_weights):
    import csv

    from srgan3d.io import write_volume
    from srgan3d.sr.adapt import adapt_generator
    from srgan3d.sr.upscale import UpscaleConfig, upscale_files
    from srgan3d.volume import Volume

    vol = Volume(smooth_volume((32, 32, 20), seed=3) * 500 + 100, np.diag([1.0, 1.0, 2.0, 1.0]), {})
    model, _ = load_generator(tiny_weights)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, info = adapt_generator(model, vol, steps=5, batch_size=2, patch_size=8)
    assert info["steps"] == 5 and info["seconds"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the input model changed"
    assert any(not torch.equal(before[k], v) for k, v in adapted.state_dict().items())

    src = write_volume(vol, tmp_path / "in" / "a.nii.gz")
    cfg = UpscaleConfig(method="generator", weights=str(tiny_weights), adapt_steps=3)
    res = upscale_files([src], tmp_path / "out", cfg)
    assert res.rows[0].status == "ok", res.rows[0].error
    row = next(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert row["adapt_steps"] == "3" and float(row["adapt_seconds"]) >= 0  # a time, however short
    assert read_volume(row["output"]).shape == (64, 64, 40)
    with pytest.raises(ValueError, match="adapt"):
        upscale_files([src], tmp_path / "o2", UpscaleConfig(method="tricubic", adapt_steps=3))
    with pytest.raises(ValueError, match="too small"):
        adapt_generator(model, Volume(np.ones((6, 6, 6), np.float32), np.eye(4), {}), steps=1)


def test_auto_takes_the_gan_only_when_its_card_beats_the_fidelity_model(tmp_path, oblique_nifti, monkeypatch):
    from srgan3d.sr.nets import GeneratorConfig
    from srgan3d.sr.weights import auto_weights, save_weights

    monkeypatch.setattr("srgan3d.sr.weights.PACKAGE_WEIGHTS", tmp_path / "none")
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path / "w"))

    def install(name, gains):
        vols = [{"name": f"v{k}", "psnr_gain_db": g, "ssim": 0.95, "ssim_sinc": 0.94} for k, g in enumerate(gains)]
        save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / f"{name}.pt",
                     {**CLEAN, "heldout_abdominal_mri": {"volumes": vols}})  # fmt: skip

    install("srgan3d_x2", [1.0, 0.8])
    assert auto_weights("srgan3d_x2") == "srgan3d_x2"  # no GAN installed
    install("srgan3d_x2_gan", [0.9, 0.6])  # eligible, but below the fidelity model
    assert auto_weights("srgan3d_x2") == "srgan3d_x2"
    install("srgan3d_x2_gan", [1.2, 0.9])  # beats it
    assert auto_weights("srgan3d_x2") == "srgan3d_x2_gan"
    res = upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(device="cpu"))
    assert res.rows[0].weights == "srgan3d_x2_gan"
    install("srgan3d_x2_gan", [2.0, -0.3])  # a higher mean, but below zero-fill on one volume
    assert auto_weights("srgan3d_x2") == "srgan3d_x2"
    assert auto_weights("mine.pt") == "mine.pt"  # a name the user chose is used as given


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


def test_named_weights_must_exist_even_with_auto(tmp_path, oblique_nifti):
    from srgan3d.sr.weights import WeightsError

    with pytest.raises(WeightsError, match="srgan3d_x2_typo"):
        upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(weights="srgan3d_x2_typo"))
    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("not weights")
    with pytest.raises(WeightsError, match="model card notes.json is missing"):
        upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(weights=str(not_weights)))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nii.gz"))
