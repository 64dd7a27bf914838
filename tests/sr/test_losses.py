"""The training losses (`srgan3d.sr.losses`)."""

from __future__ import annotations

import torch

from srgan3d.sr.losses import gradient_loss


def test_gradient_loss_zero_only_for_equal_gradients():
    a = torch.randn(1, 1, 6, 6, 6)
    assert gradient_loss(a, a + 3.0) < 1e-6  # constant offsets have no gradient
    assert gradient_loss(a, 2 * a) > 0
