"""The SR wing's configs (`srgan3d.sr.config`): strict recipes, the learning-rate schedules, the
training defaults."""

from __future__ import annotations

import pytest

from srgan3d.sr.train import TrainConfig


def test_config_is_strict(tmp_path):
    (tmp_path / "r.yaml").write_text("channels: 16\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"r.yaml: TrainConfig: unknown key\(s\) learning_rate; its keys are"):
        TrainConfig.from_yaml(tmp_path / "r.yaml")
    (tmp_path / "ok.yaml").write_text("channels: 16\nscale: [1, 1, 2]\n")
    cfg = TrainConfig.from_yaml(tmp_path / "ok.yaml", seed=4)
    assert cfg.generator.channels == 16 and cfg.generator.scale == (1, 1, 2) and cfg.seed == 4
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_learning_rate_schedule():
    cfg = TrainConfig(pretrain_steps=100, gan_steps=10, lr_g=1e-3, lr_g_gan=5e-5, lr_schedule="cosine")
    assert cfg.generator_lr(0) == pytest.approx(1e-3)
    assert cfg.generator_lr(50) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # half way: cos = 0
    assert cfg.generator_lr(99) < 2e-5 and cfg.generator_lr(99) > 1e-5  # ends near 1% of lr_g
    assert cfg.generator_lr(100) == cfg.generator_lr(109) == 5e-5
    assert TrainConfig(lr_g=3e-4).generator_lr(1234) == 3e-4  # constant by default
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    # "budget": a one-cycle over the minutes, whatever the step count
    budget = TrainConfig(pretrain_steps=100_000, lr_g=4e-4, lr_schedule="budget", minutes=10)
    assert budget.generator_lr(3, 0.025) == pytest.approx(2e-4)  # half the 5% warm-up
    assert budget.generator_lr(7, 0.525) == pytest.approx(4e-4 * (0.01 + 0.99 * 0.5))  # half the cosine
    assert budget.generator_lr(9, 1.0) == pytest.approx(4e-6)  # ends at 1%
    with pytest.raises(ValueError, match="give minutes"):
        TrainConfig(lr_schedule="budget")


def test_defaults_are_clean_kspace_pairs_with_the_loss_on_the_data_consistent_output():
    cfg = TrainConfig()
    deg = cfg.degradation
    assert (deg.noise_max, deg.blur_max, deg.gaussian_fraction, deg.n_variants) == (0.0, 0.0, 0.0, 1)
    assert cfg.dc_loss and cfg.phantoms == 0 and cfg.edge_weight == 0.0
