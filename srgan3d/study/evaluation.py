"""`srgan3d evaluate`: cohort table -> the split -> radiomics before and after SR -> models fitted on
the training set -> statistics on every set -> results.json and the report.

`evaluate_cohort` is a short list of named steps: read and check the table (`_read_and_check`),
extract or read the features (`_read_features`), gather the study's patients and split
(`_study_data`), fit the four models (`srgan3d.study.modeling.run_modeling`), then everything after
them (`_analyse`: the deep models and DLRCR, the roster and its metrics, staging, rings, survival,
readers) into the result tree (`_study_result`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_mask, read_volume
from srgan3d.provenance import versions
from srgan3d.serialisation import rows_of
from srgan3d.study import stats
from srgan3d.study.agreement import reader_agreement
from srgan3d.study.cohort import MIN_PER_CLASS, Cohort, make_split, read_cohort, summary_columns
from srgan3d.study.comparators import compare_staging
from srgan3d.study.config import DEFAULT_TIME_UNIT, PARAMS_DIR, DeepConfig, ModelingConfig, RadiomicsConfig
from srgan3d.study.feature_tables import check_same_features, read_feature_table
from srgan3d.study.modeling import (
    ModelingResult,
    cohort_summary,
    run_modeling,
    set_metrics,
)
from srgan3d.study.nomogram import nomogram
from srgan3d.study.radiomics import FeatureTables, crop, extract_cohort, sr_images
from srgan3d.study.regions import region_models
from srgan3d.study.report import write_report
from srgan3d.study.resampling import out_of_fold
from srgan3d.study.results import (
    CLASSIFIER_LABELS,
    SCHEMA_VERSION,
    STUDY_MODELS,
    TRAIN,
    CohortRecord,
    ComparatorResult,
    DeepResult,
    DlrcrModel,
    Example,
    ExampleSlice,
    ExcludedPatient,
    ModelEntry,
    OddsRatio,
    Provenance,
    RadiomicsRecord,
    ReaderAgreement,
    ReaderResult,
    RegionResult,
    Roster,
    SetMetrics,
    Split,
    StudyConfig,
    StudyResult,
    SummaryRow,
    SurvivalResult,
    TransformRecord,
    tested_sets,
)
from srgan3d.study.staging import rank_stages
from srgan3d.study.survival import study_survival
from srgan3d.study.tables import read_cells, split_sheet
from srgan3d.study.transforms import apply_transforms, choose_transforms, parse_transforms
from srgan3d.volume import Volume

log = logging.getLogger(__name__)


def _examples(table: pd.DataFrame, info: pd.DataFrame, outdir: Path, picks: list[tuple[str, str]]) -> tuple[Example, ...]:
    """Axial slices through the VOI centre before and after SR, for the report; `picks` are
    (patient_id, set)."""
    out = []
    rows = table.set_index("patient_id")
    for pid, set_name in picks:
        row = rows.loc[pid]
        box = tuple(slice(a, b) for a, b in info.loc[pid, "crop_lr"])
        image = read_volume(row["image"])
        lr = crop(image, box)
        lr_mask = crop(read_mask(row["mask"], image), box)
        sr_path, srm_path = sr_images({**row.to_dict(), "patient_id": pid}, outdir)
        if not sr_path.is_file() or not srm_path.is_file():
            continue
        sr, sr_mask = read_volume(sr_path), read_volume(srm_path)
        # flip array axes 0/1 that run against RAS x/y, so that the report can show every scan alike
        flip = [bool(v) for v in (np.diag(lr.affine)[:2] < 0)]
        z_lr = int(round(np.argwhere(lr_mask.data > 0.5)[:, 2].mean()))
        z_sr = int(round(np.argwhere(sr_mask.data > 0.5)[:, 2].mean()))
        out.append(Example(
            patient_id=pid, response=str(row["response"]), set=set_name,
            lr=_slice(lr.data[:, :, z_lr], lr_mask.data[:, :, z_lr] > 0.5, lr.spacing_mm, flip),
            sr=_slice(sr.data[:, :, z_sr], sr_mask.data[:, :, z_sr] > 0.5, sr.spacing_mm, flip),
        ))  # fmt: skip
    return tuple(out)


def _slice(image: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float], flip: Sequence[bool]) -> ExampleSlice:
    return ExampleSlice(image=tuple(tuple(r) for r in np.round(image, 2).tolist()),
                        mask=tuple(tuple(r) for r in mask.astype(int).tolist()),
                        spacing_mm=tuple(float(v) for v in spacing_mm), flip=tuple(flip))  # fmt: skip


#: Colours of the models beyond the study's four.
PANEL_COLOUR, DLRCR_COLOUR = "#ff7f0e", "#8c564b"


@dataclass
class StudyFeatures:
    """The features the study's models use: extracted from images, read from tables, or none.

    `pre`/`post` index patient_id (usable patients only); None when absent. `extracted` holds the
    extraction's own tables (images only); `source` says where the features came from."""

    pre: pd.DataFrame | None
    post: pd.DataFrame | None
    source: str
    extracted: FeatureTables | None = None
    excluded: list[ExcludedPatient] = field(default_factory=list)
    tables: tuple[str, ...] = ()  # how each feature table was read (`srgan3d.study.tables.TableSource`)


