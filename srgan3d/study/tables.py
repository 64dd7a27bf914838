"""Clinical and feature tables as hospitals keep them: CSV in any of the usual dialects, Excel and
OpenDocument workbooks. Every reader of a table (`srgan3d.study.cohort`,
`srgan3d.study.feature_tables`) takes its cells from `read_cells`, as strings, empty cells empty.

- **Workbooks** (`.xlsx`, `.xlsm`, `.xls`, `.ods`, through pandas with openpyxl, xlrd or odfpy):
  the first sheet, or the one named after `#` (`clinical.xlsx#data table`); with several sheets
  and none named, the note says which was read. Numbers and dates come as the workbook typed
  them: a whole number as `2`, not `2.0`; a date as `2021-03-04`.
- **CSV**: the delimiter (`,`, `;` or tab) is the one that splits the header into the most
  columns; a `;`- or tab-separated table whose numbers are written with decimal commas (`3,5`)
  and never with points gets points. UTF-8 (with or without BOM) first; a file that is not UTF-8
  is read as Windows-1252 (Excel's Western European default, a superset of Latin-1's printable
  characters) and the note says so; a byte that is neither is refused with its position and the fix.

`TableSource.describe()` is the one line the report's methods give each table.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d+\.\d+$")


class TableReadError(ValueError):
    """A table that cannot be read as a table at all; the message names the file and the fix."""


@dataclass(frozen=True)
class TableSource:
    """How a table was read: its file, and the format found (for the report's methods)."""

    path: Path
    kind: str  # "csv" or "workbook"
    delimiter: str = ","
    decimal_comma: bool = False
    encoding: str = "utf-8"
    sheet: str | None = None
    sheets: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "workbook":
            others = [s for s in self.sheets if s != self.sheet]
            return (f"{self.path.name}: workbook, sheet {self.sheet!r}"
                    + (f" (of {len(self.sheets)}: also {', '.join(repr(s) for s in others)})" if others else ""))  # fmt: skip
        parts = [f"{DELIMITERS[self.delimiter]}-separated"]
        if self.decimal_comma:
            parts.append("decimal commas")
        parts.append("UTF-8" if self.encoding.startswith("utf-8") else "Windows-1252 (not UTF-8)")
        return f"{self.path.name}: CSV, {', '.join(parts)}"


def is_number(text: str) -> bool:
    """Does a cell read as a number (as `float` reads it: '3', '-0.5', '1e3', 'nan', 'inf')?"""
    try:
        float(text)
    except ValueError:
        return False
    return True


def split_sheet(path: str | Path) -> tuple[Path, str | None]:
    """``book.xlsx#Sheet name`` -> (the workbook, the sheet); any other path -> (path, None)."""
    text = str(path)
    if "#" in text and not Path(text).exists():
        base, _, sheet = text.rpartition("#")
        if base.lower().endswith(WORKBOOK_SUFFIXES) and sheet:
            return Path(base), sheet
    return Path(text), None


def read_cells(path: str | Path, *, what: str = "table") -> tuple[pd.DataFrame, TableSource]:
    """The table's cells as strings (empty cells empty, header names stripped) and how it was read.

    Raises:
        FileNotFoundError: no such file.
        TableReadError: an empty file, an unknown sheet, bytes of no known encoding, a file
            pandas cannot parse; the message names the file and the fix.
    """
    file, sheet = split_sheet(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} {file} does not exist")
    if file.name.lower().endswith(WORKBOOK_SUFFIXES):
        df, source = _read_workbook(file, sheet)
    else:
        df, source = _read_csv(file)
    df.columns = [str(c).strip() for c in df.columns]
    return df, source


def _read_workbook(file: Path, sheet: str | None) -> tuple[pd.DataFrame, TableSource]:
    try:
        book = pd.ExcelFile(file)
    except ImportError as exc:
        raise TableReadError(f"{file}: reading this workbook needs {exc.name or 'a spreadsheet reader'}; install it, or "
                             "save the sheet as a UTF-8 CSV") from None  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any unreadable workbook is one message
        raise TableReadError(f"{file}: not a readable workbook ({exc}); save the sheet as a UTF-8 CSV") from None
    names = tuple(str(s) for s in book.sheet_names)
    if sheet is not None and sheet not in names:
        raise TableReadError(f"{file}: no sheet {sheet!r}; it holds {', '.join(repr(s) for s in names)}: name one "
                             f"after '#', e.g. {file.name}#{names[0]}")  # fmt: skip
    chosen = sheet if sheet is not None else names[0]
    raw = book.parse(chosen, dtype=object, header=0)
    df = raw.map(_cell) if hasattr(raw, "map") else raw.applymap(_cell)
    df.columns = [_cell(c) for c in raw.columns]
    return df, TableSource(file, "workbook", sheet=chosen, sheets=names)


def _cell(v: object) -> str:
    """A workbook cell as the text it shows: whole numbers without '.0', dates as ISO dates."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, datetime | pd.Timestamp):
        ts = pd.Timestamp(v)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    if isinstance(v, int | np.integer):
        return str(int(v))
    return str(v)


def _decode(file: Path) -> tuple[str, str]:
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise TableReadError(f"{file}: byte 0x{data[exc.start]:02x} at position {exc.start} is neither UTF-8 nor "
                             "Windows-1252; save the table as UTF-8 CSV (Excel: 'CSV UTF-8')") from None  # fmt: skip


def _read_csv(file: Path) -> tuple[pd.DataFrame, TableSource]:
    text, encoding = _decode(file)
    if not text.strip():
        raise TableReadError(f"{file}: the file is empty; give a CSV with a header row")
    first = text.splitlines()[0] + "\n"
    counts = {d: len(next(csv.reader(io.StringIO(first), delimiter=d), [])) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=delimiter)
    except pd.errors.EmptyDataError:
        raise TableReadError(f"{file}: the file is empty; give a CSV with a header row") from None
    except pd.errors.ParserError as exc:
        raise TableReadError(f"{file}: not a readable {DELIMITERS[delimiter]}-separated table: {exc}") from None
    decimal_comma = False
    if delimiter != ",":
        cells = pd.Series(df.to_numpy().ravel()).astype(str).str.strip()
        if cells.str.match(_DECIMAL_COMMA).any() and not cells.str.match(_DECIMAL_POINT).any():
            decimal_comma = True
            df = df.apply(lambda col: col.where(~col.str.strip().str.match(_DECIMAL_COMMA),
                                                col.str.replace(",", ".", regex=False)))  # fmt: skip
    return df, TableSource(file, "csv", delimiter=delimiter, decimal_comma=decimal_comma, encoding=encoding)
