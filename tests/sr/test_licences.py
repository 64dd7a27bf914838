"""Every shipped weights file has a licence derived from its data, the default is licence-clean,
NonCommercial weights are opt-in only, and the NOTICE in the wheel says so."""

from __future__ import annotations

import json
import logging

import pytest

from srgan3d.sr import DEFAULT_WEIGHTS
from srgan3d.sr.licences import UNSTATED, data_entries, notice_text, source_of, weights_licence
from srgan3d.sr.weights import PACKAGE_WEIGHTS

SHIPPED = sorted(PACKAGE_WEIGHTS.glob("*.pt"))


def _card(pt):
    return json.loads(pt.with_suffix(".json").read_text())


def test_the_package_ships_the_clean_default_and_its_opt_in_nc_pair():
    names = {p.stem for p in SHIPPED}
    assert {DEFAULT_WEIGHTS, DEFAULT_WEIGHTS + "_gan"} <= names
    assert {DEFAULT_WEIGHTS + "_nc", DEFAULT_WEIGHTS + "_gan_nc"} <= names


@pytest.mark.parametrize("pt", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_card_states_the_licence_of_each_file_that_trained_or_validated_it(pt):
    card = _card(pt)
    assert card["training_data"], f"{pt.name}: its card lists no training data"
    for key in ("training_data", "inherited_training_data", "validation_data"):
        for entry in card.get(key, []):
            assert isinstance(entry, dict) and entry.get("licence") and entry.get("source"), (pt.name, key, entry)
            assert source_of(entry["file"]) is not UNSTATED, f"{pt.name}: {entry['file']} has no known source"
    # the card's licence is the one its training data imply, not one typed in by hand
    training = [*card["training_data"], *card.get("inherited_training_data", [])]
    assert card["licence"] == weights_licence(data_entries([e["file"] for e in training])).to_dict()


@pytest.mark.parametrize("pt", SHIPPED, ids=lambda p: p.stem)
def test_no_default_weights_derive_from_noncommercial_or_noderivatives_data(pt):
    card = _card(pt)
    training = data_entries(
        [e["file"] for e in [*card["training_data"], *card.get("inherited_training_data", [])]]
    )
    restricted = [e["file"] for e in training if e["commercial_use"] is not True or e["derivatives"] is not True]
    if pt.stem.endswith("_nc"):
        assert card["licence"]["opt_in"] and not card["licence"]["shippable"]
        return
    # not opt-in: every source must allow commercial use and derivatives, with no share-alike
    assert not restricted, f"{pt.name} is a default but was trained on {restricted}"
    assert not [e["file"] for e in training if e["share_alike"] is not False]
    assert card["licence"]["licence"] == "Apache-2.0" and not card["licence"]["opt_in"]


def test_weights_licence_follows_the_most_restrictive_source():
    apache = data_entries(["totalseg_example_mr_sm.nii.gz", "mdreg_vfa_liver_t1_fa20.nii.gz"])
    assert weights_licence(apache).licence == "Apache-2.0" and weights_licence(apache).shippable
    chaos = weights_licence(apache + data_entries(["chaos_01-T2SPIR-src.nii.gz"]))
    assert (chaos.licence, chaos.opt_in) == ("CC BY-NC-SA 4.0", True) and "NonCommercial" in chaos.why
    gpl = weights_licence(apache + data_entries(["renalseg_sub02_cor_t2w_tse.nii.gz"]))
    assert (gpl.licence, gpl.opt_in) == ("GPL-3.0", True) and "copyleft" in gpl.why
    mine = weights_licence(apache + data_entries(["patient_007_arterial.nii.gz"]))
    assert (mine.licence, mine.opt_in) == ("not stated", True) and "patient_007_arterial" in mine.why
    # NonCommercial outranks copyleft and unstated terms
    both = weights_licence(data_entries(["renalseg_sub02.nii.gz", "x.nii.gz", "chaos_05-T2SPIR-src.nii.gz"]))
    assert both.licence == "CC BY-NC-SA 4.0"


def test_the_notice_in_the_wheel_lists_every_weights_file_as_its_card_says():
    notice = (PACKAGE_WEIGHTS / "NOTICE").read_text()
    assert notice == notice_text({p.stem: _card(p) for p in SHIPPED}), "run python tools/weights_notice.py"
    for p in SHIPPED:
        assert f"{p.name}\n  licence: {_card(p)['licence']['licence']}" in notice


def test_auto_never_takes_opt_in_weights_and_naming_them_says_their_licence_once(
    tmp_path, oblique_nifti, monkeypatch, caplog
):
    from srgan3d.sr.config import UpscaleConfig
    from srgan3d.sr.nets import Generator, GeneratorConfig
    from srgan3d.sr.upscale import upscale_files
    from srgan3d.sr.weights import save_weights

    monkeypatch.setattr("srgan3d.sr.weights.PACKAGE_WEIGHTS", tmp_path / "none")
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path / "w"))
    vols = [{"name": "a", "psnr_gain_db": 1.0, "ssim": 0.95, "ssim_sinc": 0.94}]
    nc = {"training_data": ["chaos_01-T2SPIR-src.nii.gz"], "heldout_abdominal_mri": {"volumes": vols}}
    save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1)), tmp_path / "w" / f"{DEFAULT_WEIGHTS}.pt", nc)
    caplog.set_level(logging.WARNING)
    res = upscale_files([oblique_nifti], tmp_path / "out", UpscaleConfig(device="cpu"))
    assert res.rows[0].method == "sinc"
    assert "its licence is CC BY-NC-SA 4.0" in caplog.text
    caplog.clear()
    named = UpscaleConfig(device="cpu", method="generator", weights=DEFAULT_WEIGHTS)
    second = tmp_path / "second.nii.gz"
    second.write_bytes(oblique_nifti.read_bytes())
    res = upscale_files([oblique_nifti, second], tmp_path / "out2", named)
    assert [r.weights_licence for r in res.rows] == ["CC BY-NC-SA 4.0"] * 2
    assert caplog.text.count("licence CC BY-NC-SA 4.0") == 1, caplog.text


