"""The cohort table: parsing, validation and the mRECIST response mapping.

One row per patient (ARCHITECTURE.md): ``patient_id``, ``image``, ``mask``, ``response``, optional
``image_sr`` and ``mask_sr``, an optional ``set`` (``train``, ``test`` or the name of an external
test set such as ``centre_B``), and clinical columns. Paths are relative to the table's folder.
``response`` is CR/PR/SD/PD or 1/0 (objective response = CR + PR = 1). Where ``response`` is
empty, it is derived from ``baseline_viable_mm``, ``followup_viable_mm`` (one or more sums of
viable-tumour diameters, separated by ``;``, in time order) and ``new_lesion`` by mRECIST.
Several readers' reads, ``response_1`` ... ``response_k``, give the label by their majority
(`srgan3d.study.agreement`); a tie or an unread patient is refused by name unless the caller
says what to do (`response_ties`). ``image`` and ``mask`` are needed only when the study
extracts features itself (`need_images`).

The study's split is made here, once (`make_split`): the sets the table gives, or a seeded
stratified draw when it has no ``set`` column.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srgan3d.io import split_segment
from srgan3d.study.agreement import (
    TIE_POLICIES,
    majority_label,
    parse_read,
    parse_response_codes,
    responder_call,
)
from srgan3d.study.config import DEFAULT_TEST_SIZE
from srgan3d.study.results import TEST, TRAIN, ExcludedPatient, Split
from srgan3d.study.tables import TableReadError, TableSource, is_number, read_cells, split_sheet

log = logging.getLogger(__name__)

REQUIRED = ("patient_id", "image", "mask")
#: Columns of several readers' mRECIST reads.
READ_COLUMN = re.compile(r"^response_(\d+)$")
PATH_COLUMNS = ("image", "mask", "image_sr", "mask_sr", "liver_mask", "image_2")
RESPONSE_CODES = {"CR": 1, "PR": 1, "SD": 0, "PD": 0, "1": 1, "0": 0}
MIN_PER_CLASS = 10
#: Fewest training patients per class when the table gives the sets: what a drawn 80:20 split of
#: MIN_PER_CLASS per class leaves in training (and enough for 5-fold cross-validation).
MIN_TRAIN_PER_CLASS = 8
#: The drawn split's test fraction when the table has no `set` column and none is given.
#: Set names that look like a misspelt train/test rather than an external set's name.
AMBIGUOUS_SETS = {"training", "trn", "testing", "tst", "val", "valid", "validation", "internal", "development"}


class TableProblems(ValueError):
    """A table the user gave has problems; `problems` lists every one (row, patient, column and
    the fix), all at once. `what` names the table in the message."""

    what = "table"

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in the {self.what}"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in problems))


class CohortError(TableProblems):
    """The cohort table has problems; `problems` lists every one with its row and column."""

    what = "cohort table"


def mrecist_category(baseline_mm: float, followup_mm: Sequence[float], *, new_lesion: bool = False) -> str:
    """mRECIST category at the last follow-up from sums of viable (arterially enhancing) diameters.

    In this order: PD if a new lesion appeared or the sum rose by >= 20% over its nadir (the
    smallest sum since baseline, baseline included); CR if no viable tumour is left; PR if the sum
    fell by >= 30% from baseline; else SD.
    """
    if not followup_mm:
        raise ValueError("mRECIST needs at least one follow-up measurement")
    sums = [float(baseline_mm), *map(float, followup_mm)]
    if any(not np.isfinite(s) or s < 0 for s in sums):
        raise ValueError(f"viable-tumour sums must be non-negative numbers, not {sums}")
    if baseline_mm <= 0:
        raise ValueError("the baseline sum of viable diameters must be > 0 (a target lesion is needed)")
    last = sums[-1]
    nadir = min(sums[:-1])
    if new_lesion or (nadir > 0 and last >= 1.2 * nadir) or (nadir == 0 and last > 0):
        return "PD"
    if last == 0:
        return "CR"
    if last <= 0.7 * sums[0]:
        return "PR"
    return "SD"


@dataclass
class Cohort:
    """A validated cohort: `table` has absolute paths and a 0/1 ``label`` column."""

    path: Path
    table: pd.DataFrame
    clinical_columns: list[str] = field(default_factory=list)
    excluded: list[ExcludedPatient] = field(default_factory=list)
    # several readers' reads (index patient_id, one column per reader; None = not read), or None
    reads: pd.DataFrame | None = None
    label_rule: str = ""
    ties: str = ""
    source: TableSource | None = None  # how the table was read (format, delimiter, encoding, sheet)
    response_codes: dict[str, str] = field(default_factory=dict)  # --response-codes, as used
    # the rows of the patients left out (patient_id, the path columns as absolute paths, `reason`):
    # a feature table computed before the labels were cleaned still has rows for them
    left_out: pd.DataFrame | None = None

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(dtype=int)

    @property
    def root(self) -> Path:
        return self.path.parent


def _truthy(value: object) -> bool | None:
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "y"):
        return True
    if s in ("0", "false", "no", "n", "", "nan"):
        return False
    return None


def _response_of(row: pd.Series, where: str, problems: list[str], codes: Mapping[str, str] | None = None) -> int | None:
    raw = row.get("response")
    code = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
    if code:
        try:
            read = parse_read(code, codes)
        except ValueError as exc:
            problems.append(f"{where}, column 'response': {exc}")
            return None
        assert read is not None
        return responder_call(read)
    if "baseline_viable_mm" in row.index and "followup_viable_mm" in row.index:
        try:
            base = float(row["baseline_viable_mm"])
            follow = [float(v) for v in str(row["followup_viable_mm"]).split(";") if v.strip()]
            new = _truthy(row.get("new_lesion", 0))
            if new is None:
                raise ValueError(f"new_lesion must be yes/no or 1/0, not {row.get('new_lesion')!r}")
            return RESPONSE_CODES[mrecist_category(base, follow, new_lesion=new)]
        except ValueError as exc:
            problems.append(f"{where}, columns 'baseline_viable_mm'/'followup_viable_mm': {exc}")
            return None
    problems.append(
        f"{where}, column 'response': empty; give CR/PR/SD/PD or 1/0, or the columns "
        "baseline_viable_mm and followup_viable_mm to derive it"
    )
    return None


def read_columns(columns: Sequence[str]) -> list[str]:
    """The several-readers columns ``response_1`` ... ``response_k``, in reader order."""
    found = [(int(m.group(1)), c) for c in columns if (m := READ_COLUMN.match(c))]
    return [c for _, c in sorted(found)]


TIE_FIX = "give --response-ties drop (leave such patients out), responder or non-responder"


def _majority_of(
    row: pd.Series, columns: list[str], where: str, ties: str | None, problems: list[str],
    codes: Mapping[str, str] | None = None,
) -> tuple[int | None, list[str | int | None], str | None]:  # fmt: skip
    """(label, the parsed reads, why the patient is left out) from the readers' reads; bad codes,
    and ties or unread patients without a `ties` policy, are problems."""
    reads: list[str | int | None] = []
    for c in columns:
        try:
            reads.append(parse_read(row[c], codes))
        except ValueError as exc:
            problems.append(f"{where}, column {c!r}: {exc}")
            reads.append(None)
    label = majority_label(reads)
    if label is not None:
        return label, reads, None
    given = [(c, r) for c, r in zip(columns, reads, strict=True) if r is not None]
    if not given:
        if ties is None:
            problems.append(f"{where}, columns {', '.join(columns)}: no reader read this patient; {TIE_FIX}")
            return None, reads, None
        return None, reads, "no reader read this patient"
    calls = [responder_call(r) for _, r in given]
    split = ", ".join(f"{c} {r}" for c, r in given)
    if ties is None:
        problems.append(
            f"{where}: the readers split {sum(calls)}-{len(calls) - sum(calls)} on response ({split}); {TIE_FIX}"
        )
        return None, reads, None
    if ties == "drop":
        return None, reads, f"the readers split {sum(calls)}-{len(calls) - sum(calls)} ({split}); --response-ties drop"
    return int(ties == "responder"), reads, None


def _geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    from srgan3d.io import read_volume

    if path.is_file() and path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        img: Any = nib.load(str(path))
        return tuple(int(n) for n in img.shape[:3]), img.affine
    vol = read_volume(path)
    return vol.shape, vol.affine


def _affine_difference(mask_affine: np.ndarray, image_affine: np.ndarray) -> str:
    """Says how a mask's grid differs from its image's, in mm: its origin shift, and the largest
    change of a voxel axis (spacing or direction)."""
    shift = mask_affine[:3, 3] - image_affine[:3, 3]
    axes = np.abs(mask_affine[:3, :3] - image_affine[:3, :3]).max()
    parts = []
    if np.abs(shift).max() > 1e-3:
        parts.append(f"its origin is shifted by ({', '.join(f'{v:+.2f}' for v in shift)}) mm "
                     f"({float(np.linalg.norm(shift)):.2f} mm)")  # fmt: skip
    if axes > 1e-3:
        parts.append(f"its voxel axes differ by up to {axes:.3f} mm (spacing or direction)")
    return (
        "the mask has the image's shape but not its grid: " + " and ".join(parts)
        + "; resample the mask onto the image (or fix its header)"
    )


#: Columns of a cohort table that are not clinical variables: files, labels, sets, the
#: response-measurement columns, the synthetic cohort's truth images.
NOT_CLINICAL = {
    "patient_id", "image", "mask", "response", "image_sr", "mask_sr", "liver_mask", "image_2", "label", "set",
    "baseline_viable_mm",
    "followup_viable_mm", "new_lesion", "truth_hr", "truth_hr_mask",
}  # fmt: skip


def summary_columns(columns: Sequence[str]) -> list[str]:
    """The clinical columns of a cohort table, for the cohort's summary table: not files, labels,
    sets, readers' reads, survival endpoints (``*_time``/``*_event``) or the synthetic cohort's
    truths (``true_*``)."""
    return [c for c in columns if c not in NOT_CLINICAL and not c.startswith(("true_", "reader_"))
            and not READ_COLUMN.match(c) and not c.endswith(("_time", "_event"))]  # fmt: skip


def read_cohort(
    path: str | Path,
    *,
    clinical_columns: Sequence[str] | None = None,
    min_per_class: int = MIN_PER_CLASS,
    check_images: bool = True,
    need_images: bool = True,
    response_ties: str | None = None,
    response_codes: Mapping[str, str] | str | None = None,
) -> Cohort:
    """Read and validate a cohort table; raise `CohortError` listing every problem.

    Args:
        path: the table: a CSV (comma, semicolon or tab; decimal commas; UTF-8 or Windows-1252)
            or a workbook (.xlsx, .xls, .ods; ``book.xlsx#Sheet`` for another sheet than the
            first), read by `srgan3d.study.tables.read_cells`; paths inside it are relative to
            its folder (or absolute).
        response_codes: what numeric response codes mean ({"1": "CR", "2": "PR", ...}, or
            "1=CR,2=PR,3=SD,4=PD"): never guessed; without it only 1/0 (responder call) are numbers.
        clinical_columns: columns that must be present and numeric or yes/no (None: no check).
        min_per_class: fewest responders and non-responders accepted.
        check_images: open every image and mask header; read masks to check they are not empty
            and lie on the image's grid.
        need_images: every patient needs ``image`` and ``mask`` (the study extracts features);
            False when features come from a table or the study is the clinical half only.
        response_ties: with ``response_1`` ... ``response_k``: what to do with a patient whose
            readers split evenly (``drop``, ``responder``, ``non-responder``; None: refuse by
            name). A patient nobody read is left out under any policy (and refused under None).
    """
    if response_ties is not None and response_ties not in TIE_POLICIES:
        raise ValueError(f"--response-ties must be one of {', '.join(TIE_POLICIES)}, not {response_ties!r}")
    path = Path(path)
    codes = parse_response_codes(response_codes)
    df, source = _read_table(path)
    required = REQUIRED if need_images else ("patient_id",)
    readers = read_columns(df.columns)
    _check_columns(path, df, required, readers)
    clinical = list(clinical_columns or [])
    rows = _Rows(root=split_sheet(path)[0].parent, readers=readers, required=required, response_ties=response_ties,
                 codes=codes,
                 paths={c: [] for c in PATH_COLUMNS if c in df.columns}, clinical=clinical,
                 problems=[f"clinical column {c!r} is not in the table (columns: {', '.join(df.columns)})"
                           for c in clinical if c not in df.columns])  # fmt: skip
    for i, row in df.iterrows():
        rows.check(int(i), row, need_images=need_images, check_images=check_images and need_images)
    kept = [k for k in range(len(df)) if k not in rows.excluded]
    n_pos = rows.check_counts(kept, has_sets="set" in df.columns, min_per_class=min_per_class)
    if rows.problems:
        raise CohortError(path, rows.problems)
    full = rows.table(df)
    out = full.iloc[kept].reset_index(drop=True)
    gone = sorted(rows.excluded)
    left_out = full.iloc[gone][["patient_id", *rows.paths]].reset_index(drop=True)
    left_out["reason"] = [rows.excluded[k].reason for k in gone]
    for e in rows.excluded.values():
        log.warning("patient %s left out: %s", e.patient_id, e.reason)
    log.info("cohort %s: %d patients, %d responders", path, len(out), n_pos)
    rule, ties = _label_rule(readers, response_ties)
    if codes:
        rule = (rule or "the response column") + " (numeric codes read as " + ", ".join(
            f"{k} = {v}" for k, v in codes.items()) + ", --response-codes)"  # fmt: skip
    return Cohort(path=path, table=out, clinical_columns=clinical, excluded=list(rows.excluded.values()),
                  reads=rows.read_table(), label_rule=rule, ties=ties, source=source, response_codes=codes,
                  left_out=left_out)  # fmt: skip


def _read_table(path: Path) -> tuple[pd.DataFrame, TableSource]:
    """The table's cells as written (strings, empty cells empty); an unreadable file is one problem."""
    try:
        return read_cells(path, what="cohort table")
    except TableReadError as exc:
        raise CohortError(split_sheet(path)[0], [str(exc)]) from None


