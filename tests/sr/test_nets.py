from __future__ import annotations

import math

import pytest
import torch

from srgan3d.sr.nets import (
    Generator,
    GeneratorConfig,
    PatchDiscriminator,
    flops_per_input_voxel,
    pixel_shuffle_3d,
)


@pytest.mark.parametrize(
    ("config", "input_shape", "expected_shape"),
    [
        (GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8), (1, 1, 8, 8, 8), (1, 1, 16, 16, 16)),
        (GeneratorConfig(channels=8, n_blocks=2, upsample_channels=8), (2, 1, 5, 7, 9), (2, 1, 10, 14, 18)),
        (
            GeneratorConfig(channels=8, n_blocks=0, upsample_channels=8, scale=(1, 1, 2)),
            (1, 1, 6, 6, 4),
            (1, 1, 6, 6, 8),
        ),
        (
            GeneratorConfig(channels=16, n_blocks=1, upsample_channels=8, scale=(3, 2, 1)),
            (1, 1, 4, 4, 4),
            (1, 1, 12, 8, 4),
        ),
    ],
)
def test_generator_shapes(config, input_shape, expected_shape):
    assert Generator(config)(torch.randn(input_shape)).shape == expected_shape


def test_pixel_shuffle_order():
    x = torch.arange(2 * 2 * 2, dtype=torch.float32).reshape(1, 8, 1, 1, 1)
    y = pixel_shuffle_3d(x, (2, 2, 2))
    assert y.shape == (1, 1, 2, 2, 2)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                assert y[0, 0, i, j, k] == i * 4 + j * 2 + k
    z = pixel_shuffle_3d(torch.arange(4.0).reshape(1, 2, 1, 1, 2), (1, 1, 2))
    assert z.flatten().tolist() == [0.0, 2.0, 1.0, 3.0]


def test_icnr_start_has_no_checkerboard():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8, skip="trilinear"))
    x = torch.randn(1, 1, 6, 6, 6)
    up = pixel_shuffle_3d(g.upsample(g.head(x)), (2, 2, 2))
    # All 8 children of a coarse voxel start equal: nearest-neighbour upsampling.
    blocks = up.reshape(1, 8, 6, 2, 6, 2, 6, 2)
    assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1, :, :1].expand_as(blocks))
    # And the untrained generator is exactly trilinear interpolation (silent detail branch).
    tri = torch.nn.functional.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
    assert torch.allclose(g(x), tri)
    # With the sinc skip the untrained network adds nothing to zero-filled k-space.
    assert (
        torch.count_nonzero(Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8))(x)) == 0
    )


def test_generator_runs_under_cpu_autocast():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8)).eval()
    torch.nn.init.normal_(g.tail.weight, std=0.05)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.inference_mode():
        ref = g(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = g(x).float()
    assert (low - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.slow
def test_generator_compiles():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(channels=8, n_blocks=1, upsample_channels=8)).eval()
    x = torch.randn(1, 1, 6, 6, 6)
    compiled = torch.compile(g)
    with torch.inference_mode():
        assert torch.allclose(compiled(x), g(x), atol=1e-5)


def test_discriminator_and_config():
    d = PatchDiscriminator(channels=8, n_layers=3)
    assert d(torch.randn(2, 1, 32, 32, 32)).shape == (2, 1, 8, 8, 8)
    cfg = GeneratorConfig(scale=(1, 1, 2))
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"GeneratorConfig: unknown key\(s\) width; its keys are channels"):
        GeneratorConfig.from_dict({"channels": 8, "width": 3})
    with pytest.raises(ValueError, match="scale must be three positive integers"):
        GeneratorConfig(scale=(2, 2))
    # The default architecture is the shipped model's, so `srgan3d train` fine-tunes it as it is.
    from srgan3d.sr.weights import find_weights

    assert GeneratorConfig.from_dict(find_weights("srgan3d_x2").card["generator"]) == GeneratorConfig()


def test_flops_per_input_voxel_counts_every_convolution():
    """The formula against multiply-adds counted by hooks on each convolution's real output."""
    torch.manual_seed(0)
    for cfg in (GeneratorConfig(), GeneratorConfig(channels=8, n_blocks=2, upsample_channels=8, scale=(1, 1, 2))):
        net = Generator(cfg)
        macs = []

        def hook(mod, inp, out, macs=macs):
            macs.append(out.numel() * mod.in_channels * math.prod(mod.kernel_size))

        for m in net.modules():
            if isinstance(m, torch.nn.Conv3d):
                m.register_forward_hook(hook)
        x = torch.rand(1, 1, 6, 5, 4)
        with torch.no_grad():
            net(x)
        assert flops_per_input_voxel(cfg) == pytest.approx(2 * sum(macs) / x.numel(), rel=1e-12)