def _study_mode(table_columns: Sequence[str], features: str | Path | None, features_sr: str | Path | None) -> str:
    """"tables" (features given), "images" (image and mask columns) or "clinical" (neither)."""
    if features_sr is not None and features is None:
        raise ValueError("--features-sr was given without --features: give the pre-SR table with --features too")
    if features is not None:
        return "tables"
    return "images" if {"image", "mask"} <= set(table_columns) else "clinical"


def _read_features(
    mode: str, cohort: Cohort, outdir: Path, radiomics: RadiomicsConfig, features: str | Path | None,
    features_sr: str | Path | None, *, progress: bool,
) -> StudyFeatures:  # fmt: skip
    """Extract (images), read (tables) or skip (clinical) the radiomic features."""
    table = cohort.table
    if mode == "images":
        log.info("extracting radiomics for %d patients (%s spacing)", len(table), radiomics.spacing)
        feats = extract_cohort(table, outdir, radiomics, progress=progress)
        failed = [ExcludedPatient(pid, f"feature extraction failed: {err}") for pid, err in feats.failed.items()]
        return StudyFeatures(feats.pre, feats.post, "extracted", feats, failed)
    if mode == "clinical":
        return StudyFeatures(None, None, "none")
    pre = read_feature_table(features, table, left_out=cohort.left_out)  # type: ignore[arg-type]
    post = read_feature_table(features_sr, table, left_out=cohort.left_out) if features_sr is not None else None
    if pre.set_aside:  # the same patients' rows in the post-SR table are set aside alike: said once
        log.warning(pre.set_aside_note())
    if post is not None and set(post.set_aside) - set(pre.set_aside):
        log.warning(post.set_aside_note())
    if post is not None:
        check_same_features(pre, post)
    excluded = list(pre.excluded)
    if post is not None:
        seen = {e.patient_id for e in excluded}
        excluded += [e for e in post.excluded if e.patient_id not in seen]
    gone = {e.patient_id for e in excluded}
    keep = [p for p in table["patient_id"].astype(str) if p not in gone]
    names = ", ".join(Path(t.path).name for t in (pre, post) if t is not None)
    if pre.set_aside:
        names += (f" (their rows of {len(pre.set_aside)} patient(s) the study leaves out set aside: "
                  f"{', '.join(pre.set_aside)})")  # fmt: skip
    for e in excluded:
        log.warning("patient %s left out: %s", e.patient_id, e.reason)
    return StudyFeatures(
        pre.features.loc[keep], post.features.loc[keep] if post is not None else None, f"tables: {names}",
        excluded=excluded, tables=tuple(t.source.describe() for t in (pre, post) if t is not None and t.source),
    )  # fmt: skip


def _absent_sections(mode: str, feats: StudyFeatures, deep: DeepConfig | None, radiomics: RadiomicsConfig) -> dict[str, str]:
    """One line per section the study could not fill, saying why."""
    absent: dict[str, str] = {}
    if mode == "clinical":
        why = "the cohort table has no images (image, mask columns) and no --features table"
        absent["radiomics"] = f"No radiomics models: {why}."
        absent["sr"] = "No super-resolution: there are no images to super-resolve."
    elif mode == "tables":
        absent["sr"] = f"No super-resolution here: the features were read from {feats.source.split(': ', 1)[1]}."
        if feats.post is None:
            absent["post_sr"] = ("No post-SR models (post-SR radscore, RCR, classifier panel): only --features (pre-SR) "
                                 "was given; add --features-sr with the post-SR features.")  # fmt: skip
    if mode != "images":
        if radiomics.peritumoral:
            absent["rings"] = "No peritumoral rings: they need images and masks."
        if deep is not None:
            absent["deep"] = "No deep models: they need images and masks."
    return absent