def _check_columns(path: Path, df: pd.DataFrame, required: Sequence[str], readers: list[str]) -> None:
    """The columns the study needs, and one source of the label (refused at once: nothing else
    can be checked without them)."""
    missing = [c for c in required if c not in df.columns]
    if readers and "response" in df.columns:
        raise CohortError(path, [
            f"the table has both 'response' and the readers' columns {', '.join(readers)}; the label comes from "
            "one of them: rename 'response' (e.g. consensus_response) to use the readers' majority, or drop the "
            "readers' columns"])  # fmt: skip
    if not readers and "response" not in df.columns and "baseline_viable_mm" not in df.columns:
        missing.append("response (or response_1 ... response_k)")
    if missing:
        raise CohortError(
            path,
            [f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
             f"the table has {', '.join(df.columns) or 'no columns'}"],
        )  # fmt: skip


def _label_rule(readers: list[str], response_ties: str | None) -> tuple[str, str]:
    """How the label came from several readers, and what was done with ties (empty without readers)."""
    if not readers:
        return "", ""
    rule = f"the majority of {len(readers)} readers' responder calls (CR + PR) among those who read the patient"
    ties = {None: "no ties or unread patients (none allowed)",
            "drop": "ties and unread patients left out (--response-ties drop)",
            "responder": "ties called responders (--response-ties responder); unread patients left out",
            "non-responder": "ties called non-responders (--response-ties non-responder); unread patients "
                             "left out"}[response_ties]  # fmt: skip
    return rule, ties


