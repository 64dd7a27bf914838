"""The study's secondary analyses, beside its four models: radscores per peritumoral region,
staging systems as comparators, the nomogram of the combined model, and the statistics of the
extra models (the classifier panel's pick, DLRCR) that the report draws. Imports no torch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.study import stats
from srgan3d.study.modeling import Logistic, ModelingConfig, Radscore

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Peritumoral regions


def region_models(
    pre: pd.DataFrame, post: pd.DataFrame, groups: dict[str, list[str]], y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray], config: ModelingConfig,
) -> list[dict[str, Any]]:  # fmt: skip
    """A radscore per region (tumour, each ring, tumour + rings) and image, fitted on the training
    rows of the study's split like the main radscores; test AUC with DeLong CI and post- vs pre-SR
    DeLong per region. A region whose fit fails is reported with its reason."""
    y = np.asarray(y, int)
    train, test = split
    rows = []
    for region, cols in groups.items():
        row: dict[str, Any] = {"region": region, "n_features": len(cols)}
        try:
            preds = {}
            for image, X in (("pre", pre[cols]), ("post", post[cols])):
                r = Radscore(seed=config.seed, config=config).fit(X.iloc[train], y[train])
                p = r.predict_proba(X)
                preds[image] = p
                row[image] = {"features": r.features_, "train_auc": stats.roc_auc_ci(y[train], p[train]).auc,
                              "test": stats.roc_auc_ci(y[test], p[test]).to_dict()}  # fmt: skip
            row["delong_post_vs_pre"] = stats.delong_test(y[test], preds["post"][test], preds["pre"][test]).to_dict()
        except (ValueError, np.linalg.LinAlgError) as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("region %s: model failed: %s", region, exc)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Staging systems as comparators


def best_model(
    pred: pd.DataFrame, panel: dict[str, Any] | None, operating_points: dict[str, Any] | None = None
) -> tuple[str, np.ndarray, float]:
    """The study's best model: the panel's pick (training-set cross-validated AUC) when there is
    one, else the post-SR radscore; its name, probabilities on all rows, and its training-set
    Youden threshold (NaN when `operating_points` is not given for the radscore)."""
    if panel and panel.get("best"):
        b = panel["best"]
        key = f"{b['classifier']}_{b['image']}"
        return key, np.asarray(panel["predictions"][key]), float(panel["models"][b["classifier"]][b["image"]]["threshold"])
    thr = operating_points["train"]["radiomics_post_sr"]["threshold"] if operating_points else float("nan")
    return "radiomics_post_sr", pred["radiomics_post_sr"].to_numpy(), float(thr)


def compare_staging(
    comparators: pd.DataFrame, pred: pd.DataFrame, panel: dict[str, Any] | None, y: np.ndarray,
    train: np.ndarray, test: np.ndarray,
) -> list[dict[str, Any]]:  # fmt: skip
    """AUC with DeLong CI of each ordinal comparator on the test set, and DeLong against the best
    model. The direction (does a higher stage mean response or non-response?) is fixed on the
    training set: a comparator whose training AUC is below 0.5 is negated."""
    name, best, _ = best_model(pred, panel)
    rows = []
    for col in comparators.columns:
        v = comparators[col].to_numpy(float)
        sign = 1.0 if stats.roc_auc_ci(y[train], v[train]).auc >= 0.5 else -1.0
        score = sign * v
        roc = stats.roc_auc_ci(y[test], score[test]).to_dict()
        d = stats.delong_test(y[test], best[test], score[test]).to_dict()
        rows.append({"comparator": col, "direction": "higher = response" if sign > 0 else "higher = non-response",
                     "test": roc, "best_model": name, "delong_vs_best": d})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# Nomogram


def nomogram(model: Logistic, X_train: pd.DataFrame) -> dict[str, Any]:
    """Points of a logistic model's nomogram over the training range of each predictor.

    Predictor j contributes points_j(x) = 100 * b_j * (x - ref_j) / R, where ref_j is the end of
    its training range that gives 0 points and R the largest |b_j| * range over predictors (that
    predictor spans 0-100). The linear predictor is then ``offset + total_points * R / 100`` with
    ``offset = b_0 + sum_j b_j * ref_j``: `nomogram_linear_predictor`.
    """
    b = model.params_
    rows = []
    spans = {}
    for v in model.variables:
        lo, hi = float(X_train[v].min()), float(X_train[v].max())
        spans[v] = (lo, hi)
    R = max(abs(float(b[v])) * (hi - lo) for v, (lo, hi) in spans.items()) or 1.0
    offset = float(b["const"])
    for v in model.variables:
        lo, hi = spans[v]
        ref = lo if b[v] >= 0 else hi
        offset += float(b[v]) * ref
        rows.append({"variable": v, "coefficient": float(b[v]), "min": lo, "max": hi, "ref": ref,
                     "points_per_unit": 100.0 * float(b[v]) / R,
                     "max_points": 100.0 * abs(float(b[v])) * (hi - lo) / R})  # fmt: skip
    return {"predictors": rows, "scale": R / 100.0, "offset": offset}


def nomogram_points(nomo: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """Total points of each row."""
    total = np.zeros(len(X))
    for r in nomo["predictors"]:
        total += r["points_per_unit"] * (X[r["variable"]].to_numpy(float) - r["ref"])
    return total


def nomogram_linear_predictor(nomo: dict[str, Any], total_points: np.ndarray) -> np.ndarray:
    return nomo["offset"] + np.asarray(total_points) * nomo["scale"]


# --------------------------------------------------------------------------------------------
# Extra models in the decision curves and calibration


def extra_model_stats(
    predictions: pd.DataFrame, panel: dict[str, Any] | None, deep: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Decision curve (test set) and calibration (train, test) of the models beyond the study's
    four: the classifier panel's pick and DLRCR, when present; keyed as the report draws them."""
    models: dict[str, tuple[str, str, np.ndarray]] = {}
    if panel and panel.get("best"):
        from srgan3d.study.panel import CLASSIFIER_LABELS

        b = panel["best"]
        key = f"{b['classifier']}_{b['image']}"
        models[key] = (f"Best classifier: {CLASSIFIER_LABELS[b['classifier']]}, {b['image']}-SR", "#ff7f0e",
                       np.asarray(panel["predictions"][key], float))  # fmt: skip
    if deep and "dlrcr" in deep:
        models["dlrcr"] = ("DLRCR", "#8c564b", np.asarray(deep["dlrcr"]["probability"], float))
    y = predictions["label"].to_numpy(int)
    sets = {name: (predictions["set"] == name).to_numpy() for name in ("train", "test")}
    thresholds = np.arange(0.01, 1.0, 0.01)
    out = {}
    for key, (label, colour, p) in models.items():
        test = sets["test"]
        dc = stats.decision_curve(y[test], {key: p[test]}, thresholds)
        out[key] = {
            "label": label, "colour": colour,
            "decision_curve": {"threshold": dc.index.tolist(), "net_benefit": dc[key].tolist()},
            "calibration": {name: stats.calibration(y[idx], p[idx], n_bins=5 if name == "test" else 10).to_dict()
                            for name, idx in sets.items()},
        }  # fmt: skip
    return out
