"""srgan3d: 3D GAN super-resolution of liver MRI and radiomics response evaluation."""

from __future__ import annotations

from srgan3d.volume import Volume, VolumeError, find_scans, read_volume, upscaled_affine, write_volume

__version__ = "0.1.0"

__all__ = [
    "Volume",
    "VolumeError",
    "find_scans",
    "read_volume",
    "upscaled_affine",
    "write_volume",
    "__version__",
]
