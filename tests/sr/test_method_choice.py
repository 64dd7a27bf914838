"""Which method and weights `--method auto` runs (`srgan3d.sr.method_choice`): the generator only on
a measured held-out gain, zero-filled k-space otherwise, and named weights must exist."""

from __future__ import annotations

import pytest
from conftest import CLEAN_CARD

from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.upscale import UpscaleConfig, upscale_files
from srgan3d.sr.weights import WeightsError


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
    from srgan3d.sr.weights import save_weights

    # Installed weights whose card records no held-out abdominal test are not used by auto ...
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / "srgan3d_x2.pt", CLEAN_CARD)
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
                 {**CLEAN_CARD, "heldout_abdominal_mri": held})  # fmt: skip
    res = upscale_files([oblique_nifti], tmp_path / "out3", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "sinc" and "held-out b it is -0.20 dB" in caplog.text
    # ... only weights that gain on every held-out volume.
    vols[1]["psnr_gain_db"] = 0.1
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / "srgan3d_x2.pt",
                 {**CLEAN_CARD, "heldout_abdominal_mri": held})  # fmt: skip
    res = upscale_files([oblique_nifti], tmp_path / "out4", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "generator" and res.rows[0].weights == "srgan3d_x2"
    assert res.rows[0].data_consistency == "yes"


def test_auto_takes_the_gan_only_when_its_card_beats_the_fidelity_model(tmp_path, oblique_nifti, monkeypatch):
    from srgan3d.sr.weights import auto_weights, save_weights

    monkeypatch.setattr("srgan3d.sr.weights.PACKAGE_WEIGHTS", tmp_path / "none")
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path / "w"))

    def install(name, gains):
        vols = [{"name": f"v{k}", "psnr_gain_db": g, "ssim": 0.95, "ssim_sinc": 0.94} for k, g in enumerate(gains)]
        save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / f"{name}.pt",
                     {**CLEAN_CARD, "heldout_abdominal_mri": {"volumes": vols}})  # fmt: skip

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


def test_named_weights_must_exist_even_with_auto(tmp_path, oblique_nifti):
    from srgan3d.sr.weights import WeightsError

    with pytest.raises(WeightsError, match="srgan3d_x2_typo"):
        upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(weights="srgan3d_x2_typo"))
    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("not weights")
    with pytest.raises(WeightsError, match="model card notes.json is missing"):
        upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(weights=str(not_weights)))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nii.gz"))
