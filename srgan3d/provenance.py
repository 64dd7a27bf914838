"""Provenance written into every output record: the versions of srgan3d and of the libraries
whose behaviour shapes its numbers. (Atomic writing lives in `srgan3d.atomic`.)"""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("srgan3d", "torch", "monai", "pyradiomics-bhklab", "numpy", "nibabel", "pydicom", "scikit-learn")


def versions() -> dict[str, str]:
    """Installed versions of srgan3d and the libraries whose behaviour shapes its numbers."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
