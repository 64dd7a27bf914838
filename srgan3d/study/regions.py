"""Radscores per peritumoral region (the tumour, each ring, tumour + rings) before and after SR,
fitted on the training set like the study's own radscores. Imports no torch.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.config import ModelingConfig
from srgan3d.study.radscore import Radscore
from srgan3d.study.results import (
    TRAIN,
    RegionImage,
    RegionResult,
    tested_sets,
)

log = logging.getLogger(__name__)


def region_models(
    pre: pd.DataFrame, post: pd.DataFrame, groups: dict[str, list[str]], y: np.ndarray,
    sets: dict[str, np.ndarray], config: ModelingConfig,
) -> tuple[RegionResult, ...]:  # fmt: skip
    """A radscore per region (tumour, each ring, tumour + rings) and image, fitted on the training
    set like the main radscores; AUC with DeLong CI on each other set and post- vs pre-SR DeLong
    per region and set. A region whose fit fails is reported with its reason."""
    y = np.asarray(y, int)
    train = sets[TRAIN]
    tested = tested_sets(sets)
    rows = []
    for region, cols in groups.items():
        try:
            preds: dict[str, np.ndarray] = {}
            images: dict[str, RegionImage] = {}
            for image, X in (("pre", pre[cols]), ("post", post[cols])):
                r = Radscore(seed=config.seed, config=config).fit(X.iloc[train], y[train])
                p = r.predict_proba(X)
                preds[image] = p
                images[image] = RegionImage(features=tuple(r.features_), train_auc=stats.roc_auc_ci(y[train], p[train]).auc,
                                            roc={s: stats.roc_auc_ci(y[i], p[i]) for s, i in tested.items()})  # fmt: skip
            delong = {s: stats.delong_test(y[i], preds["post"][i], preds["pre"][i]) for s, i in tested.items()}
            rows.append(RegionResult(region=region, n_features=len(cols), images=images, delong_post_vs_pre=delong))
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.warning("region %s: model failed: %s", region, exc)
            rows.append(RegionResult(region=region, n_features=len(cols), error=f"{type(exc).__name__}: {exc}"))
    return tuple(rows)
