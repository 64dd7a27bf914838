"""Deep-learning response models on the tumour: MONAI's 3D ResNets (10 / 18 / 34) on tumour-centred
crops resampled to one physical size, trained before and after SR separately, with an optional
second branch (a peritumoral shell or a second-phase image) fused before the head.

Training uses the training patients of the study's split only: an inner validation part carved
from them (stratified, seeded) stops the training early; the test patients are scored once at the
end. Class-weighted BCE, Adam, flips / small in-plane rotations / intensity jitter as
augmentation; deterministic for a given seed on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from srgan3d.study.config import DeepConfig
from srgan3d.study.results import LEARNED_AUC_FLOOR, TRAIN, DeepModelResult, DeepResult, tested_sets
from srgan3d.volume import Volume

log = logging.getLogger(__name__)


def learning_verdict(train_auc: float, best_epoch: int) -> str | None:
    """None when the model learned; otherwise why it did not, in words for the report."""
    if not train_auc >= LEARNED_AUC_FLOOR:
        return f"training AUC {train_auc:.2f} is below the floor of {LEARNED_AUC_FLOOR:.2f}"
    if best_epoch <= 1:
        return "its inner-validation loss never improved after the first epoch"
    return None


# --------------------------------------------------------------------------------------------
# Crops


def tumour_crop(image: Volume, mask: Volume, *, crop_mm: float, crop_vox: int, centre_mm: np.ndarray | None = None) -> np.ndarray:
    """A (crop_vox,)*3 cube of `crop_mm` around the tumour's centroid (world mm), sampled
    trilinearly from `image` through its affine (zero outside), z-scored inside the cube. The
    same world cube is taken from an LR image and its SR image."""
    if centre_mm is None:
        centre_mm = tumour_centre_mm(mask)
    step = crop_mm / crop_vox
    offs = (np.arange(crop_vox) - (crop_vox - 1) / 2) * step
    # world axes: RAS; a cube aligned with the world axes keeps every scan's orientation alike
    gx, gy, gz = np.meshgrid(offs, offs, offs, indexing="ij")
    world = np.stack([gx + centre_mm[0], gy + centre_mm[1], gz + centre_mm[2], np.ones_like(gx)], axis=0).reshape(4, -1)
    vox = np.linalg.inv(image.affine) @ world
    cube = ndimage.map_coordinates(image.data, vox[:3], order=1, mode="constant", cval=0.0).reshape(gx.shape)
    return ((cube - cube.mean()) / (cube.std() + 1e-6)).astype(np.float32)


def tumour_centre_mm(mask: Volume) -> np.ndarray:
    idx = np.argwhere(mask.data > 0.5)
    if len(idx) == 0:
        raise ValueError("the VOI mask is empty")
    return (mask.affine @ np.r_[idx.mean(axis=0), 1.0])[:3]


# --------------------------------------------------------------------------------------------
# Networks


class ResNetScore(torch.nn.Module):
    """One or two MONAI ResNet encoders (no classifier), features concatenated, a linear head."""

    def __init__(self, arch: str, *, branches: int = 1, widen_factor: float = 1.0) -> None:
        super().__init__()
        from monai.networks import nets

        make = getattr(nets, arch)
        self.encoders = torch.nn.ModuleList(
            make(spatial_dims=3, n_input_channels=1, feed_forward=False, widen_factor=widen_factor, num_classes=1)
            for _ in range(branches)
        )
        probe = self.encoders[0].eval()  # batch norm cannot train on one sample
        with torch.no_grad():
            width = probe(torch.zeros(1, 1, 16, 16, 16)).shape[1]
        probe.train()
        self.head = torch.nn.Linear(width * branches, 1)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([enc(x) for enc, x in zip(self.encoders, xs, strict=True)], dim=1))[:, 0]


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips along X and Y, a small in-plane rotation (multiples of 90 degrees are left to
    the flips), and intensity jitter, per sample; the same for every branch of a sample."""
    b = x.shape[0]
    out = x.clone()
    for i in range(b):
        for axis in (2, 3):
            if torch.rand(1, generator=gen).item() < 0.5:
                out[i] = out[i].flip(axis - 1)
        angle = float((torch.rand(1, generator=gen).item() - 0.5) * np.deg2rad(20))
        if abs(angle) > 1e-3:
            c, s = np.cos(angle), np.sin(angle)
            # affine_grid orders coordinates (W, H, D) = our (Z, Y, X): rotate its y and z, the
            # axial X-Y plane of the cube, and keep Z (slices) fixed.
            theta = torch.tensor([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0]], dtype=x.dtype)[None]
            grid = torch.nn.functional.affine_grid(theta, list(out[i : i + 1].shape), align_corners=False)
            out[i : i + 1] = torch.nn.functional.grid_sample(out[i : i + 1], grid, align_corners=False)
        scale = 1 + 0.1 * (torch.rand(1, generator=gen).item() - 0.5) * 2
        shift = 0.1 * (torch.rand(1, generator=gen).item() - 0.5) * 2
        out[i] = out[i] * scale + shift
    return out


