"""Stages as people write them, ranked in their documented order, or refused by name.

A staging comparator (`--comparators`) must be ordinal. Each column is read by the one scheme its
values all fit, after a leading "Stage", "BCLC" or "Child-Pugh" and the separators around it are
dropped (``Stage-C``, ``Stage_ 0-2``, ``stage IIIA`` -> ``C``, ``0-2``, ``IIIA``):

- numbers (``0``, ``2.5``) as they are;
- score ranges (``0-2``, ``3``, ``4-6``, as CLIP groups are written), by their bounds; ranges
  that overlap are refused;
- Roman stages with optional substages (TNM/AJCC ``I`` < ``IIA`` < ``IIB`` < ``III`` < ``IIIA``
  ..., Okuda ``I``-``III``); a bare stage beside its own substages (``III`` and ``IIIA``) is
  ambiguous and refused;
- in a column named for BCLC: ``0`` < ``A`` < ``B`` < ``C`` < ``D``;
- in a column named for Child-Pugh: ``A`` < ``B`` < ``C``, or by points when every value carries
  them (``A5`` < ``A6`` < ``B7`` ... ``C15``; the points must match the class).

Anything else, or a column whose values mix schemes, is refused with the values seen and the fix:
``--stage-order COLUMN=v1<v2<...`` declares the order (every value must be listed). Imports no
torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from srgan3d.study.tables import is_number

_PREFIX = re.compile(r"^(stage|bclc|child[\s_-]*pugh|cps|cp|clip|okuda|tnm)[\s_:.-]*", re.IGNORECASE)
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}
_ROMAN_RE = re.compile(r"^(IV|I{1,3})([ABC])?$")
_RANGE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:-|–|to)\s*(\d+(?:\.\d+)?)$")
_CHILD_PUGH_RE = re.compile(r"^([ABC])\s*(\d{1,2})?$")
_CHILD_PUGH_POINTS = {"A": (5, 6), "B": (7, 9), "C": (10, 15)}
BCLC_ORDER = ("0", "A", "B", "C", "D")


class StageError(ValueError):
    """A comparator column that cannot be ranked; the message names the column, values and fix."""


def _core(value: str) -> str:
    """A cell without its 'Stage'/'BCLC'/... prefix and surrounding separators, upper-cased."""
    s = str(value).strip()
    for _ in range(2):  # "BCLC stage C"
        s = _PREFIX.sub("", s).strip(" _-:.")
    return s.upper().replace(" ", "")


def _kind_of_column(column: str) -> str:
    c = column.lower().replace("-", "_")
    if "bclc" in c:
        return "bclc"
    if "child" in c or "pugh" in c or c.startswith("cps") or c in ("cp", "cp_class", "cp_score"):
        return "child_pugh"
    return ""


def parse_stage_order(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`--stage-order COLUMN=v1<v2<...` options -> {column: (v1, v2, ...)}."""
    out: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        col, sep, order = spec.partition("=")
        values = tuple(v.strip() for v in order.split("<"))
        if not sep or not col.strip() or len(values) < 2 or any(not v for v in values):
            raise ValueError(
                f"--stage-order {spec!r}: write COLUMN=lowest<...<highest, e.g. --stage-order 'clip=Stage_ 0-2<Stage_3<Stage_4-6'"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"--stage-order {spec!r}: a value is listed twice")
        out[col.strip()] = values
    return out


def _rank_declared(raw: pd.Series, order: tuple[str, ...], column: str) -> pd.Series:
    rank = {v: float(i) for i, v in enumerate(order)}
    unknown = sorted(set(raw) - set(rank))
    if unknown:
        raise StageError(
            f"comparator {column!r}: value(s) {', '.join(map(repr, unknown))} are not in its --stage-order "
            f"({' < '.join(order)}); add them to the order"
        )
    return raw.map(rank).astype(float)


