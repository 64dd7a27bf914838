"""Generator weights: the model card, the sha256 check, safe loading (`weights_only=True`), finding
weights by name, and the rule that lets `--method auto` use a set of weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srgan3d.sr import DEFAULT_WEIGHTS
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.weights import (
    GAN_SUFFIX,
    HELDOUT_KEY,
    SITE_KEY,
    WeightsError,
    WeightsInfo,
    auto_eligibility,
    auto_weights,
    find_weights,
    load_generator,
    save_weights,
    sha256_file,
)


def _tiny(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))


def test_saved_weights_load_back_exactly_with_their_card(tmp_path):
    model = _tiny()
    path = save_weights(model, tmp_path / "mine.pt", {"note": "test"})
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(path) and card["file"] == "mine.pt" and card["note"] == "test"
    assert GeneratorConfig.from_dict(card["generator"]) == model.config
    loaded, info = load_generator(path)
    assert info.sha256 == card["sha256"] and info.name == "mine"
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    assert not loaded.training  # ready for inference


def test_a_changed_file_is_refused_by_its_sha256(tmp_path):
    path = save_weights(_tiny(), tmp_path / "mine.pt", {})
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(WeightsError, match="does not match its model card"):
        load_generator(path)


def test_a_card_without_sha256_is_refused(tmp_path):
    path = save_weights(_tiny(), tmp_path / "mine.pt", {})
    card = json.loads(path.with_suffix(".json").read_text())
    del card["sha256"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="no sha256"):
        load_generator(path)


class _Payload:
    """Not a tensor: `torch.load(weights_only=True)` must refuse to rebuild it."""


def test_a_pickled_object_is_never_unpickled(tmp_path):
    path = save_weights(_tiny(), tmp_path / "mine.pt", {})
    torch.save({"x": _Payload()}, path)  # a file that would run code on a full unpickle
    card = json.loads(path.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(path)  # even with a matching card
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        load_generator(path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = save_weights(_tiny(), tmp_path / "mine.pt", {})
    card = json.loads(path.with_suffix(".json").read_text())
    card["generator"]["channels"] = 16
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="do not fit the generator"):
        load_generator(path)


def test_weights_are_found_by_name_first_in_the_users_folder(tmp_path, monkeypatch):
    save_weights(_tiny(), tmp_path / "site_x2.pt", {"note": "the site's"})
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path))
    assert find_weights("site_x2").card["note"] == "the site's"
    assert find_weights(DEFAULT_WEIGHTS).path.parent.name == "weights"  # the shipped ones still resolve
    with pytest.raises(WeightsError, match=r"'nope' not found \(installed: .*site_x2"):
        find_weights("nope")
    (tmp_path / "lonely.pt").write_bytes(b"")
    with pytest.raises(WeightsError, match="model card lonely.json is missing"):
        find_weights(tmp_path / "lonely.pt")


def test_the_shipped_weights_load_and_match_their_cards():
    for name in (DEFAULT_WEIGHTS, DEFAULT_WEIGHTS + GAN_SUFFIX):
        model, info = load_generator(name)
        assert info.sha256 == sha256_file(info.path)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters()), name


def _card(gains: list[float], ssim_gain: float = 0.01) -> dict:
    vols = [{"name": f"v{i}", "psnr_gain_db": g, "ssim": 0.9 + ssim_gain, "ssim_sinc": 0.9} for i, g in enumerate(gains)]
    # licence-clean training data (an Apache-2.0 source): auto may take them under the default name
    return {HELDOUT_KEY: {"volumes": vols}, "training_data": ["totalseg_example_mr_sm.nii.gz"]}


@pytest.mark.parametrize(
    ("card", "eligible", "why"),
    [
        ({}, False, "records no test on held-out real abdominal MRI"),
        (_card([0.4, -0.02]), True, "+0.19 dB over zero-filled k-space on 2"),
        (_card([0.4, -0.3]), False, "-0.30 dB"),  # the mean gains, but one volume loses
        (_card([-0.1, -0.02]), False, "-0.06 dB against zero-filled k-space"),
        (_card([0.5, 0.3], ssim_gain=-0.002), False, "SSIM is -0.0020 below"),
        (_card([0.5, -0.05]), True, "+0.23 dB"),  # a loss of 0.05 dB is within the rule
    ],
)  # fmt: skip
def test_auto_uses_weights_only_on_a_measured_held_out_gain(card, eligible, why):
    ok, reason = auto_eligibility(WeightsInfo("w", Path("w.pt"), card))
    assert ok is eligible and why in reason, reason


def test_site_weights_must_beat_zero_fill_and_the_weights_they_started_from():
    site = {"gain_vs_sinc_db": 0.6, "gain_vs_init_db": 0.2, "ssim": 0.91, "ssim_sinc": 0.90}
    assert auto_eligibility(WeightsInfo("s", Path("s.pt"), {SITE_KEY: site}))[0]
    worse = {**site, "gain_vs_init_db": -0.1}
    ok, reason = auto_eligibility(WeightsInfo("s", Path("s.pt"), {SITE_KEY: worse}))
    assert not ok and "use those instead" in reason


def test_auto_takes_the_gan_only_when_it_beats_the_fidelity_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SRGAN3D_WEIGHTS_DIR", str(tmp_path))

    def write(name: str, gain: float) -> None:
        save_weights(_tiny(), tmp_path / f"{name}.pt", _card([gain, gain]))

    write(DEFAULT_WEIGHTS, 0.5)
    write(DEFAULT_WEIGHTS + GAN_SUFFIX, 0.8)
    assert auto_weights(DEFAULT_WEIGHTS) == DEFAULT_WEIGHTS + GAN_SUFFIX
    write(DEFAULT_WEIGHTS + GAN_SUFFIX, 0.3)  # eligible, but below the fidelity model
    assert auto_weights(DEFAULT_WEIGHTS) == DEFAULT_WEIGHTS
    assert auto_weights("other_weights") == "other_weights"  # a name the user chose is used as given


def test_the_model_card_is_typed_where_the_tool_reads_it():
    from srgan3d.sr.weights import WeightsCard

    info = find_weights(DEFAULT_WEIGHTS)
    card = info.card
    assert isinstance(card, WeightsCard) and card.kind == "generator" and card.trained_for_dc
    assert card.generator == GeneratorConfig() and card.sha256 == info.sha256 and len(card.sha256) == 64
    assert card.licence.licence == "Apache-2.0" and card.held_out_gain_db is None and card.protocol is None
    # as written: the JSON file's content, key for key
    assert card.to_dict() == json.loads(info.path.with_suffix(".json").read_text())
    tp = WeightsCard({"kind": "through-plane", "plane_net": {"channels": 8}, "held_out": {"gain_db": 0.4},
                      "protocol": {"profile": "boxcar", "factor": 2, "spacing_mm": 4.0, "thickness_mm": 4.0,
                                   "inplane_mm": [1.0, 1.0]}})  # fmt: skip
    assert tp.kind == "through-plane" and tp.plane_net == {"channels": 8} and tp.held_out_gain_db == 0.4
    assert tp.generator is None and tp.protocol is not None and tp.protocol.profile == "boxcar"
    assert tp.protocol.inplane_factor == 1 and not tp.trained_for_dc  # a card from before inplane_factor


def test_the_shipped_cards_configs_come_back_through_the_serialiser_unchanged():
    """The SR configs moved onto the one serialiser: every card's generator, recipe, through-plane
    config and licence reads back and writes the same JSON (a recipe field added since a card was
    written comes back at its default, and only those)."""
    import json

    from srgan3d.sr.config import GeneratorConfig, ThroughPlaneConfig, TrainConfig
    from srgan3d.sr.licences import WeightsLicence

    kinds = {"generator": GeneratorConfig, "recipe": TrainConfig, "config": ThroughPlaneConfig, "licence": WeightsLicence}
    checked = 0
    import srgan3d.sr.weights as weights_mod

    for card in sorted((Path(weights_mod.__file__).parent / "weights").glob("*.json")):
        d = json.loads(card.read_text())
        for key, cls in kinds.items():
            if isinstance(d.get(key), dict):
                back = cls.from_dict(d[key]).to_dict()
                added = {k for k in back if k not in d[key]}
                assert added <= {"holdout", "minutes"}, (card.name, key, added)  # recipe fields added since
                assert json.dumps({k: v for k, v in back.items() if k not in added}) == json.dumps(d[key]), (card.name, key)
                checked += 1
    assert checked >= 10