@dataclass
class _Rows:
    """What the row-by-row check of a cohort table collects: every problem (with its row and
    column), each patient's label, reads, set and absolute paths, and who is left out."""

    root: Path
    readers: list[str]
    required: Sequence[str]
    response_ties: str | None
    codes: dict[str, str]
    paths: dict[str, list[str]]
    clinical: list[str]
    problems: list[str] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    reads: dict[str, list[str | int | None]] = field(default_factory=dict)
    excluded: dict[int, ExcludedPatient] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    sets: list[str | None] = field(default_factory=list)

    def check(self, i: int, row: pd.Series, *, need_images: bool, check_images: bool) -> None:
        line = i + 2  # header is line 1
        pid = row["patient_id"].strip()
        where = f"row {line} (patient {pid or '?'})"
        if not pid:
            self.problems.append(f"row {line}, column 'patient_id': empty")
        elif pid in self.seen:
            self.problems.append(f"{where}, column 'patient_id': duplicate of row {self.seen[pid]}")
        else:
            self.seen[pid] = line
        if self.readers:
            label, row_reads, left_out = _majority_of(row, self.readers, where, self.response_ties, self.problems,
                                                      self.codes)  # fmt: skip
            self.reads[pid] = row_reads
            if left_out:
                self.excluded[i] = ExcludedPatient(pid, left_out)
            self.labels.append(label)
        else:
            self.labels.append(_response_of(row, where, self.problems, self.codes))
        if "set" in row.index:
            self.sets.append(_set_of(row["set"], where, self.problems))
        self._check_paths(row, where, need_images)
        self._check_clinical(row, where)
        if check_images:
            self._check_grids(where)

    def _check_paths(self, row: pd.Series, where: str, need_images: bool) -> None:
        for c in self.paths:
            raw = row[c].strip()
            if not raw:
                if c in self.required:
                    self.problems.append(f"{where}, column {c!r}: empty")
                self.paths[c].append("")
                continue
            p = Path(raw) if Path(raw).is_absolute() else self.root / raw
            self.paths[c].append(str(p))
            file, _ = split_segment(p)  # a Slicer segmentation may name its segment: file.seg.nrrd#tumour
            if need_images and not file.exists():  # without extraction the files are only names
                self.problems.append(f"{where}, column {c!r}: file {raw} not found (looked at {file})")

    def _check_clinical(self, row: pd.Series, where: str) -> None:
        for c in self.clinical:
            if c not in row.index:
                continue
            v = row[c].strip()
            if v == "":
                self.problems.append(f"{where}, column {c!r}: empty; fill it or drop the patient")
            elif not is_number(v) and _truthy(v) is None:
                self.problems.append(f"{where}, column {c!r}: {v!r} is neither a number nor yes/no")

    def _check_grids(self, where: str) -> None:
        """Each mask of this row opens and lies on its image's grid, and is not empty."""
        from srgan3d.io import read_mask

        for img_col, mask_col in (("image", "mask"), ("image_sr", "mask_sr"), ("image", "liver_mask")):
            if img_col not in self.paths or mask_col not in self.paths:
                continue
            ip, mp = self.paths[img_col][-1], self.paths[mask_col][-1]
            if not ip or not mp or not split_segment(ip)[0].exists() or not split_segment(mp)[0].exists():
                continue
            try:
                ishape, iaff = _geometry(Path(ip))
                mvol = read_mask(mp, Path(ip))  # a DICOM-SEG / RTSTRUCT: placed on the image, its references checked
            except Exception as exc:  # noqa: BLE001 - any unreadable file is one reported problem
                self.problems.append(f"{where}, columns {img_col!r}/{mask_col!r}: cannot read: {exc}")
                continue
            if mvol.shape != ishape:
                self.problems.append(f"{where}, column {mask_col!r}: mask grid {mvol.shape} does not match the "
                                     f"image's {ishape}; resample the mask onto the image")  # fmt: skip
            elif not np.allclose(mvol.affine, iaff, atol=1e-3):
                self.problems.append(f"{where}, column {mask_col!r}: {_affine_difference(mvol.affine, iaff)}")
            elif not np.any(mvol.data > 0.5):
                self.problems.append(f"{where}, column {mask_col!r}: the mask is empty (no voxel > 0.5)")

    def check_counts(self, kept: list[int], *, has_sets: bool, min_per_class: int) -> int:
        """Enough responders and non-responders (in each set, with a `set` column); returns the
        responders."""
        known = [self.labels[k] for k in kept if self.labels[k] is not None]
        n_pos = int(sum(v for v in known if v is not None))
        n_neg = len(known) - n_pos
        if has_sets:
            if all(self.labels[k] is not None for k in kept) and all(v is not None for v in self.sets):
                self.problems += split_problems([str(self.sets[k]) for k in kept], [int(self.labels[k] or 0) for k in kept],
                                                min(min_per_class, MIN_TRAIN_PER_CLASS))  # fmt: skip
        elif not self.problems and (n_pos < min_per_class or n_neg < min_per_class):
            self.problems.append(f"column 'response': {n_pos} responders and {n_neg} non-responders; at least "
                                 f"{min_per_class} of each are needed for the models")  # fmt: skip
        return n_pos

    def table(self, df: pd.DataFrame) -> pd.DataFrame:
        """The validated table: absolute paths, `label`, the set, clinical columns as numbers."""
        out = df.copy()
        for c, vals in self.paths.items():
            out[c] = vals
        out["label"] = [-1 if v is None else int(v) for v in self.labels]
        if "set" in df.columns:
            out["set"] = self.sets
        for c in self.clinical:
            out[c] = [float(v) if is_number(v) else float(bool(_truthy(v))) for v in df[c].str.strip()]
        if self.readers:
            out["response"] = out["label"].astype(str)  # the majority's responder call, as the report shows it
        return out

    def read_table(self) -> pd.DataFrame | None:
        """Each reader's read of each patient (None: not read), indexed by patient_id."""
        if not self.readers:
            return None
        table = pd.DataFrame.from_dict(self.reads, orient="index", columns=self.readers, dtype=object)
        table = table.where(table.notna(), None)
        table.index.name = "patient_id"
        return table


