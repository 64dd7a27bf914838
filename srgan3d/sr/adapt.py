"""Internal learning: adapt a copy of a generator to the scan at hand before upscaling it."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from srgan3d.sr.config import Degradation
from srgan3d.sr.losses import gradient_loss
from srgan3d.sr.nets import Generator
from srgan3d.sr.pairs import PatchSampler, interior, predict_patch
from srgan3d.volume import Volume


def adapt_generator(
    model: Generator,
    volume: Volume,
    *,
    steps: int = 200,
    batch_size: int = 4,
    patch_size: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    dc: bool = True,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[Generator, dict[str, float]]:
    """Fine-tune a copy of `model` on the scan itself before upscaling it (internal learning).

    The scan plays the high-resolution role: it is degraded once more by the generator's scale
    (clean k-space truncation, `PatchSampler` as in training), and the copy learns to undo that
    for `steps` steps of L1 + 0.1 x gradient loss on the (data-consistent, with `dc`) output. The
    input model is not changed.

    Returns the adapted copy (eval mode) and {"steps", "seconds", "loss_first", "loss_last"}.
    """
    device = device or torch.device("cpu")
    scale = tuple(model.config.scale)
    lr_shape = [n // f for n, f in zip(volume.shape, scale, strict=True)]
    if min(lr_shape) < 4:
        raise ValueError(
            f"scan {volume.shape} is too small to adapt to: after a further {scale} reduction it is {lr_shape}"
        )
    deg = Degradation(scale=scale, n_variants=1, with_base=model.config.skip == "sinc")  # type: ignore[arg-type]
    sampler = PatchSampler([volume.data], deg, patch_size=patch_size, seed=seed)
    gen = copy.deepcopy(model).to(device).train()
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.9, 0.99))
    torch.manual_seed(seed)
    margin = [2 * s for s in scale]
    losses = []
    t0 = time.perf_counter()
    for _ in tqdm(range(steps), desc="adapt", unit="step", disable=not progress, leave=False):
        lr_b, hr_b, base_b = sampler.sample(batch_size)
        sr = predict_patch(gen(lr_b.to(device)), base_b.to(device) if base_b is not None else None, scale, dc=dc)
        sr, hr_b = interior(sr, margin), interior(hr_b.to(device), margin)
        loss = F.l1_loss(sr, hr_b) + 0.1 * gradient_loss(sr, hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    gen.eval()
    k = max(1, min(20, len(losses) // 5))
    stats = {
        "steps": float(steps),
        "seconds": time.perf_counter() - t0,
        "loss_first": float(np.mean(losses[:k])) if losses else float("nan"),
        "loss_last": float(np.mean(losses[-k:])) if losses else float("nan"),
    }
    return gen, stats
