"""The Volume type and its grids: the scaled-grid rule keeps the field of view and orientation."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine

from srgan3d.volume import Volume, VolumeError, downscaled_affine, upscaled_affine


def world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


AFFINES = [
    oblique_affine(),
    oblique_affine(spacing=(3.0, 0.7, 0.7), angles=(-1.1, 0.4, 2.0), origin=(5, -3, 200)),
    np.diag([-0.9, -0.9, 4.0, 1.0]),  # LPS-like axis flips
]


@pytest.mark.parametrize("affine", AFFINES)
@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 1, 2), (3, 2, 1)])
def test_lr_voxel_centre_is_mean_of_its_children(affine, factors):
    hr = upscaled_affine(affine, factors)
    for i in itertools.product(range(3), range(2), range(2)):
        children = itertools.product(*[range(s * ii, s * ii + s) for s, ii in zip(factors, i, strict=True)])
        mean = np.mean([world(hr, j) for j in children], axis=0)
        np.testing.assert_allclose(mean, world(affine, i), atol=1e-9)


@pytest.mark.parametrize("affine", AFFINES)
def test_field_of_view_and_orientation_preserved(affine):
    shape = np.array([10, 7, 5])
    f = np.array([2, 2, 2])
    hr = upscaled_affine(affine, f)
    # The outer edges of the grid: index -0.5 and n - 0.5 on both grids.
    for corner in itertools.product(*[(0, 1)] * 3):
        c = np.array(corner)
        lr_edge = np.where(c, shape - 0.5, -0.5)
        hr_edge = np.where(c, shape * f - 0.5, -0.5)
        np.testing.assert_allclose(world(hr, hr_edge), world(affine, lr_edge), atol=1e-9)
    assert nib.aff2axcodes(hr) == nib.aff2axcodes(affine)
    np.testing.assert_allclose(np.linalg.norm(hr[:3, :3], axis=0), np.linalg.norm(affine[:3, :3], axis=0) / 2)
    np.testing.assert_allclose(downscaled_affine(hr, f), affine, atol=1e-12)


def test_volume_validates_its_parts():
    with pytest.raises(VolumeError, match=r"Affine shape must be \(4, 4\), not \(3, 3\)"):
        Volume(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(VolumeError, match="must be 3D"):
        Volume(np.zeros((2, 2)), np.eye(4))