def _set_of(raw: str, where: str, problems: list[str]) -> str | None:
    """A `set` cell: train and test (any case) as such, any other name an external test set."""
    name = str(raw).strip()
    if not name:
        problems.append(f"{where}, column 'set': empty; give train, test or the name of an external test set")
        return None
    if name.lower() in (TRAIN, TEST):
        return name.lower()
    if name.lower() in AMBIGUOUS_SETS:
        problems.append(
            f"{where}, column 'set': unknown set {name!r}; write train or test for the development cohort, "
            "or name an external test set (for example centre_B)"
        )
        return None
    return name


def split_problems(sets: Sequence[str], labels: Sequence[int], min_per_class: int = MIN_TRAIN_PER_CLASS) -> list[str]:
    """What stops a split given by the table: too few training patients per class, no set to test
    on, a set with one class only (its AUC is undefined)."""
    problems = []
    by_set: dict[str, list[int]] = {}
    for s, y in zip(sets, labels, strict=True):
        by_set.setdefault(s, []).append(int(y))
    train = by_set.get(TRAIN, [])
    n_pos, n_neg = sum(train), len(train) - sum(train)
    if not train:
        problems.append("column 'set': no patient is in the training set (set = train); the models need one")
    elif n_pos < min_per_class or n_neg < min_per_class:
        problems.append(
            f"column 'set': the training set has {n_pos} responders and {n_neg} non-responders; at least "
            f"{min_per_class} of each are needed for the models"
        )
    tested = [s for s in by_set if s != TRAIN]
    if not tested:
        problems.append("column 'set': no test set; mark some patients test, or name an external set (e.g. centre_B)")
    for s in tested:
        ys = by_set[s]
        if len(set(ys)) < 2:
            kind = "responders" if ys[0] == 1 else "non-responders"
            problems.append(
                f"column 'set': set {s!r} holds {len(ys)} {kind} only; an AUC needs both classes in every test set"
            )
    return problems


