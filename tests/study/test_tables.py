"""Clinical tables as hospitals keep them: workbooks, European CSVs, Windows encodings, responses
written out and coded. Each form of the real HCC-TACE-Seg table reads to the same cohort."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from srgan3d.study.agreement import parse_read, parse_response_codes
from srgan3d.study.cohort import CohortError, read_cohort
from srgan3d.study.feature_tables import read_feature_table
from srgan3d.study.tables import read_cells

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "examples" / "hcc_tace_seg"
TIES = "drop"


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory) -> Path:
    """The real table converted by the project's tool (UTF-8 CSV), with a column of accented
    text and units that Windows encodings change."""
    out = tmp_path_factory.mktemp("tables") / "cohort.csv"
    subprocess.run([sys.executable, str(REPO / "tools" / "hcc_tace_seg_cohort.py"), "-o", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df["note"] = ["Müller, AFP in µg/L" if i % 7 == 0 else "" for i in range(len(df))]
    df.to_csv(out, index=False)
    return out


def _as_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Columns the study does not parse stay text as the file wrote it ('197.0' in a CSV, 197 from a
    workbook's number): compare them as the numbers they are."""

    def num(c: pd.Series) -> pd.Series:
        try:
            return pd.to_numeric(c)
        except (ValueError, TypeError):
            return c

    return df.apply(num)


def _same(a, b):
    pd.testing.assert_frame_equal(_as_numbers(a.table), _as_numbers(b.table))
    assert [e.patient_id for e in a.excluded] == [e.patient_id for e in b.excluded]


def test_a_workbook_sheet_among_others_reads_to_the_same_cohort(real_csv, tmp_path):
    ref = read_cohort(real_csv, need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"])
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    typed = df.apply(lambda c: pd.to_numeric(c) if c.str.fullmatch(r"-?\d+(\.\d+)?").all() else c)
    book = tmp_path / "cohort.xlsx"
    with pd.ExcelWriter(book) as w:
        pd.DataFrame({"about": ["HCC-TACE-Seg, converted"]}).to_excel(w, sheet_name="readme", index=False)
        typed.to_excel(w, sheet_name="cohort", index=False)  # numbers stored as numbers, as Excel keeps them
    got = read_cohort(f"{book}#cohort", need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"])
    _same(ref, got)
    assert got.source.describe() == "cohort.xlsx: workbook, sheet 'cohort' (of 2: also 'readme')"
    with pytest.raises(CohortError, match=r"no sheet 'data'; it holds 'readme', 'cohort'"):
        read_cohort(f"{book}#data", need_images=False)


def test_a_european_csv_and_a_windows_encoded_one_read_to_the_same_cohort(real_csv, tmp_path):
    ref = read_cohort(real_csv, need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"])
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    euro = tmp_path / "euro.csv"
    df.apply(lambda c: c.str.replace(r"^(-?\d+)\.(\d+)$", r"\1,\2", regex=True)).to_csv(euro, sep=";", index=False)
    got = read_cohort(euro, need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"])
    _same(ref, got)
    assert got.source.describe() == "euro.csv: CSV, semicolon-separated, decimal commas, UTF-8"
    win = tmp_path / "windows.csv"
    win.write_bytes(real_csv.read_text(encoding="utf-8").encode("cp1252"))
    got = read_cohort(win, need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"])
    _same(ref, got)
    assert "Windows-1252 (not UTF-8)" in got.source.describe() and "µg/L" in got.table["note"].tolist()[0]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + real_csv.read_bytes())
    _same(ref, read_cohort(bom, need_images=False, response_ties=TIES, clinical_columns=["afp_ng_ml", "age_years"]))


def test_bytes_of_no_known_encoding_are_refused_with_their_position_and_the_fix(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"patient_id,response\nP1,CR\nP\x812,PD\n")
    with pytest.raises(CohortError, match=r"byte 0x81 at position 27 is neither UTF-8 nor Windows-1252; save the "
                                          r"table as UTF-8 CSV"):  # fmt: skip
        read_cohort(bad, need_images=False)


def test_the_source_workbooks_reader_codes_read_through_response_codes(real_csv, tmp_path):
    """The collection's own workbook keeps the three readers' mRECIST as numbers 1-4; given their
    meaning (--response-codes, the glossary's), they give the labels of the converted table."""
    src = pd.read_excel(SOURCE / "HCC-TACE-Seg_clinical_data-V2.xlsx", sheet_name="data table")
    coded = pd.DataFrame({"patient_id": src["TCIA_ID"], **{f"response_{k}": src[f"{k}_mRECIST"] for k in (1, 2, 3)}})
    book = tmp_path / "coded.xlsx"
    coded.to_excel(book, index=False)
    ref = read_cohort(real_csv, need_images=False, response_ties=TIES)
    got = read_cohort(book, need_images=False, response_ties=TIES, response_codes="1=CR,2=PR,3=SD,4=PD")
    assert got.table["label"].tolist() == ref.table["label"].tolist()
    assert got.reads.equals(ref.reads)
    assert "numeric codes read as 1 = CR, 2 = PR, 3 = SD, 4 = PD" in got.label_rule
    with pytest.raises(CohortError, match=r"'2' is not an mRECIST read.*need --response-codes, e.g. 1=CR,2=PR"):
        read_cohort(book, need_images=False, response_ties=TIES)


@pytest.mark.parametrize(
    ("written", "read"),
    [("CR", "CR"), ("cr", "CR"), (" Complete response ", "CR"), ("complete response (CR)", "CR"), ("(PR)", "PR"),
     ("Partial-Response", "PR"), ("stable disease", "SD"), ("Progressive disease (PD)", "PD"), ("1", 1), ("0.0", 0),
     ("", None)],
)  # fmt: skip
def test_responses_as_people_write_them(written, read):
    assert parse_read(written) == read


def test_responses_that_are_not_mrecist_are_refused_by_value():
    for bad in ("complete response (PD)", "responder", "3"):
        with pytest.raises(ValueError, match="is not an mRECIST read"):
            parse_read(bad)
    assert parse_read("3", parse_response_codes("1=CR,2=PR,3=SD,4=PD")) == "SD"
    with pytest.raises(ValueError, match="write CODE=CR"):
        parse_response_codes("1=good")


def test_a_european_csv_header_is_not_blamed_for_missing_columns(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("patient_id;image;mask;response\nP1;a.nii.gz;m.nii.gz;CR\n")
    df, source = read_cells(f)
    assert list(df.columns) == ["patient_id", "image", "mask", "response"] and source.delimiter == ";"
    features = tmp_path / "f.xlsx"
    pd.DataFrame({"patient_id": ["P1"], "original_firstorder_Mean": [1.5]}).to_excel(features, index=False)
    ft = read_feature_table(features, pd.DataFrame({"patient_id": ["P1"]}))
    assert ft.features.loc["P1", "original_firstorder_Mean"] == 1.5 and ft.source.kind == "workbook"
