"""Radiomic features computed elsewhere, read in place of extraction (`evaluate --features`).

Two layouts are read:

- pyradiomics' batch output: one row per image/mask pair, with the input columns (``Image``,
  ``Mask``, perhaps ``Label`` and others), ``diagnostics_*`` columns (dropped) and the features
  (``original_*``, ``wavelet-*``, ``log-sigma-*``...). Rows are matched to the cohort's patients by
  a ``patient_id`` column when it has one, else by ``Image`` and ``Mask`` matching the cohort's
  ``image`` and ``mask`` (relative paths resolved against the feature table's folder, then,
  where that finds nothing, by the files' names);
- a plain table keyed by ``patient_id``, every other column a feature.

Rows of patients the cohort table lists but the study leaves out for a stated reason (no reader
read them, say) are read and set aside with that reason: extraction runs on every scan before the
labels are cleaned, so a feature table that covers more patients than the study keeps is the
normal case. Problems with the table itself (duplicate patients, non-numeric feature columns,
PRE and POST tables with different features, rows of patients absent from the cohort table, rows
that match no patient) are raised all at once (`FeatureTableError`). A patient without features, or with a NaN or infinite feature, cannot be
used: it is returned with the reason (the study names it in the report and on the terminal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from srgan3d.study.cohort import TableProblems
from srgan3d.study.results import ExcludedPatient
from srgan3d.study.tables import TableReadError, TableSource, read_cells, split_sheet

#: Columns pyradiomics' batch mode copies from its input CSV (case as pyradiomics writes them).
INPUT_COLUMNS = ("Image", "Mask", "Label", "label", "Reader", "ID", "id")


class FeatureTableError(TableProblems):
    """A feature table that cannot be used; `problems` lists every one with the patient/column."""

    what = "feature table"


@dataclass
class FeatureTable:
    """Features indexed by patient_id (the cohort's order, usable patients only)."""

    path: Path
    features: pd.DataFrame
    excluded: list[ExcludedPatient] = field(default_factory=list)
    layout: str = "patient_id"  # "patient_id" or "pyradiomics batch (Image/Mask)"
    # rows of patients the cohort leaves out, set aside: patient_id -> the cohort's reason
    set_aside: dict[str, str] = field(default_factory=dict)
    source: TableSource | None = None  # how the file was read

    def set_aside_note(self) -> str:
        """One line naming the set-aside rows and why ('' when there are none)."""
        if not self.set_aside:
            return ""
        by_reason: dict[str, list[str]] = {}
        for pid, why in self.set_aside.items():
            by_reason.setdefault(why, []).append(pid)
        parts = "; ".join(f"{', '.join(ids)} ({why})" for why, ids in by_reason.items())
        return f"{self.path.name}: the rows of {len(self.set_aside)} patient(s) the study leaves out were set aside: {parts}"


def _key(path: str, root: Path) -> str:
    p = Path(str(path).strip())
    return str((p if p.is_absolute() else root / p).resolve())


def _match_by_paths(df: pd.DataFrame, cohort: pd.DataFrame, root: Path, path: Path, problems: list[str]) -> pd.Series:
    """patient_id of each feature row, from its Image/Mask pair."""
    if "image" not in cohort.columns or "mask" not in cohort.columns:
        problems.append("the table has no patient_id column, and the cohort table has no image/mask columns to "
                        "match its Image/Mask columns to: add a patient_id column to the feature table")  # fmt: skip
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    by_path = {(_key(i, Path("/")), _key(m, Path("/"))): str(pid)
               for pid, i, m in zip(cohort["patient_id"], cohort["image"], cohort["mask"], strict=True)}  # fmt: skip
    by_name: dict[tuple[str, str], list[str]] = {}
    for pid, i, m in zip(cohort["patient_id"], cohort["image"], cohort["mask"], strict=True):
        by_name.setdefault((Path(str(i)).name, Path(str(m)).name), []).append(str(pid))
    out = []
    for k, row in df.iterrows():
        pair = (_key(row["Image"], root), _key(row["Mask"], root))
        pid = by_path.get(pair)
        if pid is None:
            names = by_name.get((Path(str(row["Image"]).strip()).name, Path(str(row["Mask"]).strip()).name), [])
            pid = names[0] if len(names) == 1 else None
        if pid is None:
            problems.append(f"row {int(k) + 2}: Image {row['Image']} / Mask {row['Mask']} match no patient's image and "
                            "mask in the cohort table; add a patient_id column, or correct the paths")  # fmt: skip
        out.append(pid)
    return pd.Series(out, index=df.index, dtype=object)


def read_feature_table(path: str | Path, cohort: pd.DataFrame, *, left_out: pd.DataFrame | None = None) -> FeatureTable:
    """The features of `cohort`'s patients (``patient_id``, and ``image``/``mask`` as absolute paths)
    from a pyradiomics batch CSV or a plain table keyed by ``patient_id``.

    `left_out`: the cohort table's patients the study leaves out (``patient_id``, ``reason``, and
    their ``image``/``mask`` where the table has them, `srgan3d.study.cohort.Cohort.left_out`):
    their rows are read, matched and set aside with the reason (`FeatureTable.set_aside`), not
    refused."""
    gone = left_out if left_out is not None else pd.DataFrame({"patient_id": [], "reason": []})
    reasons = dict(zip(gone["patient_id"].astype(str), gone["reason"].astype(str), strict=True))
    everyone = pd.concat([cohort, gone.drop(columns="reason")], ignore_index=True) if len(gone) else cohort
    try:
        df, source = read_cells(path, what="feature table")
    except TableReadError as exc:
        raise FeatureTableError(split_sheet(path)[0], [str(exc)]) from None
    path = source.path
    problems: list[str] = []
    if "patient_id" in df.columns:
        ids = df["patient_id"].str.strip()
        layout = "patient_id"
    elif "Image" in df.columns and "Mask" in df.columns:
        ids = _match_by_paths(df, everyone, path.parent, path, problems)
        layout = "pyradiomics batch (Image/Mask)"
    else:
        raise FeatureTableError(path, ["neither a patient_id column nor pyradiomics' Image and Mask columns (columns: "
                                       f"{', '.join(list(df.columns)[:8])}); add a patient_id column naming each row's "
                                       "patient"])  # fmt: skip
    feature_cols = [c for c in df.columns
                    if c != "patient_id" and c not in INPUT_COLUMNS and not c.startswith("diagnostics_")]  # fmt: skip
    if not feature_cols:
        problems.append("no feature columns (every column is patient_id, an input column or diagnostics_*)")
    problems += _id_problems(ids, set(everyone["patient_id"].astype(str)), len(cohort), len(reasons))
    values = df[feature_cols].apply(lambda col: pd.to_numeric(col.str.strip().replace({"": "nan"}), errors="coerce"))
    for c in feature_cols:
        text = df[c].str.strip()
        bad = values[c].isna() & ~text.str.lower().isin(["", "nan", "inf", "-inf", "infinity", "-infinity"])
        if bad.any():
            k = bad.idxmax()
            problems.append(f"column {c!r} is not numeric (patient {ids[k] or '?'}, row {int(k) + 2}: {text[k]!r}); "
                            "drop it or give numbers")  # fmt: skip
    if problems:
        raise FeatureTableError(path, problems)
    values.index = pd.Index(ids.to_list(), name="patient_id")
    set_aside = {str(p): reasons[str(p)] for p in values.index if str(p) in reasons}
    values = values.loc[[str(p) not in reasons for p in values.index]]
    order = [str(p) for p in cohort["patient_id"]]
    excluded = _unusable(values, order, path.name)
    usable = [p for p in order if p not in {e.patient_id for e in excluded}]
    return FeatureTable(path=path, features=values.loc[usable].astype(float), excluded=excluded, layout=layout,
                        set_aside=set_aside, source=source)  # fmt: skip


def _id_problems(ids: pd.Series, known: set[str], n_kept: int, n_left_out: int) -> list[str]:
    """Empty, duplicate and unknown patient ids, each with its row (None: a row matched to no
    patient, already reported). Unknown: absent from the cohort table altogether."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for k, pid in ids.items():
        if pid is None:
            continue
        line = int(k) + 2
        if pid == "":
            problems.append(f"row {line}, column 'patient_id': empty")
        elif pid in seen:
            problems.append(f"row {line}: patient {pid} is a duplicate of row {seen[pid]}; keep one row per patient")
        else:
            seen[pid] = line
            if pid not in known:
                problems.append(f"row {line}: patient {pid} is not in the cohort table (which lists {n_kept + n_left_out} "
                                f"patients); add the patient to the cohort table, or delete the row")  # fmt: skip
    return problems


def _unusable(values: pd.DataFrame, order: list[str], name: str) -> list[ExcludedPatient]:
    """The cohort's patients without a row, or with NaN or infinite features, and why."""
    excluded: list[ExcludedPatient] = []
    for pid in order:
        if pid not in values.index:
            excluded.append(ExcludedPatient(pid, f"no features in {name}"))
            continue
        row = values.loc[pid].to_numpy(float)
        bad_cols = [c for c, v in zip(values.columns, row, strict=True) if not np.isfinite(v)]
        if bad_cols:
            shown = ", ".join(bad_cols[:3]) + (f" and {len(bad_cols) - 3} more" if len(bad_cols) > 3 else "")
            excluded.append(ExcludedPatient(pid, f"NaN or infinite feature(s) in {name}: {shown}"))
    return excluded


def check_same_features(pre: FeatureTable, post: FeatureTable) -> None:
    """PRE and POST tables must hold the same features; the differences are named."""
    a, b = list(pre.features.columns), list(post.features.columns)
    if a == b:
        return
    only_pre, only_post = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    problems = []
    if only_pre:
        problems.append(f"{len(only_pre)} feature(s) only in {pre.path.name}: {', '.join(only_pre[:5])}"
                        + (" ..." if len(only_pre) > 5 else ""))  # fmt: skip
    if only_post:
        problems.append(f"{len(only_post)} feature(s) only in {post.path.name}: {', '.join(only_post[:5])}"
                        + (" ..." if len(only_post) > 5 else ""))  # fmt: skip
    if not problems:
        problems.append("the same features in another column order; write both tables with one order")
    raise FeatureTableError(post.path, [*problems, "extract both with the same pyradiomics parameter file"])


def write_batch_layout(features: pd.DataFrame, cohort: pd.DataFrame, path: str | Path) -> Path:
    """Write `features` (index patient_id) in pyradiomics' batch layout (Image, Mask,
    diagnostics_*, then the features, full precision), matched to the cohort's image/mask."""
    from srgan3d.atomic import write_text_atomic

    rows = cohort.set_index(cohort["patient_id"].astype(str)).loc[features.index.astype(str)]
    out = pd.DataFrame({"Image": rows["image"].to_numpy(), "Mask": rows["mask"].to_numpy(),
                        "diagnostics_Versions_PyRadiomics": "srgan3d"}, index=features.index)  # fmt: skip
    out = pd.concat([out, features], axis=1)
    return write_text_atomic(Path(path), out.to_csv(index=False, float_format="%.17g"))
