"""Per-volume intensity scaling: the robust foreground range onto [0, 1] and back, as every network
of the SR wing sees its input (the generator through the engine, the through-plane network)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensityScaling:
    """Linear map of a volume's robust foreground range [lo, hi] onto [0, 1], and its inverse."""

    lo: float
    hi: float

    @classmethod
    def fit(cls, data: np.ndarray, *, lower_pct: float = 0.5, upper_pct: float = 99.5) -> IntensityScaling:
        """Percentiles over the foreground: voxels above 5% of the 99.5th percentile of the whole
        volume (MRI air is near zero), or over every voxel when that leaves under 1%."""
        flat = data[np.isfinite(data)].ravel()
        if flat.size > 2_000_000:  # percentiles of a regular subsample are as good, and cheap
            flat = flat[:: flat.size // 1_000_000]
        top = float(np.percentile(flat, 99.5))
        fg = flat[flat > 0.05 * top] if top > 0 else flat
        if fg.size < 0.01 * flat.size:
            fg = flat
        lo, hi = (float(v) for v in np.percentile(fg, [lower_pct, upper_pct]))
        if not hi > lo:
            hi = lo + 1.0
        return cls(lo, hi)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.lo) / (self.hi - self.lo)).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return (y * (self.hi - self.lo) + self.lo).astype(np.float32)
