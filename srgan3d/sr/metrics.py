"""Image quality: PSNR and SSIM over a foreground mask, on 3D volumes."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def foreground_mask(reference: np.ndarray, *, fraction: float = 0.05) -> np.ndarray:
    """Voxels above `fraction` of the reference's 99.5th percentile (air in MRI is near zero)."""
    return reference > fraction * float(np.percentile(reference, 99.5))


def _masked(reference: np.ndarray, test: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, test {test.shape}")
    if mask is not None and mask.shape != reference.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the images' {reference.shape}")
    return np.ones(reference.shape, bool) if mask is None else mask.astype(bool)


def psnr(
    reference: np.ndarray,
    test: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB over `mask` (all voxels when None).

    `data_range` defaults to max - min of the reference inside the mask.
    """
    m = _masked(reference, test, mask)
    ref, tst = reference[m].astype(np.float64), test[m].astype(np.float64)
    rng = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    mse = float(np.mean((ref - tst) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(rng * rng / mse)


def ssim(
    reference: np.ndarray,
    test: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    data_range: float | None = None,
) -> float:
    """Mean 3D structural similarity (7-voxel Gaussian-free window, scikit-image) over `mask`."""
    m = _masked(reference, test, mask)
    rng = float(reference[m].max() - reference[m].min()) if data_range is None else float(data_range)
    _, smap = structural_similarity(
        reference.astype(np.float64), test.astype(np.float64), data_range=rng, full=True, win_size=7
    )
    return float(smap[m].mean())
