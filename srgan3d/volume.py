"""The `Volume` type and the geometry of its grids: voxel order is NIfTI's (X, Y, Z) and the
affine maps voxel indices to RAS+ millimetres; crops, and grids refined or coarsened by integer
factors. Reading and writing live in `srgan3d.io`, discovery of scans in `srgan3d.discovery`.
Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

#: LPS (DICOM, ITK) <-> RAS (NIfTI): flip the first two world axes; its own inverse. The one home of
#: the conversion (readers here, `srgan3d.study.radiomics.to_sitk`).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def crop_affine(affine: np.ndarray, start: Sequence[float]) -> np.ndarray:
    """The affine of a sub-grid whose voxel 0 is voxel `start` (per axis, may be negative for a
    padded crop) of `affine`'s grid: same axes, origin moved. The one home of the crop rule."""
    out = np.array(affine, float, copy=True)
    out[:3, 3] = out[:3, :3] @ np.asarray(start, float) + out[:3, 3]
    return out


class VolumeError(ValueError):
    """A scan that cannot be read as one 3D volume; the message names the file and the fix."""


@dataclass
class Volume:
    """A 3D scan.

    Attributes:
        data: array of shape (X, Y, Z) in NIfTI voxel order (the readers give float32; an output
            may hold the source's integer type, `srgan3d.io.output_array`).
        affine: (4, 4) float64 matrix, voxel index -> RAS+ millimetres.
        meta: free-form provenance (source path, header codes, DICOM series UID...).
    """

    data: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.data.ndim != 3:
            raise VolumeError(f"Volume data must be 3D (X, Y, Z), not shape {self.data.shape}")
        if self.affine.shape != (4, 4):
            raise VolumeError(f"Affine shape must be (4, 4), not {self.affine.shape}")
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise VolumeError(f"Affine must be finite and invertible, got\n{self.affine}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along each array axis, from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes such as 'RAS' or 'LPS' (nibabel's closest-axis convention)."""
        return "".join(nib.aff2axcodes(self.affine))


# --------------------------------------------------------------------------------------------
# Geometry of scaled grids


def _as_factors(factors: int | Sequence[int]) -> tuple[int, int, int]:
    out = (int(factors),) * 3 if isinstance(factors, int | np.integer) else tuple(int(f) for f in factors)
    if len(out) != 3 or any(f < 1 for f in out):
        raise ValueError(f"Scale factors must be three positive integers, not {factors!r}")
    return out


def upscaled_affine(affine: np.ndarray, factors: int | Sequence[int]) -> np.ndarray:
    """Affine of the grid refined by integer `factors`, keeping the field of view.

    The outer edges of the voxel grid stay where they were: fine voxel j along an axis scaled by s
    has its centre at coarse index (j + 0.5) / s - 0.5, so each coarse voxel centre is the mean
    of the centres of its s children.

    Args:
        affine: (4, 4) voxel -> world matrix of the coarse grid.
        factors: one integer or one per array axis.

    Returns:
        (4, 4) voxel -> world matrix of the fine grid.
    """
    s = np.asarray(_as_factors(factors), dtype=np.float64)
    fine_to_coarse = np.eye(4)
    fine_to_coarse[:3, :3] = np.diag(1.0 / s)
    fine_to_coarse[:3, 3] = 0.5 / s - 0.5
    return np.asarray(affine, dtype=np.float64) @ fine_to_coarse


def downscaled_affine(affine: np.ndarray, factors: int | Sequence[int]) -> np.ndarray:
    """Inverse of `upscaled_affine`: coarse voxel i is centred at fine index s*i + (s-1)/2."""
    s = np.asarray(_as_factors(factors), dtype=np.float64)
    coarse_to_fine = np.eye(4)
    coarse_to_fine[:3, :3] = np.diag(s)
    coarse_to_fine[:3, 3] = (s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ coarse_to_fine


def thickest_axis(volume: Volume) -> int:
    """The array axis with the largest voxel spacing: the slice axis of an anisotropic scan."""
    return int(np.argmax(volume.spacing_mm))
