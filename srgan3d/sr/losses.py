"""The generator's training losses beside L1: the gradient (edge) loss, and the binary
cross-entropy on logits that the relativistic-average GAN loss is built from."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 distance between finite-difference gradients along the three spatial axes."""
    total = sr.new_zeros(())
    for dim in (2, 3, 4):
        if sr.shape[dim] > 1:
            total = total + F.l1_loss(torch.diff(sr, dim=dim), torch.diff(hr, dim=dim))
    return total / 3


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