def evaluate_cohort(
    cohort_csv: str | Path,
    outdir: str | Path,
    *,
    radiomics: RadiomicsConfig | None = None,
    modeling: ModelingConfig | None = None,
    deep: DeepConfig | None = None,
    time_unit: str = DEFAULT_TIME_UNIT,
    features: str | Path | None = None,
    features_sr: str | Path | None = None,
    response_ties: str | None = None,
    stage_order: Mapping[str, tuple[str, ...]] | None = None,
    progress: bool = False,
    response_codes: Mapping[str, str] | None = None,
) -> StudyResult:
    """The whole analysis of one cohort; writes results.json, CSVs and report.html in `outdir`.

    The features come from the images (``image``, ``mask``: extracted before and after SR), from
    tables (`features`, `features_sr`: pyradiomics batch CSVs or tables keyed by patient_id), or
    are absent (the clinical half: clinical model, staging, survival, readers). The split is the
    table's `set` column when it has one (train, test, external sets), else a seeded stratified
    draw. Every model is fitted on the training set and reported on every set. `deep` (a
    `srgan3d.study.deep.DeepConfig`) adds the 3D ResNet models and DLRCR (images only).
    `response_ties`: what to do with readers who split evenly (`srgan3d.study.cohort.read_cohort`);
    `stage_order`: declared orders of staging columns (`srgan3d.study.staging`); `response_codes`:
    what numeric response codes mean ({"1": "CR", ...}, `srgan3d.study.cohort.read_cohort`).

    Returns the study's result tree (results.json is its `to_dict()`).
    """
    radiomics = radiomics or RadiomicsConfig()
    modeling = modeling or ModelingConfig()
    cohort_csv, outdir = Path(cohort_csv), Path(outdir)
    options = _Options(cohort_csv, outdir, radiomics, modeling, deep, time_unit, response_ties, dict(stage_order or {}),
                       dict(response_codes or {}))  # fmt: skip
    cohort, mode = _read_and_check(options, features, features_sr)
    outdir.mkdir(parents=True, exist_ok=True)
    feats = _read_features(mode, cohort, outdir, radiomics, features, features_sr, progress=progress)
    data = _study_data(options, cohort, feats, mode)
    options, data = _transformed(options, data)
    modeling = options.modeling
    log.info("fitting models (bootstrap %d)", modeling.n_bootstrap)
    res = run_modeling(data.pre, data.post, data.clin, data.y, modeling, split=data.split, progress=progress)
    study = _analyse(options, data, res)
    write_results(outdir, study)
    write_report(outdir)
    return study


@dataclass(frozen=True)
class ShardExtraction:
    """What `extract_shard` did: the shard, its patients, those that failed (with the error), and
    how many were already in the caches."""

    shard: tuple[int, int]
    patients: tuple[str, ...]
    failed: dict[str, str]
    from_cache: int

    def describe(self) -> str:
        k, n = self.shard
        return (f"shard {k}/{n}: {len(self.patients) - len(self.failed)} of {len(self.patients)} patients' features in "
                f"the cache ({self.from_cache} were there already)"
                + (f"; failed: {', '.join(f'{p} ({e})' for p, e in self.failed.items())}" if self.failed else ""))  # fmt: skip


def extract_shard(
    cohort_csv: str | Path, outdir: str | Path, shard: tuple[int, int] = (1, 1), *,
    radiomics: RadiomicsConfig | None = None, response_ties: str | None = None, progress: bool = False,
    response_codes: Mapping[str, str] | None = None,
) -> ShardExtraction:  # fmt: skip
    """One shard of a cohort's SR and feature extraction, for a cluster (`evaluate --extract-only
    --shard K/N`): the K-th of N interleaved parts of the cohort table's patients (those the study
    keeps) are super-resolved and extracted into `outdir`'s caches (`sr/`, `features_cache/`),
    each file written atomically; a rerun skips what is done. When every shard has run, `evaluate
    COHORT -o OUTDIR` (the same options) finds them all in the cache, fits and reports: the
    numbers are those of a run on one machine."""
    k, n = shard
    if not (n >= 1 and 1 <= k <= n):
        raise ValueError(f"--shard must be K/N with 1 <= K <= N, not {k}/{n}")
    radiomics = radiomics or RadiomicsConfig()
    radiomics.check_params()
    cohort = read_cohort(cohort_csv, need_images=True, response_ties=response_ties, response_codes=response_codes)
    patients = tuple(cohort.table["patient_id"].astype(str))[k - 1 :: n]
    log.info("shard %d of %d: %d of %d patients", k, n, len(patients), len(cohort.table))
    feats = extract_cohort(cohort.table, outdir, radiomics, progress=progress, only=patients)
    cached = int((feats.info["sr_source"] == "cache").sum()) if "sr_source" in feats.info else 0
    return ShardExtraction(shard=(k, n), patients=patients, failed=dict(feats.failed), from_cache=cached)


@dataclass(frozen=True)
class _Options:
    """What `evaluate_cohort` was asked: the files and every option, passed to its steps as one."""

    cohort_csv: Path
    outdir: Path
    radiomics: RadiomicsConfig
    modeling: ModelingConfig
    deep: DeepConfig | None
    time_unit: str
    response_ties: str | None
    stage_order: dict[str, tuple[str, ...]]
    response_codes: dict[str, str] = field(default_factory=dict)