def _rank_scheme(core: pd.Series, column: str) -> tuple[pd.Series, str] | None:
    """Ranks by the one scheme every value fits, with the scheme's name; None when none fits."""
    values = sorted(set(core))
    num = pd.to_numeric(core, errors="coerce")
    if num.notna().all():
        return num.astype(float), "numbers"
    kind = _kind_of_column(column)
    if kind == "bclc" and all(v in BCLC_ORDER for v in values):
        return core.map({v: float(i) for i, v in enumerate(BCLC_ORDER)}).astype(float), "BCLC 0 < A < B < C < D"
    if kind == "child_pugh" and all(_CHILD_PUGH_RE.match(v) for v in values):
        parsed = {v: _CHILD_PUGH_RE.match(v).groups() for v in values}  # type: ignore[union-attr]
        if all(p[1] for p in parsed.values()):
            for v, (cls, pts) in parsed.items():
                lo, hi = _CHILD_PUGH_POINTS[cls]
                if not lo <= int(pts) <= hi:
                    raise StageError(
                        f"comparator {column!r}: {v!r} has {pts} points, but Child-Pugh class {cls} is {lo}-{hi} "
                        "points; correct the value"
                    )
            return core.map({v: float(p[1]) for v, p in parsed.items()}).astype(float), "Child-Pugh points 5-15"
        return core.map({v: float("ABC".index(p[0]) + 1) for v, p in parsed.items()}).astype(float), (
            "Child-Pugh A < B < C"
        )
    if all(_ROMAN_RE.match(v) for v in values):
        groups = {v: _ROMAN_RE.match(v).groups() for v in values}  # type: ignore[union-attr]
        bare = {g[0] for g in groups.values() if g[1] is None}
        sub = {g[0] for g in groups.values() if g[1] is not None}
        clash = sorted(bare & sub, key=_ROMAN.__getitem__)
        if clash:
            raise StageError(
                f"comparator {column!r}: stage {clash[0]} is written both bare and with substages "
                f"({', '.join(v for v in values if groups[v][0] == clash[0])}), so its rank is ambiguous; declare the "
                f"order with --stage-order '{column}=...'"
            )
        rank = {v: 10.0 * _ROMAN[g[0]] + (float(" ABC".index(g[1])) if g[1] else 0.0) for v, g in groups.items()}
        return core.map(rank).astype(float), "Roman stages I < II < III < IV (substages A < B < C)"
    if all(_RANGE_RE.match(v) or is_number(v) for v in values):
        bounds: dict[str, tuple[float, float]] = {}
        for v in values:
            m = _RANGE_RE.match(v)
            bounds[v] = (float(m.group(1)), float(m.group(2))) if m else (float(v), float(v))
        ordered = sorted(bounds, key=lambda v: bounds[v])
        for a, b in zip(ordered, ordered[1:], strict=False):
            if bounds[b][0] <= bounds[a][1]:
                raise StageError(f"comparator {column!r}: score ranges {a} and {b} overlap; correct them or declare "
                                 f"the order with --stage-order '{column}=...'")  # fmt: skip
        return core.map({v: float(i) for i, v in enumerate(ordered)}).astype(float), "score ranges, by their bounds"
    return None




def rank_stages(
    table: pd.DataFrame, columns: Sequence[str], *, source: Path | str = "cohort",
    declared: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:  # fmt: skip
    """The comparator columns as ranks (higher = later stage), and the scheme used per column.

    Every problem of every column is raised at once (`StageError`): a missing column, empty cells
    (with their patients), values no scheme fits (with the values seen and the `--stage-order`
    fix). An unknown value is never ranked silently."""
    declared = dict(declared or {})
    unknown_declared = sorted(set(declared) - set(columns))
    problems = [f"--stage-order names {c!r}, which is not among the comparators ({', '.join(columns) or 'none'})"
                for c in unknown_declared]  # fmt: skip
    who = table["patient_id"].astype(str) if "patient_id" in table.columns else pd.Series(table.index.astype(str), index=table.index)
    out, schemes = {}, {}
    for col in columns:
        if col not in table.columns:
            problems.append(f"comparator column {col!r} is not in the cohort table ({', '.join(map(str, table.columns))})")
            continue
        raw = table[col].astype(str).str.strip()
        empty = raw.isin(["", "nan", "NaN", "None"])
        if empty.any():
            problems.append(f"comparator {col!r}: empty for patient(s) {', '.join(who[empty].head(10))}; fill them or "
                            "leave those patients out")  # fmt: skip
            continue
        try:
            if col in declared:
                out[col], schemes[col] = _rank_declared(raw, declared[col], col), "declared: " + " < ".join(declared[col])
                continue
            ranked = _rank_scheme(raw.map(_core), col)
        except StageError as exc:
            problems.append(str(exc))
            continue
        if ranked is None:
            seen = sorted(set(raw))
            problems.append(
                f"comparator {col!r}: its values ({', '.join(map(repr, seen[:12]))}"
                f"{', ...' if len(seen) > 12 else ''}) fit no known staging order; declare it with "
                f"--stage-order '{col}={'<'.join(seen[:4])}{'<...' if len(seen) > 4 else ''}' (lowest first)"
            )
            continue
        out[col], schemes[col] = ranked
    if problems:
        raise StageError(f"{source}: " + "; ".join(problems))
    return pd.DataFrame(out, index=table.index).astype(float), schemes


__all__ = ["BCLC_ORDER", "StageError", "parse_stage_order", "rank_stages"]