def split_patients(y: np.ndarray, *, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split: (train indices, test indices), each sorted."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def make_split(table: pd.DataFrame, *, test_size: float | None, seed: int, source: Path | None = None) -> Split:
    """The study's one split of the patients of `table` (``patient_id``, ``label``, optional ``set``).

    With a ``set`` column the sets are exactly those it gives (train, test, external sets in the
    order the table first names them); `test_size` must then be None. Without it, a stratified
    draw of `test_size` (default `config.DEFAULT_TEST_SIZE`) with `seed`.
    """
    ids = table["patient_id"].astype(str).to_numpy()
    where = f"{source}: " if source else ""
    if "set" in table.columns:
        if test_size is not None:
            raise ValueError(
                f"{where}--test-size {test_size:g} was given, but the cohort table has a 'set' column that already "
                "says who is tested: drop --test-size, or drop the column to draw a split"
            )
        problems = split_problems(table["set"].astype(str).tolist(), table["label"].astype(int).tolist(), 1)
        if problems:
            raise CohortError(source or Path("cohort"), problems)
        names = list(dict.fromkeys(table["set"].astype(str)))
        order = [n for n in (TRAIN, TEST) if n in names] + [n for n in names if n not in (TRAIN, TEST)]
        sets = {n: tuple(ids[table["set"].astype(str).to_numpy() == n]) for n in order}
        return Split(sets=sets, source="table", seed=seed, test_size=None)
    size = DEFAULT_TEST_SIZE if test_size is None else test_size
    train, test = split_patients(table["label"].to_numpy(int), test_size=size, seed=seed)
    return Split(sets={TRAIN: tuple(ids[train]), TEST: tuple(ids[test])}, source="drawn", seed=seed, test_size=size)