@dataclass
class _StudyData:
    """The patients the study uses and their data: the table's rows (`keep`, indexed by
    patient_id), labels, split, clinical variables, tumour features and staging columns."""

    cohort: Cohort
    feats: StudyFeatures
    mode: str
    keep: pd.DataFrame
    y: np.ndarray
    split: Split
    sets: dict[str, np.ndarray]
    clin: pd.DataFrame
    tumour_cols: list[str]
    staging: pd.DataFrame | None
    orders: dict[str, str]
    transforms: tuple[TransformRecord, ...] = ()

    @property
    def excluded(self) -> list[ExcludedPatient]:
        return [*self.cohort.excluded, *self.feats.excluded]

    @property
    def pre(self) -> pd.DataFrame | None:
        """The tumour's own pre-SR features (ring features have their own section)."""
        return self.feats.pre[self.tumour_cols] if self.feats.pre is not None else None

    @property
    def post(self) -> pd.DataFrame | None:
        return self.feats.post[self.tumour_cols] if self.feats.post is not None else None


def _read_and_check(options: _Options, features: str | Path | None, features_sr: str | Path | None) -> tuple[Cohort, str]:
    """The cohort table, read and checked, and the study's mode; the split and the staging columns
    are checked here too, before the long extraction, so that a bad one fails at once."""
    cohort_csv, modeling = options.cohort_csv, options.modeling
    if options.outdir.resolve() == cohort_csv.parent.resolve():
        raise ValueError(f"the output folder {options.outdir} is the cohort's own folder; choose a separate one")
    head = read_cells(cohort_csv, what="cohort table")[0].columns if split_sheet(cohort_csv)[0].is_file() else []
    mode = _study_mode([str(c).strip() for c in head], features, features_sr)
    cohort = read_cohort(cohort_csv, clinical_columns=modeling.clinical, need_images=mode == "images",
                         response_ties=options.response_ties, response_codes=options.response_codes)  # fmt: skip
    if "set" in cohort.table.columns:
        make_split(cohort.table, test_size=modeling.test_size, seed=modeling.seed, source=cohort_csv)
    if modeling.comparators:
        rank_stages(cohort.table, modeling.comparators, source=cohort_csv, declared=options.stage_order)
    return cohort, mode


def _transformed(options: _Options, data: _StudyData) -> tuple[_Options, _StudyData]:
    """The clinical variables as the study models them (`srgan3d.study.transforms`): heavily
    skewed positive ones on log10, named ``log10(name)`` from here on, in the models, the
    survival covariates and the report; each choice and its reason is said once and recorded."""
    modeling = options.modeling
    records = choose_transforms(data.clin, parse_transforms(modeling.transforms))
    for r in records:
        if r.transform == "log10":
            log.warning("clinical variable %s modelled as %s: %s", r.variable, r.modelled_as, r.reason)
    renamed = tuple(r.modelled_as for r in records)
    if renamed == tuple(modeling.clinical):
        return options, replace(data, transforms=records)
    keep = apply_transforms(data.keep, records)
    options = replace(options, modeling=replace(modeling, clinical=renamed))
    return options, replace(data, keep=keep, clin=keep[list(renamed)].astype(float), transforms=records)


def _study_data(options: _Options, cohort: Cohort, feats: StudyFeatures, mode: str) -> _StudyData:
    """The patients with features (all of them in the clinical half), their labels, the split and
    the clinical and staging columns; too few of a class left is an error naming who went."""
    table, modeling = cohort.table, options.modeling
    used = [str(p) for p in (feats.pre.index if feats.pre is not None else table["patient_id"].astype(str))]
    keep = table.set_index(table["patient_id"].astype(str)).loc[used]
    keep.index.name = "patient_id"
    y = keep["label"].to_numpy(int)
    excluded = [*cohort.excluded, *feats.excluded]
    for cls, n in ((1, int(y.sum())), (0, int(len(y) - y.sum()))):
        if n < MIN_PER_CLASS:  # the cohort's own floor, after the patients left out
            raise RuntimeError(
                f"only {n} {'responders' if cls else 'non-responders'} are left (at least {MIN_PER_CLASS} are needed) "
                f"after leaving out "
                f"{len(excluded)} patient(s) ({'; '.join(f'{e.patient_id}: {e.reason}' for e in excluded[:5])}); "
                "cannot fit models"
            )
    split = make_split(keep.reset_index(drop=True), test_size=modeling.test_size, seed=modeling.seed,
                       source=options.cohort_csv)  # fmt: skip
    log.info("split (%s): %s", "from the table's set column" if "set" in table.columns else "drawn", split.describe())
    staging, orders = (rank_stages(keep, modeling.comparators, source=options.cohort_csv, declared=options.stage_order)
                       if modeling.comparators else (None, {}))  # fmt: skip
    tumour_cols = [c for c in feats.pre.columns if not c.startswith("ring")] if feats.pre is not None else []
    return _StudyData(cohort=cohort, feats=feats, mode=mode, keep=keep, y=y, split=split, sets=split.indices(used),
                      clin=keep[list(modeling.clinical)].astype(float), tumour_cols=tumour_cols, staging=staging,
                      orders=orders)  # fmt: skip