def test_a_fine_tune_inherits_the_licence_of_the_weights_it_started_from(tmp_path):
    """Weights fine-tuned from NonCommercial weights still hold what those learnt: the exported
    card lists the starting weights' training data and takes their licence."""
    from srgan3d.sr.config import TrainConfig
    from srgan3d.sr.export import export_weights
    from srgan3d.sr.nets import Generator, GeneratorConfig
    from srgan3d.sr.train import train
    from srgan3d.sr.weights import save_weights

    start = save_weights(Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8)),
                         tmp_path / "start" / "base_nc.pt", {"training_data": ["chaos_01-T2SPIR-src.nii.gz"]})  # fmt: skip
    tiny = TrainConfig(channels=8, n_blocks=1, upsample_channels=8, patch_size=8, batch_size=2, val_crop=16,
                       phantoms=1, pretrain_steps=1, gan_steps=0)  # fmt: skip
    train([], tmp_path / "ft", tiny, init=start)
    out = export_weights(tmp_path / "ft", tmp_path / "w" / "ft.pt")
    card = json.loads(out.with_suffix(".json").read_text())
    assert [e["file"] for e in card["inherited_training_data"]] == ["chaos_01-T2SPIR-src.nii.gz"]
    assert card["licence"]["licence"] == "CC BY-NC-SA 4.0" and card["licence"]["opt_in"]
    assert "CC BY-NC-SA 4.0" in out.with_suffix(".md").read_text()


def test_the_wheel_carries_every_weights_file_its_card_and_the_notice():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["srgan3d"]
    for f in sorted(PACKAGE_WEIGHTS.iterdir()):
        rel = f.relative_to(root / "srgan3d").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} would be left out of the wheel"
