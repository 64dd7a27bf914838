"""Peritumoral rings: millimetres on each grid, the tumour excluded, clipped to the liver."""

from __future__ import annotations

import numpy as np
import pytest

from srgan3d.study.radiomics import mask_to_sr_grid, ring_leaves_image, ring_mask
from srgan3d.volume import Volume


def _ellipsoid(shape, spacing, centre_mm, radii_mm) -> Volume:
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    r = sum(((g - c) / rr) ** 2 for g, c, rr in zip(grids, centre_mm, radii_mm, strict=True))
    return Volume((r <= 1).astype(np.float32), np.diag([*spacing, 1.0]), {})


@pytest.mark.parametrize("width", [3.0, 10.0, 20.0])
def test_ring_volume_agrees_between_the_lr_and_sr_grids(width):
    """Anisotropic LR voxels (1.6 x 1.6 x 4 mm) and the 2x SR grid: the same ring in mL within 5%."""
    lr = _ellipsoid((60, 60, 30), (1.6, 1.6, 4.0), (48, 48, 60), (14, 11, 12))
    sr_mask = mask_to_sr_grid(lr, (2, 2, 2))
    ring_lr, ring_sr = ring_mask(lr, width), ring_mask(sr_mask, width)
    ml = [r.data.sum() * np.prod(r.spacing_mm) / 1000 for r in (ring_lr, ring_sr)]
    assert abs(ml[0] - ml[1]) / ml[1] < 0.06, ml  # 4 mm slices: a 3 mm ring is under one slice thick
    # the ring excludes the tumour and lies within width mm of it
    assert not np.any((ring_lr.data > 0) & (lr.data > 0.5))
    # the ellipsoid's ring volume is close to the analytic shell (a check of the millimetres)
    a, b, c = 14, 11, 12
    shell = 4 / 3 * np.pi * ((a + width) * (b + width) * (c + width) - a * b * c) / 1000
    assert 0.85 * shell < ml[1] < 1.1 * shell  # millimetres, not voxels: near the shell of the scaled ellipsoid


def test_ring_is_isotropic_in_millimetres_on_anisotropic_voxels():
    m = _ellipsoid((80, 80, 24), (1.0, 1.0, 5.0), (40, 40, 60), (8, 8, 8))
    ring = ring_mask(m, 10.0)
    idx = np.argwhere(ring.data > 0)
    extent_mm = (idx.max(axis=0) - idx.min(axis=0) + 1) * np.array([1.0, 1.0, 5.0])
    # tumour 16 mm across plus 2 x 10 mm: 36 mm along every axis (within one voxel)
    np.testing.assert_allclose(extent_mm, 36, atol=5.0)


def test_ring_is_clipped_to_the_liver_and_edges_are_detected():
    m = _ellipsoid((40, 40, 20), (2.0, 2.0, 2.0), (40, 40, 20), (6, 6, 6))
    liver = Volume(np.zeros((40, 40, 20), np.float32), m.affine, {})
    liver.data[:20] = 1  # the liver ends at x = 40 mm, through the tumour's centre
    ring = ring_mask(m, 5.0, liver=liver)
    assert ring.data[20:].sum() == 0 and ring.data[:20].sum() > 0
    assert not ring_leaves_image(m.data, m.spacing_mm, 5.0)
    assert ring_leaves_image(m.data, m.spacing_mm, 20.0)  # the centre is 20 mm from the z edge
    with pytest.raises(ValueError, match="liver mask grid"):
        ring_mask(m, 5.0, liver=Volume(np.zeros((4, 4, 4), np.float32), np.eye(4), {}))


@pytest.mark.parametrize("spacing", [0.5, 1.0, 2.0])
def test_ring_volume_matches_the_analytic_shell_of_a_sphere(spacing):
    n = int(40 / spacing)
    m = _ellipsoid((n, n, n), (spacing,) * 3, (20, 20, 20), (10, 10, 10))
    ml = ring_mask(m, 5.0).data.sum() * spacing**3
    assert abs(ml - 4 / 3 * np.pi * (15**3 - 10**3)) / ml < 0.05
