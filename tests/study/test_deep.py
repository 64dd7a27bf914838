"""The deep models: crops of one physical size, deterministic training, the inner split only."""

from __future__ import annotations

import numpy as np
import pytest

from srgan3d.study.config import DeepConfig
from srgan3d.study.deep import deep_models, tumour_crop
from srgan3d.volume import Volume, upscaled_affine


def _blob_volume(shape, spacing, centre_vox, radius_vox, value) -> tuple[Volume, Volume]:
    g = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    r = np.sqrt(sum((gi - c) ** 2 for gi, c in zip(g, centre_vox, strict=True)))
    img = (100 + value * (r < radius_vox)).astype(np.float32)
    aff = np.diag([*spacing, 1.0])
    return Volume(img, aff, {}), Volume((r < radius_vox).astype(np.float32), aff, {})


def test_lr_and_sr_crops_cover_the_same_physical_cube():
    def sphere(shape, aff):  # a 10 mm sphere at (40, 36, 40) mm, sampled on a grid
        g = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        world = [aff[k, k] * g[k] + aff[k, 3] for k in range(3)]
        return np.sqrt((world[0] - 40) ** 2 + (world[1] - 36) ** 2 + (world[2] - 40) ** 2) < 10

    aff = np.diag([2.0, 2.0, 4.0, 1.0])
    inside = sphere((40, 40, 20), aff)
    img, mask = Volume((100 + 300 * inside).astype(np.float32), aff, {}), Volume(inside.astype(np.float32), aff, {})
    # the "SR" image: the same object on the 2x grid of the same field of view
    aff_sr = upscaled_affine(aff, 2)
    sr = Volume((100 + 300 * sphere((80, 80, 40), aff_sr)).astype(np.float32), aff_sr, {})
    a = tumour_crop(img, mask, crop_mm=48, crop_vox=16)
    b = tumour_crop(sr, mask, crop_mm=48, crop_vox=16)
    assert a.shape == b.shape == (16, 16, 16)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # the same blob at the same place


def test_deep_model_learns_a_visible_signal_deterministically():
    rng = np.random.default_rng(0)
    n = 48
    y = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    rng.shuffle(y)
    crops = []
    for label in y:
        img, mask = _blob_volume((24, 24, 16), (2.0, 2.0, 3.0), (12, 12, 8), 4 + 2 * label, 200)
        img.data += rng.normal(0, 20, img.shape).astype(np.float32)
        crops.append(tumour_crop(img, mask, crop_mm=40, crop_vox=16))
    x = np.stack(crops)
    train, test = np.arange(36), np.arange(36, 48)
    cfg = DeepConfig.tiny(epochs=8, patience=8, lr=1e-3)
    a, pa = deep_models({"post": [x]}, y, {"train": train, "test": test}, cfg)
    b, _ = deep_models({"post": [x]}, y, {"train": train, "test": test}, cfg)
    assert a.models["post"].roc["test"].auc == b.models["post"].roc["test"].auc  # same seed, same AUC
    assert a.models["post"].train_auc > 0.8  # a bigger blob is a responder
    # labels of the test patients play no part in the fit: flipping them changes nothing it predicts
    y2 = y.copy()
    y2[test] = 1 - y2[test]
    _, pc = deep_models({"post": [x]}, y2, {"train": train, "test": test}, cfg)
    np.testing.assert_array_equal(pa["post"], pc["post"])


def test_too_few_patients_per_class_is_a_clear_error():
    y = np.r_[np.ones(3, int), np.zeros(20, int)]
    with pytest.raises(ValueError, match="at least 4 training patients of each class"):
        deep_models({"pre": [np.zeros((23, 16, 16, 16), np.float32)]}, y, {"train": np.arange(23)}, DeepConfig.tiny())


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="--dl must be none or one of resnet10, resnet18, resnet34"):
        DeepConfig(arch="vgg")


def test_augmentation_rotates_in_the_axial_plane_only():
    """An image that varies only along Z (across slices) stays constant within each slice: the
    flips and the rotation act in the X-Y plane, never mixing slices."""
    import torch

    from srgan3d.study.deep import _augment

    z = torch.linspace(-1, 1, 16)
    x = z.view(1, 1, 1, 1, 16).expand(8, 1, 16, 16, 16).contiguous()
    out = _augment(x, torch.Generator().manual_seed(1))
    inner = out[:, 0, 4:12, 4:12, :]  # away from the corners the rotation fills with zeros
    assert float(inner.std(dim=(1, 2)).max()) < 1e-4
    # and the slice profile is the input's up to the intensity jitter (a monotone ramp)
    assert torch.all(inner[:, 0, 0, 1:] > inner[:, 0, 0, :-1])


def test_a_model_that_did_not_learn_is_named_with_its_reason():
    from srgan3d.study.deep import learning_verdict
    from srgan3d.study.results import LEARNED_AUC_FLOOR

    # the floor itself learned; a hair below it did not
    assert learning_verdict(LEARNED_AUC_FLOOR, 2) is None
    assert learning_verdict(LEARNED_AUC_FLOOR - 1e-9, 2) is not None
    assert learning_verdict(0.79, 6) is None
    assert learning_verdict(0.52, 4) == "training AUC 0.52 is below the floor of 0.60"
    assert learning_verdict(float("nan"), 4) is not None  # an undefined AUC is no evidence of learning
    assert learning_verdict(0.9, 1) == "its inner-validation loss never improved after the first epoch"
