"""`srgan3d evaluate`: cohort table -> radiomics before and after SR -> models -> statistics -> report."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.provenance import versions, write_text_atomic
from srgan3d.study.cohort import read_cohort
from srgan3d.study.modeling import ModelingConfig, cohort_summary, run_modeling
from srgan3d.study.radiomics import RadiomicsConfig, crop, extract_cohort
from srgan3d.study.report import write_report
from srgan3d.study.secondary import compare_staging, extra_model_stats, nomogram, region_models
from srgan3d.volume import Volume, read_volume

log = logging.getLogger(__name__)

NOT_CLINICAL = {
    "patient_id", "image", "mask", "response", "image_sr", "mask_sr", "liver_mask", "image_2", "label", "baseline_viable_mm",
    "os_time", "os_event", "pfs_time", "pfs_event",
    "followup_viable_mm", "new_lesion", "truth_hr", "truth_hr_mask",
}  # fmt: skip


def _examples(table: pd.DataFrame, info: pd.DataFrame, outdir: Path, ids: list[str]) -> list[dict[str, Any]]:
    """Axial slices through the VOI centre before and after SR, for the report."""
    out = []
    for pid in ids:
        row = table.set_index("patient_id").loc[pid]
        box = tuple(slice(a, b) for a, b in info.loc[pid, "crop_lr"])
        lr = crop(read_volume(row["image"]), box)
        lr_mask = crop(read_volume(row["mask"]), box)
        sr_path = Path(row["image_sr"]) if row.get("image_sr") else outdir / "sr" / f"{pid}.nii.gz"
        srm_path = Path(row["mask_sr"]) if row.get("mask_sr") else outdir / "sr" / f"{pid}_mask.nii.gz"
        if not sr_path.is_file() or not srm_path.is_file():
            continue
        sr, sr_mask = read_volume(sr_path), read_volume(srm_path)
        # flip array axes 0/1 that run against RAS x/y, so that the report can show every scan alike
        flip = [bool(v) for v in (np.diag(lr.affine)[:2] < 0)]
        z_lr = int(round(np.argwhere(lr_mask.data > 0.5)[:, 2].mean()))
        z_sr = int(round(np.argwhere(sr_mask.data > 0.5)[:, 2].mean()))
        out.append(
            {
                "patient_id": pid,
                "response": str(row["response"]),
                "lr": {"image": np.round(lr.data[:, :, z_lr], 2).tolist(), "mask": lr_mask.data[:, :, z_lr].astype(int).tolist(),
                       "spacing_mm": list(lr.spacing_mm), "flip": flip},
                "sr": {"image": np.round(sr.data[:, :, z_sr], 2).tolist(), "mask": (sr_mask.data[:, :, z_sr] > 0.5).astype(int).tolist(),
                       "spacing_mm": list(sr.spacing_mm), "flip": flip},
            }
        )  # fmt: skip
    return out


def evaluate_cohort(
    cohort_csv: str | Path,
    outdir: str | Path,
    *,
    radiomics: RadiomicsConfig | None = None,
    modeling: ModelingConfig | None = None,
    deep: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The whole analysis of one cohort; writes results.json, CSVs and report.html in `outdir`.

    `deep` (a `srgan3d.study.deep.DeepConfig`) adds the 3D ResNet models before and after SR and
    DLRCR (deep score + post-SR radscore + clinical) to the study.

    Returns the results dictionary (as written to results.json).
    """
    radiomics = radiomics or RadiomicsConfig()
    modeling = modeling or ModelingConfig()
    cohort_csv = Path(cohort_csv)
    outdir = Path(outdir)
    if outdir.resolve() == cohort_csv.parent.resolve():
        raise ValueError(f"the output folder {outdir} is the cohort's own folder; choose a separate one")
    cohort = read_cohort(cohort_csv, clinical_columns=modeling.clinical)
    outdir.mkdir(parents=True, exist_ok=True)
    table = cohort.table
    log.info("extracting radiomics for %d patients (%s spacing)", len(table), radiomics.spacing)
    feats = extract_cohort(table, outdir, radiomics, progress=progress)
    keep = table.set_index("patient_id").loc[feats.pre.index]
    y = keep["label"].to_numpy(int)
    for cls, n in ((1, int(y.sum())), (0, int(len(y) - y.sum()))):
        if n < 5:
            raise RuntimeError(
                f"only {n} patients of class {cls} left after failed extractions; cannot fit models"
            )
    clin = keep[list(modeling.clinical)].astype(float)
    staging = ordinal_columns(keep, modeling.comparators, cohort_csv) if modeling.comparators else None
    log.info("fitting models (bootstrap %d)", modeling.n_bootstrap)
    # The tumour's own features drive the study's models; ring features have their own section.
    tumour_cols = [c for c in feats.pre.columns if not c.startswith("ring")]
    res = run_modeling(feats.pre[tumour_cols], feats.post[tumour_cols], clin, y, modeling, progress=progress)
    split = (np.flatnonzero(res.predictions["set"].to_numpy() == "train"),
             np.flatnonzero(res.predictions["set"].to_numpy() == "test"))  # fmt: skip
    comparators = compare_staging(staging, res.predictions, res.panel, y, *split) if staging is not None else []
    x_train = clin.iloc[split[0]].assign(
        radscore_post_sr=res.fitted.radscore_post.decision_function(feats.post[tumour_cols].iloc[split[0]]))
    nomo = nomogram(res.fitted.combined, x_train)
    regions = None
    if feats.config.peritumoral:
        groups = {"tumour": tumour_cols}
        for w in feats.config.peritumoral:
            groups[f"ring {w:g} mm"] = [c for c in feats.pre.columns if c.startswith(f"ring{w:g}mm_")]
        groups["tumour + rings"] = list(feats.pre.columns)
        regions = region_models(feats.pre, feats.post, groups, y, split, modeling)

    deep_results = _deep(table, keep, feats, res, clin, y, outdir, deep) if deep is not None else None
    survival, readers = _survival_and_readers(keep, res, y, modeling)
    pred = res.predictions.copy()
    pred.index.name = "patient_id"
    write_text_atomic(outdir / "predictions.csv", pred.to_csv())
    write_text_atomic(outdir / "coefficients.csv", res.fitted.coefficients().to_csv(index=False))

    clinical_cols = [c for c in table.columns if c not in NOT_CLINICAL and not c.startswith(("true_", "reader_"))]
    summary = cohort_summary(keep.reset_index(), y, clinical_cols)
    # one responder and one non-responder from the test set for the images section
    test = pred[pred["set"] == "test"]
    ids = [str(test.index[test["label"] == c][0]) for c in (1, 0) if (test["label"] == c).any()]
    card_path = cohort_csv.with_name("cohort.json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    methods = sorted(set(feats.info["method"]))
    shas = sorted({s for s in feats.info["weights_sha256"] if isinstance(s, str)})
    results: dict[str, Any] = {
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cohort": {
            "name": cohort_csv.parent.name or cohort_csv.name,
            "path": str(cohort_csv),
            "simulated": bool(card.get("simulated", False)),
            "n_patients": int(len(y)),
            "n_responders": int(y.sum()),
            "failed": sorted(feats.failed),
            "failed_errors": feats.failed,
        },
        "config": {"radiomics": asdict(feats.config), "modeling": asdict(modeling)},
        "radiomics": {
            "params": feats.config.params,
            "n_features": int(feats.pre.shape[1]),
            "spacing": feats.config.spacing,
            "common_spacing_mm": feats.resample_mm,
            "lr_spacing_mm": [
                float(v) for v in np.median(np.stack(feats.info["lr_spacing_mm"].to_list()), axis=0)
            ],
            "sr_spacing_mm": [
                float(v) for v in np.median(np.stack(feats.info["sr_spacing_mm"].to_list()), axis=0)
            ],
            "sr_method": ", ".join(methods),
            "weights_sha256": ", ".join(shas) or None,
            "margin_vox": feats.config.margin_vox,
        },
        "modeling": {**res.to_dict(), "regions": regions, "comparators": comparators, "nomogram": nomo,
                     "extra_models": extra_model_stats(res.predictions, res.panel, deep_results)},
        "deep": deep_results,
        "survival": survival,
        "readers": readers,
        "predictions": pred.reset_index().to_dict(orient="list"),
        "cohort_summary": summary.to_dict(orient="records"),
        "examples": _examples(table, feats.info, outdir, ids),
        "provenance": {"versions": versions(), "seed": modeling.seed, "cohort_card": card},
    }
    write_text_atomic(
        outdir / "results.json", json.dumps(results, indent=1, default=_json_default, allow_nan=True)
    )
    write_report(outdir)
    return results


