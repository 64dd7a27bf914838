"""The 3D super-resolution generator and the patch discriminator: plain `torch.nn` modules.

Tensors are (B, C, D, H, W) with (D, H, W) = the volume's (X, Y, Z) array axes, so a per-axis
scale (sx, sy, sz) applies to (D, H, W) in that order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srgan3d.sr.config import GeneratorConfig


def _conv(cin: int, cout: int) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, padding=1)


class ResidualBlock(nn.Module):
    """conv - LeakyReLU - conv, added back scaled by `residual_scale`; no normalisation layers
    (batch statistics shift intensities, which SR must not do)."""

    def __init__(self, channels: int, *, residual_scale: float, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_scale * self.conv2(self.act(self.conv1(x)))


def pixel_shuffle_3d(x: torch.Tensor, scale: tuple[int, int, int]) -> torch.Tensor:
    """(B, C*sx*sy*sz, D, H, W) -> (B, C, D*sx, H*sy, W*sz); channel c*(sx*sy*sz) + offset maps to
    sub-voxel offset (i, j, k) in row-major order."""
    b, c, d, h, w = x.shape
    sx, sy, sz = scale
    n = sx * sy * sz
    if c % n:
        raise ValueError(f"channels {c} are not divisible by the shuffle size {n}")
    x = x.reshape(b, c // n, sx, sy, sz, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c // n, d * sx, h * sy, w * sz)


def icnr_(weight: torch.Tensor, n_sub: int) -> None:
    """ICNR initialisation (Aitken et al. 2017): every group of `n_sub` output channels that the
    shuffle spreads over one voxel's children starts with the same kernel, so the initial
    upsampling is a nearest-neighbour one and carries no checkerboard pattern."""
    cout = weight.shape[0]
    sub = torch.empty((cout // n_sub, *weight.shape[1:]), dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_normal_(sub, a=0.2, nonlinearity="leaky_relu")
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(n_sub, dim=0))


class Generator(nn.Module):
    """Residual 3D super-resolution network.

    (B, 1, D, H, W) -> (B, 1, sx*D, sy*H, sz*W). Features are computed at low resolution,
    upsampled by a 3D sub-pixel shuffle (ICNR-initialised; no transposed convolutions, which
    leave checkerboards), and added to a cheap interpolation of the input (the global skip), so
    the network learns only the detail interpolation misses. With `skip="sinc"` the forward pass
    returns that detail alone and the caller adds zero-filled k-space interpolation of the whole
    volume (`srgan3d.sr.degrade.sinc_upsample`); with `skip="trilinear"` it adds trilinear
    interpolation itself (align_corners=False follows the grid rule of `upscaled_affine`).
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        n_sub = math.prod(cfg.scale)
        self.head = _conv(1, cfg.channels)
        self.body = nn.Sequential(
            *[
                ResidualBlock(
                    cfg.channels, residual_scale=cfg.residual_scale, negative_slope=cfg.negative_slope
                )
                for _ in range(cfg.n_blocks)
            ]
        )
        self.body_tail = _conv(cfg.channels, cfg.channels)
        self.upsample = _conv(cfg.channels, cfg.upsample_channels * n_sub)
        self.act = nn.LeakyReLU(cfg.negative_slope, inplace=True)
        self.tail = _conv(cfg.upsample_channels, 1)
        icnr_(self.upsample.weight, n_sub)
        nn.init.zeros_(self.upsample.bias)  # type: ignore[arg-type]
        # Start as plain interpolation: the detail branch begins silent.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.config.scale
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        detail = self.tail(self.act(pixel_shuffle_3d(self.upsample(feat), scale)))
        if self.config.skip == "sinc":
            return detail
        return F.interpolate(x, scale_factor=scale, mode="trilinear", align_corners=False) + detail


class PatchDiscriminator(nn.Module):
    """3D patch discriminator: strided convolutions with spectral normalisation, one logit per
    patch of the input. (B, 1, D, H, W) -> (B, 1, D/2^k, H/2^k, W/2^k) for k = n_layers - 1."""

    def __init__(self, channels: int = 32, n_layers: int = 4, negative_slope: float = 0.2) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        layers: list[nn.Module] = [
            nn.Conv3d(1, channels, 3, padding=1),
            nn.LeakyReLU(negative_slope, inplace=True),
        ]
        c = channels
        for _ in range(n_layers - 1):
            layers += [
                sn(nn.Conv3d(c, c * 2, 4, stride=2, padding=1)),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
            c *= 2
        layers += [sn(nn.Conv3d(c, c, 3, padding=1)), nn.LeakyReLU(negative_slope, inplace=True)]
        layers += [nn.Conv3d(c, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops_per_input_voxel(config: GeneratorConfig) -> float:
    """Multiply-adds x 2 of the generator's convolutions per low-resolution input voxel."""
    k = 27 * 2
    c, u, n_sub = config.channels, config.upsample_channels, math.prod(config.scale)
    low = k * (1 * c + 2 * config.n_blocks * c * c + c * c + c * u * n_sub)
    high = k * u * 1 * n_sub
    return float(low + high)
