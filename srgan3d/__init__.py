"""srgan3d: 3D GAN super-resolution of liver MRI and the radiomics response study around it.

The public API: every command is a function here. Names are imported on first use, so that
`import srgan3d.study.stats` (numpy/scipy only) does not pull in torch.

>>> import srgan3d
>>> result = srgan3d.upscale_files(["scans/"], "sr_out", srgan3d.UpscaleConfig(method="sinc"))
>>> roc = srgan3d.roc_auc_ci(y_true, y_score)  # roc.auc, roc.ci_low, roc.ci_high
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    # volumes and geometry
    "Volume": "srgan3d.volume",
    "VolumeError": "srgan3d.volume",
    "find_scans": "srgan3d.discovery",
    "read_volume": "srgan3d.io",
    "write_volume": "srgan3d.io",
    "upscaled_affine": "srgan3d.volume",
    # super-resolution
    "UpscaleConfig": "srgan3d.sr.config",
    "upscale_files": "srgan3d.sr.upscale",
    "merge_manifests": "srgan3d.sr.upscale",
    "GeneratorEngine": "srgan3d.sr.engine",
    "upscale_volume": "srgan3d.sr.engine",
    "TrainConfig": "srgan3d.sr.config",
    "train": "srgan3d.sr.train",
    "TrainResult": "srgan3d.sr.train",
    "upscale_through_plane": "srgan3d.sr.through_plane",
    "ThroughPlaneConfig": "srgan3d.sr.config",
    "SliceProfile": "srgan3d.sr.slice_profile",
    "slice_geometry": "srgan3d.sr.slice_profile",
    "train_protocol": "srgan3d.sr.protocol",
    "load_plane_net": "srgan3d.sr.through_plane",
    "export_weights": "srgan3d.sr.export",
    "degrade_volume": "srgan3d.sr.degrade",
    # the response study
    "evaluate_cohort": "srgan3d.study.evaluation",
    "read_cohort": "srgan3d.study.cohort",
    "write_report": "srgan3d.study.report",
    "roc_auc_ci": "srgan3d.study.stats",
    "delong_test": "srgan3d.study.stats",
    "roc_points": "srgan3d.study.stats",
    "net_benefit": "srgan3d.study.stats",
    "decision_curve": "srgan3d.study.stats",
    "calibration": "srgan3d.study.stats",
    "wilson_ci": "srgan3d.study.stats",
    "youden_threshold": "srgan3d.study.stats",
    "operating_point": "srgan3d.study.stats",
    "fleiss_kappa": "srgan3d.study.agreement",
    "cohen_kappa": "srgan3d.study.agreement",
    "rank_stages": "srgan3d.study.staging",
    "read_feature_table": "srgan3d.study.feature_tables",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'srgan3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