def _deep(
    table: pd.DataFrame, keep: pd.DataFrame, feats: Any, res: Any, clin: pd.DataFrame, y: np.ndarray, outdir: Path,
    config: Any,
) -> dict[str, Any]:  # fmt: skip
    """Crops before and after SR, the deep models, and DLRCR; a failure is reported, not fatal."""
    from srgan3d.study import stats
    from srgan3d.study.deep import deep_models, tumour_centre_mm, tumour_crop
    from srgan3d.study.modeling import Logistic
    from srgan3d.study.radiomics import ring_mask

    try:
        rows = table.set_index("patient_id").loc[keep.index]
        crops: dict[str, list[list[np.ndarray]]] = {"pre": [[], []], "post": [[], []]}
        for pid, row in rows.iterrows():
            box = tuple(slice(a, b) for a, b in feats.info.loc[pid, "crop_lr"])
            image, mask = read_volume(row["image"]), read_volume(row["mask"])
            sr = read_volume(row["image_sr"]) if row.get("image_sr") else read_volume(outdir / "sr" / f"{pid}.nii.gz")
            sr_mask = read_volume(row["mask_sr"]) if row.get("mask_sr") else read_volume(outdir / "sr" / f"{pid}_mask.nii.gz")
            centre = tumour_centre_mm(mask)
            kw = {"crop_mm": config.crop_mm, "crop_vox": config.crop_vox, "centre_mm": centre}
            crops["pre"][0].append(tumour_crop(image, mask, **kw))
            crops["post"][0].append(tumour_crop(sr, sr_mask, **kw))
            if config.dual == "ring":
                for key, img, m in (("pre", crop(image, box), crop(mask, box)), ("post", sr, sr_mask)):
                    shell = ring_mask(m, config.ring_mm)
                    crops[key][1].append(tumour_crop(Volume(img.data * shell.data, img.affine, {}), m, **kw))
            elif config.dual == "image_2":
                if not row.get("image_2"):
                    raise ValueError(f"--dl-dual image_2 needs an image_2 column; patient {pid} has none")
                second = tumour_crop(read_volume(row["image_2"]), mask, **kw)
                crops["pre"][1].append(second)
                crops["post"][1].append(second)  # the second phase is not super-resolved
        inputs = {k: [np.stack(v) for v in branches if v] for k, branches in crops.items()}
        pred = res.predictions
        train = np.flatnonzero(pred["set"].to_numpy() == "train")
        test = np.flatnonzero(pred["set"].to_numpy() == "test")
        out = deep_models(inputs, y, train, test, config)
        # DLRCR: deep score (post-SR, log-odds) + post-SR radscore + the clinical model's variables
        p_dl = np.clip(np.asarray(out["models"]["post"]["probability"]), 1e-6, 1 - 1e-6)
        X = clin.copy()
        X["radscore_post_sr"] = res.fitted.radscore_post.decision_function(feats.post.loc[keep.index])
        X["dl_score"] = np.log(p_dl / (1 - p_dl))
        variables = [*res.fitted.clinical.variables, "radscore_post_sr", "dl_score"]
        dlrcr = Logistic(variables).fit(X.iloc[train], y[train])
        p = dlrcr.predict_proba(X)
        rcr = pred["clinical_post_sr"].to_numpy()
        out["dlrcr"] = {"variables": variables, "table": dlrcr.table_.to_dict(orient="records"),
                        "test": stats.roc_auc_ci(y[test], p[test]).to_dict(),
                        "delong_vs_rcr": stats.delong_test(y[test], p[test], rcr[test]).to_dict(),
                        "probability": p.tolist()}  # fmt: skip
        return out
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        log.warning("deep models skipped: %s", exc)
        return {"skipped": f"{type(exc).__name__}: {exc}"}