def _analyse(options: _Options, data: _StudyData, res: ModelingResult) -> StudyResult:
    """Everything after the study models: the deep models and DLRCR, the roster and its metrics on
    every set, staging, rings, survival, readers and their agreement; the tables; the result."""
    modeling, y, sets, keep = options.modeling, data.y, data.sets, data.keep
    train = sets[TRAIN]
    empty = pd.DataFrame(index=keep.index)
    deep_result, deep_probs, deep_oof = None, empty, empty.copy()
    if options.deep is not None and data.feats.extracted is not None:
        deep_result, deep_probs, deep_oof = _deep(data.cohort.table, keep, data.feats.extracted, res, data.clin, y,
                                                  sets, options.outdir, options.deep, modeling)  # fmt: skip
    roster, probs, oof = _roster(res, deep_probs, deep_oof, y, train)
    p_best = probs[roster.best].to_numpy()
    # held-out predictions of the best model: out-of-fold for the training patients
    p_best_held = p_best.copy()
    p_best_held[train] = oof[roster.best].to_numpy()[train]
    cohort = data.cohort
    pred = _write_tables(options.outdir, res, probs, deep_probs, oof)
    return _study_result(
        options, data, res, roster, pred,
        metrics=set_metrics(y, probs[list(roster.names)], sets, roster.thresholds),
        comparators=(compare_staging(data.staging, y, sets, roster.best, p_best, data.orders)
                     if data.staging is not None else ()),
        regions=_regions(data.feats, data.tumour_cols, y, sets, modeling) if data.mode == "images" else None,
        deep=deep_result,
        survival=study_survival(keep, p_best_held, roster.thresholds[roster.best], roster.best_label,
                                list(modeling.clinical), sets, time_unit=options.time_unit),
        readers=_readers(keep, y, tested_sets(sets), roster, p_best),
        agreement=(reader_agreement(cohort.reads, seed=modeling.seed, label_rule=cohort.label_rule, ties=cohort.ties)
                   if cohort.reads is not None else None),
    )  # fmt: skip