@dataclass(frozen=True)
class TrainedScore:
    """A deep model trained on the training set: its probability for every patient, the epochs
    run, the best inner-validation loss, and the sizes of the inner fit and validation parts."""

    probability: np.ndarray
    epochs: int
    best_val_loss: float
    n_fit: int
    n_val: int
    best_epoch: int = 0  # the epoch whose weights were kept (1 = inner validation never improved after it)


def train_and_score(
    inputs: Sequence[np.ndarray], y: np.ndarray, train: np.ndarray, config: DeepConfig
) -> TrainedScore:
    """Train on `train` (an inner split stops early) and score every patient.

    Args:
        inputs: one (N, D, D, D) array per branch.
        y: labels of all N patients; only `train` rows are ever fitted on.
    Returns: probabilities of all patients, the epochs run, the best inner-validation loss.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y, int)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    fit_idx, val_idx = train_test_split(train, test_size=config.val_fraction, stratify=y[train], random_state=config.seed)
    device = torch.device(config.device)
    model = ResNetScore(config.arch, branches=len(inputs), widen_factor=config.widen_factor).to(device)
    xs = [torch.from_numpy(np.asarray(a, np.float32))[:, None] for a in inputs]
    yt = torch.from_numpy(y.astype(np.float32))
    n_pos, n_neg = int(y[fit_idx].sum()), int(len(fit_idx) - y[fit_idx].sum())
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(n_neg / max(1, n_pos), device=device))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    best, best_state, since, epochs, best_epoch = np.inf, None, 0, 0, 0

    def logits(idx: np.ndarray) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([model(*(x[idx[i : i + 32]].to(device) for x in xs)) for i in range(0, len(idx), 32)])

    for epoch in range(config.epochs):
        model.train()
        order = fit_idx[torch.randperm(len(fit_idx), generator=gen).numpy()]
        for i in range(0, len(order), config.batch_size):
            batch = order[i : i + config.batch_size]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            stacked = _augment(torch.cat([x[batch] for x in xs], dim=1), gen)
            parts = [stacked[:, k : k + 1].to(device) for k in range(len(xs))]
            opt.zero_grad()
            loss = loss_fn(model(*parts), yt[batch].to(device))
            loss.backward()
            opt.step()
        val = float(loss_fn(logits(val_idx), yt[val_idx].to(device)))
        epochs = epoch + 1
        if val < best - 1e-4:
            best, since, best_epoch = val, 0, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    prob = torch.sigmoid(logits(np.arange(len(y)))).cpu().numpy()
    return TrainedScore(prob, epochs, float(best), len(fit_idx), len(val_idx), best_epoch)


def deep_models(
    crops: dict[str, list[np.ndarray]], y: np.ndarray, sets: dict[str, np.ndarray], config: DeepConfig
) -> tuple[DeepResult, dict[str, np.ndarray]]:
    """Train the deep model on each image ("pre", "post") on the training set and score every set:
    AUC with DeLong CI and DeLong post vs pre per test set. `crops[image]` holds one
    (N, D, D, D) array per branch. Returns the results and each image's probabilities."""
    from srgan3d.study import stats

    y = np.asarray(y, int)
    train = sets[TRAIN]
    tested = tested_sets(sets)
    if min(np.bincount(y[train], minlength=2)) < 4:
        raise ValueError("the deep models need at least 4 training patients of each class (inner validation)")
    models, probs = {}, {}
    for image, inputs in crops.items():
        r = train_and_score(inputs, y, train, config)
        p = probs[image] = r.probability
        train_auc = stats.roc_auc_ci(y[train], p[train]).auc
        models[image] = DeepModelResult(
            epochs=r.epochs, best_val_loss=r.best_val_loss, n_fit=r.n_fit, n_val=r.n_val, train_auc=train_auc,
            roc={s: stats.roc_auc_ci(y[i], p[i]) for s, i in tested.items()},
            best_epoch=r.best_epoch, not_learned=learning_verdict(train_auc, r.best_epoch),
        )  # fmt: skip
    delong = {}
    if {"pre", "post"} <= set(probs):
        delong = {s: stats.delong_test(y[i], probs["post"][i], probs["pre"][i]) for s, i in tested.items()}
    return DeepResult(config=config, models=models, delong_post_vs_pre=delong), probs