def _survival_and_readers(
    keep: pd.DataFrame, res: Any, y: np.ndarray, modeling: ModelingConfig
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The survival of the best model's risk groups and the comparison with readers, when the
    table has their columns; a problem skips that part with its reason, the study goes on."""
    from srgan3d.study.readers import compare_readers, reader_columns
    from srgan3d.study.secondary import best_model
    from srgan3d.study.survival import study_survival

    name, p_best, threshold = best_model(res.predictions, res.panel, res.operating_points)
    table = keep  # indexed by patient_id: messages name the patients
    survival = study_survival(table, p_best, threshold, name, list(modeling.clinical)) or None
    readers = None
    if reader_columns(table):
        test = np.flatnonzero(res.predictions["set"].to_numpy() == "test")
        try:
            readers = compare_readers(table, y, test, name, p_best)
        except ValueError as exc:
            log.warning("reader comparison skipped: %s", exc)
            readers = {"skipped": str(exc)}
    return survival, readers


#: Stage letters of the common staging systems, in order of severity.
ORDINAL_CODES = {"bclc": {"0": 0, "A": 1, "B": 2, "C": 3, "D": 4}, "child_pugh": {"A": 1, "B": 2, "C": 3}}


def ordinal_columns(table: pd.DataFrame, columns: tuple[str, ...], source: Path) -> pd.DataFrame:
    """The comparator columns as numbers: numeric values as they are, BCLC (0/A-D) and Child-Pugh
    (A-C) letters by stage. A missing column or a value that is neither is an error naming the
    column and rows."""
    out = {}
    for col in columns:
        if col not in table.columns:
            raise ValueError(f"{source}: comparator column {col!r} not in the cohort table ({', '.join(table.columns)})")
        raw = table[col].astype(str).str.strip()
        num = pd.to_numeric(raw, errors="coerce")
        codes = next((m for k, m in ORDINAL_CODES.items() if k in col.lower().replace("-", "_")), {})
        mapped = num.where(num.notna(), raw.str.upper().map(codes))
        bad = list(table.index[mapped.isna()])
        if bad:
            raise ValueError(
                f"{source}: comparator {col!r} needs ordinal values (numbers, or stage letters "
                f"{'/'.join(codes) or 'of BCLC or Child-Pugh'}); rows {', '.join(map(str, bad[:10]))} hold "
                f"{', '.join(sorted(set(raw[mapped.isna()]))[:5])}"
            )
        out[col] = mapped.astype(float)
    return pd.DataFrame(out, index=table.index)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