def _study_result(
    options: _Options, data: _StudyData, res: ModelingResult, roster: Roster, pred: pd.DataFrame, *,
    metrics: dict[str, SetMetrics], comparators: tuple[ComparatorResult, ...], regions: tuple[RegionResult, ...] | None,
    deep: DeepResult | None, survival: SurvivalResult | None, readers: ReaderResult | None,
    agreement: ReaderAgreement | None,
) -> StudyResult:  # fmt: skip
    """The result tree of the study's parts, with its records of the cohort, options and provenance."""
    cohort_csv, outdir, modeling = options.cohort_csv, options.outdir, options.modeling
    feats, y, train = data.feats, data.y, data.sets[TRAIN]
    card_path = cohort_csv.with_name("cohort.json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    x_nomo = data.clin.iloc[train].copy()
    if res.fitted.combined is not None and data.post is not None and res.fitted.radscore_post is not None:
        x_nomo["radscore_post_sr"] = res.fitted.radscore_post.decision_function(data.post.iloc[train])
    ext = feats.extracted
    return StudyResult(
        schema_version=SCHEMA_VERSION,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cohort=CohortRecord(
            name=cohort_csv.parent.name or cohort_csv.name, file=cohort_csv.name,
            simulated=bool(card.get("simulated", False)), n_in_table=int(len(data.cohort.table) + len(data.cohort.excluded)),
            n_patients=int(len(y)), n_responders=int(y.sum()),
            failed=tuple(sorted(ext.failed)) if ext else (), failed_errors=dict(ext.failed) if ext else {},
        ),
        config=StudyConfig(
            radiomics=replace(ext.config, params=_shown_path(ext.config.params, outdir)) if ext else None,
            modeling=modeling, mode=data.mode, response_ties=options.response_ties, stage_order=options.stage_order,
        ),
        radiomics=_radiomics_record(feats, data.tumour_cols, outdir),
        split=data.split, roster=roster, metrics=metrics, fitted=res.summary(),
        predictions={k: v for k, v in pred.reset_index().to_dict(orient="list").items()},
        cohort_summary=rows_of(SummaryRow, cohort_summary(data.keep.reset_index(drop=True), y, _summary_columns(data))),
        provenance=Provenance(versions=versions(), seed=modeling.seed, cohort_card=card),
        panel=res.panel, regions=regions, comparators=comparators,
        nomogram=nomogram(res.fitted.combined or res.fitted.clinical, x_nomo),
        deep=deep, survival=survival, readers=readers,
        examples=_examples(data.cohort.table, ext.info, outdir, _picks(pred, data.split)) if ext else (),
        agreement=agreement, excluded=tuple(data.excluded), absent=_absent(options, data, res),
        features_source=feats.source, transforms=data.transforms, tables=_tables_read(data.cohort, feats),
    )  # fmt: skip


def _tables_read(cohort: Cohort, feats: StudyFeatures) -> tuple[str, ...]:
    """One line per table the study read: its format as found, and what its response codes mean."""
    first = cohort.source.describe() if cohort.source is not None else cohort.path.name
    if cohort.response_codes:
        first += "; response codes " + ", ".join(f"{k} = {v}" for k, v in cohort.response_codes.items())
    return (first, *feats.tables)


def _summary_columns(data: _StudyData) -> list[str]:
    return summary_columns(data.cohort.table.columns)


def _absent(options: _Options, data: _StudyData, res: ModelingResult) -> dict[str, str]:
    absent = _absent_sections(data.mode, data.feats, options.deep, options.radiomics)
    if options.modeling.classifiers and res.panel is None and "post_sr" not in absent and data.mode != "clinical":
        absent["panel"] = "No classifier panel: it needs both pre- and post-SR features."
    return absent


def _regions(
    feats: StudyFeatures, tumour_cols: list[str], y: np.ndarray, sets: dict[str, np.ndarray], modeling: ModelingConfig
) -> tuple[RegionResult, ...] | None:
    """A radscore per peritumoral region (extracted features with rings only)."""
    ext = feats.extracted
    if ext is None or not ext.config.peritumoral:
        return None
    groups = {"tumour": tumour_cols}
    for w in ext.config.peritumoral:
        groups[f"ring {w:g} mm"] = [c for c in ext.pre.columns if c.startswith(f"ring{w:g}mm_")]
    groups["tumour + rings"] = list(ext.pre.columns)
    return region_models(ext.pre, ext.post, groups, y, sets, modeling)


def _write_tables(
    outdir: Path, res: ModelingResult, probs: pd.DataFrame, deep_probs: pd.DataFrame, oof: pd.DataFrame
) -> pd.DataFrame:
    """predictions.csv (every model, out-of-fold columns too) and coefficients.csv; returns the
    predictions."""
    extra = [deep_probs.drop(columns=[c for c in deep_probs if c in probs])]
    if res.panel_predictions is not None:
        extra.append(res.panel_predictions.drop(columns=[c for c in res.panel_predictions if c in probs]))
    pred = pd.concat([res.predictions[["set", "label"]], probs, *extra, oof.add_suffix("_out_of_fold")], axis=1)
    pred.index.name = "patient_id"
    write_text_atomic(outdir / "predictions.csv", pred.to_csv())
    write_text_atomic(outdir / "coefficients.csv", res.fitted.coefficients().to_csv(index=False))
    return pred


def _picks(pred: pd.DataFrame, split: Split) -> list[tuple[str, str]]:
    """A responder and a non-responder of the primary test set, for the report's example slices."""
    primary = pred[pred["set"] == split.primary]
    return [(str(primary.index[primary["label"] == c][0]), split.primary) for c in (1, 0) if (primary["label"] == c).any()]


def _radiomics_record(feats: StudyFeatures, tumour_cols: list[str], outdir: Path) -> RadiomicsRecord:
    """What the report says of the features: extraction settings, or the tables they came from."""
    ext = feats.extracted
    if ext is None:
        return RadiomicsRecord(source=feats.source, n_features=len(tumour_cols))
    shas = sorted({s for s in ext.info["weights_sha256"] if isinstance(s, str)})
    return RadiomicsRecord(
        source="extracted", n_features=int(len(tumour_cols)), params=_shown_path(ext.config.params, outdir),
        n_features_with_rings=int(ext.pre.shape[1]), spacing=ext.config.spacing, common_spacing_mm=ext.resample_mm,
        lr_spacing_mm=tuple(float(v) for v in np.median(np.stack(ext.info["lr_spacing_mm"].to_list()), axis=0)),
        sr_spacing_mm=tuple(float(v) for v in np.median(np.stack(ext.info["sr_spacing_mm"].to_list()), axis=0)),
        sr_method=", ".join(sorted(set(ext.info["method"]))), weights_sha256=", ".join(shas) or None,
        margin_vox=ext.config.margin_vox,
    )  # fmt: skip


def _shown_path(path: str | Path, outdir: Path) -> str:
    """A path as results.json and the report show it: a parameter file shipped with srgan3d by its
    name ('built-in arterial_mri.yaml'), any other relative to the output folder."""
    import os


    p = Path(path).resolve()
    if p.parent == PARAMS_DIR.resolve():
        return f"built-in {p.name}"
    return os.path.relpath(p, Path(outdir).resolve())


def write_results(outdir: str | Path, study: StudyResult) -> Path:
    """`outdir/results.json`, atomically."""
    return write_text_atomic(
        Path(outdir) / "results.json", json.dumps(study.to_dict(), indent=1, default=_json_default, allow_nan=True)
    )


def _roster(
    res: ModelingResult, deep_probs: pd.DataFrame, deep_oof: pd.DataFrame, y: np.ndarray, train: np.ndarray
) -> tuple[Roster, pd.DataFrame, pd.DataFrame]:
    """The models every set reports: the study's four, the panel's pick and DLRCR when present;
    their probabilities (one column each), their out-of-fold probabilities of the training
    patients, the thresholds chosen on those, and the best model."""
    names = res.fitted.names
    entries = [m for m in STUDY_MODELS if m.name in names]
    probs = res.predictions[list(names)].copy()
    oof = res.oof[list(names)].copy()  # type: ignore[index]
    thresholds = dict(res.thresholds)
    if "radiomics_post_sr" in names:
        best, rule = "radiomics_post_sr", "the post-SR radscore (no classifier panel ran)"
    elif "radiomics_pre_sr" in names:
        best, rule = "radiomics_pre_sr", "the pre-SR radscore (no post-SR features, no classifier panel)"
    else:
        best, rule = "clinical", "the clinical model (no radiomic features)"
    panel = res.panel
    if panel is not None and panel.best and panel.best_key and res.panel_predictions is not None \
            and res.panel_oof is not None:
        key = panel.best_key
        b = panel.best
        entries.append(ModelEntry(key, f"Best classifier: {CLASSIFIER_LABELS[b.classifier]}, {b.image}-SR",
                                  PANEL_COLOUR, "panel"))  # fmt: skip
        probs[key] = res.panel_predictions[key]
        oof[key] = res.panel_oof[key]
        thresholds[key] = panel.models[b.classifier][b.image].threshold
        best, rule = key, "the classifier panel's pick: " + b.rule
    if "dlrcr" in deep_probs:
        entries.append(ModelEntry("dlrcr", "DLRCR: deep score + RCR", DLRCR_COLOUR, "deep"))
        probs["dlrcr"] = deep_probs["dlrcr"]
        oof["dlrcr"] = deep_oof["dlrcr"]
        thresholds["dlrcr"] = stats.held_out_threshold(y[train], deep_oof["dlrcr"].to_numpy()[train],
                                                       deep_probs["dlrcr"].to_numpy()[train])  # fmt: skip
    roster = Roster(models=tuple(entries), best=best, best_rule=rule, thresholds=thresholds)
    return roster, probs, oof


def _deep_inputs(
    table: pd.DataFrame, keep: pd.DataFrame, feats: FeatureTables, outdir: Path, config: DeepConfig
) -> dict[str, list[np.ndarray]]:
    """The deep models' inputs before (``pre``) and after (``post``) SR: one stack of tumour cubes
    per branch (the tumour; the ring or the second phase of a dual-branch model)."""
    from srgan3d.study.deep import tumour_centre_mm, tumour_crop
    from srgan3d.study.radiomics import ring_mask

    rows = table.set_index("patient_id").loc[keep.index]
    crops: dict[str, list[list[np.ndarray]]] = {"pre": [[], []], "post": [[], []]}
    for pid, row in rows.iterrows():
        box = tuple(slice(a, b) for a, b in feats.info.loc[pid, "crop_lr"])
        image = read_volume(row["image"])
        mask = read_mask(row["mask"], image)
        sr_path, srm_path = sr_images({**row.to_dict(), "patient_id": pid}, outdir)
        sr, sr_mask = read_volume(sr_path), read_volume(srm_path)
        centre = tumour_centre_mm(mask)

        def cube(img: Volume, m: Volume, centre: np.ndarray = centre) -> np.ndarray:
            return tumour_crop(img, m, crop_mm=config.crop_mm, crop_vox=config.crop_vox, centre_mm=centre)

        crops["pre"][0].append(cube(image, mask))
        crops["post"][0].append(cube(sr, sr_mask))
        if config.dual == "ring":
            for key, img, m in (("pre", crop(image, box), crop(mask, box)), ("post", sr, sr_mask)):
                shell = ring_mask(m, config.ring_mm)
                crops[key][1].append(cube(Volume(img.data * shell.data, img.affine, {}), m))
        elif config.dual == "image_2":
            if not row.get("image_2"):
                raise ValueError(f"--dl-dual image_2 needs an image_2 column; patient {pid} has none")
            second = cube(read_volume(row["image_2"]), mask)
            crops["pre"][1].append(second)
            crops["post"][1].append(second)  # the second phase is not super-resolved
    return {k: [np.stack(v) for v in branches if v] for k, branches in crops.items()}


def _dlrcr(
    feats: FeatureTables, res: ModelingResult, clin: pd.DataFrame, y: np.ndarray, train: np.ndarray,
    deep_post: np.ndarray, modeling: ModelingConfig,
) -> tuple[DlrcrModel, np.ndarray, np.ndarray]:  # fmt: skip
    """DLRCR: the deep score (post-SR, log-odds) + the post-SR radscore + the clinical model's
    variables, fitted on the training set. Returns the model, its probabilities and its
    out-of-fold training probabilities (the logistic layer refitted per fold; its deep and
    radscore inputs come from the models fitted on the whole training set)."""
    from srgan3d.study.logistic import Logistic

    if res.fitted.radscore_post is None:
        raise ValueError("DLRCR needs the post-SR radscore")
    p_dl = np.clip(deep_post, 1e-6, 1 - 1e-6)
    X = clin.copy()
    X["radscore_post_sr"] = res.fitted.radscore_post.decision_function(feats.post.loc[clin.index])
    X["dl_score"] = np.log(p_dl / (1 - p_dl))
    variables = [*res.fitted.clinical.variables, "radscore_post_sr", "dl_score"]
    model = Logistic(variables).fit(X.iloc[train], y[train])

    def fit_predict(fit_rows: np.ndarray, held: np.ndarray) -> np.ndarray:
        part = Logistic(variables).fit(X.iloc[train[fit_rows]], y[train[fit_rows]])
        return part.predict_proba(X.iloc[train[held]])

    oof = np.full(len(y), np.nan)
    oof[train] = out_of_fold(y[train], modeling.cv_folds, modeling.seed, fit_predict, what="DLRCR")
    record = DlrcrModel(variables=tuple(variables), table=rows_of(OddsRatio, model.table_), fit=model.fit_note())
    return record, model.predict_proba(X), oof


def _deep(
    table: pd.DataFrame, keep: pd.DataFrame, feats: FeatureTables, res: ModelingResult, clin: pd.DataFrame,
    y: np.ndarray, sets: dict[str, np.ndarray], outdir: Path, config: DeepConfig, modeling: ModelingConfig,
) -> tuple[DeepResult, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The deep models before and after SR, and DLRCR (only on a post-SR deep score that
    learned); a failure is reported, not fatal. Returns the results, the probabilities
    (``deep_pre``, ``deep_post``, ``dlrcr``) and DLRCR's out-of-fold training probabilities."""
    from srgan3d.study.deep import deep_models

    probs = pd.DataFrame(index=keep.index)
    oof = pd.DataFrame(index=keep.index)
    try:
        result, deep_p = deep_models(_deep_inputs(table, keep, feats, outdir, config), y, sets, config)
        for which, v in deep_p.items():
            probs[f"deep_{which}"] = v
        post = result.models.get("post")
        if post is None or not post.learned:
            why = "no post-SR deep model" if post is None else f"the post-SR deep model did not learn: {post.not_learned}"
            log.warning("DLRCR not built: %s", why)
            return replace(result, dlrcr_skipped=why), probs, oof
        record, probs["dlrcr"], oof["dlrcr"] = _dlrcr(feats, res, clin, y, sets[TRAIN], deep_p["post"], modeling)
        return replace(result, dlrcr=record), probs, oof
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        log.warning("deep models skipped: %s", exc)
        empty = pd.DataFrame(index=keep.index)
        return DeepResult(config=config, skipped=f"{type(exc).__name__}: {exc}"), empty, empty.copy()


def _readers(
    keep: pd.DataFrame, y: np.ndarray, tested: dict[str, np.ndarray], roster: Roster, p_best: np.ndarray
) -> ReaderResult | None:
    """The best model against the readers on each test set, when the table has reader columns; a
    problem skips the comparison with its reason, the study goes on."""
    from srgan3d.study.reader_study import compare_readers, reader_columns

    if not reader_columns(keep):
        return None
    try:
        return compare_readers(keep, y, tested, roster.best_label, p_best)  # indexed by patient_id: rows named
    except ValueError as exc:
        log.warning("reader comparison skipped: %s", exc)
        return ReaderResult(best_model=roster.best_label, skipped=str(exc))


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
