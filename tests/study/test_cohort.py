"""Cohort table validation and the mRECIST mapping."""

from __future__ import annotations

import numpy as np
import pytest

from srgan3d.io import write_volume
from srgan3d.study.cohort import CohortError, mrecist_category, read_cohort
from srgan3d.volume import Volume


@pytest.mark.parametrize(
    ("baseline", "follow", "new", "expected"),
    [
        (50, [20], False, "PR"),  # -60%
        (50, [35], False, "PR"),  # exactly -30%
        (50, [36], False, "SD"),  # -28%
        (50, [0], False, "CR"),
        (50, [0], True, "PD"),  # a new lesion is progression even with no viable target left
        (50, [60], False, "PD"),  # exactly +20% over the nadir (baseline)
        (50, [59], False, "SD"),
        (50, [20, 24], False, "PD"),  # +20% over the nadir 20, although still -52% from baseline
        (50, [20, 23], False, "PR"),
        (50, [0, 5], False, "PD"),  # viable tumour back after CR
    ],
)
def test_mrecist_category(baseline, follow, new, expected):
    assert mrecist_category(baseline, follow, new_lesion=new) == expected


def _write(tmp_path, name, data, affine=None):
    return write_volume(
        Volume(data.astype(np.float32), np.eye(4) if affine is None else affine, {}), tmp_path / name
    )


def _table(tmp_path, rows, header="patient_id,image,mask,response,diameter_mm"):
    p = tmp_path / "cohort.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


@pytest.fixture
def files(tmp_path):
    img = np.random.default_rng(0).random((8, 8, 4))
    mask = np.zeros((8, 8, 4))
    mask[2:5, 2:5, 1:3] = 1
    _write(tmp_path, "img.nii.gz", img)
    _write(tmp_path, "mask.nii.gz", mask)
    _write(tmp_path, "empty.nii.gz", np.zeros((8, 8, 4)))
    _write(tmp_path, "small.nii.gz", mask[:6])
    return tmp_path


def test_good_table_with_codes_and_derived_response(files):
    rows = [f"R{i},img.nii.gz,mask.nii.gz,{'CR' if i % 2 else 'pd'},{30 + i}" for i in range(20)]
    p = _table(files, rows)
    c = read_cohort(p, clinical_columns=["diameter_mm"])
    assert c.labels.sum() == 10 and len(c.table) == 20
    assert c.table["image"].iloc[0] == str(files / "img.nii.gz")
    hdr = "patient_id,image,mask,response,baseline_viable_mm,followup_viable_mm,new_lesion"
    rows = [f"A{i},img.nii.gz,mask.nii.gz,,50,20,no" for i in range(10)]
    rows += [f"B{i},img.nii.gz,mask.nii.gz,,50,20;25,0" for i in range(10)]
    assert read_cohort(_table(files, rows, hdr)).labels.tolist() == [1] * 10 + [0] * 10


def test_every_problem_is_reported_at_once_with_row_and_column(files):
    rows = [f"R{i},img.nii.gz,mask.nii.gz,{i % 2},40" for i in range(20)]
    rows[0] = "R0,missing.nii.gz,mask.nii.gz,1,40"
    rows[1] = "R1,img.nii.gz,empty.nii.gz,0,40"
    rows[2] = "R2,img.nii.gz,small.nii.gz,1,40"
    rows[3] = "R3,img.nii.gz,mask.nii.gz,NE,40"
    rows[4] = "R3,img.nii.gz,mask.nii.gz,1,abc"
    with pytest.raises(CohortError) as err:
        read_cohort(_table(files, rows), clinical_columns=["diameter_mm"])
    msg = str(err.value)
    assert len(err.value.problems) == 6, msg
    assert "row 2 (patient R0), column 'image': file missing.nii.gz not found" in msg
    assert "row 3 (patient R1), column 'mask': the mask is empty" in msg
    assert "row 4 (patient R2), column 'mask': mask grid (6, 8, 4) does not match" in msg
    assert "row 5 (patient R3), column 'response': 'NE' is not an mRECIST read" in msg
    assert "row 6 (patient R3), column 'patient_id': duplicate of row 5" in msg
    assert "row 6 (patient R3), column 'diameter_mm': 'abc' is neither a number nor yes/no" in msg


def test_too_few_patients_in_a_class(files):
    rows = [f"R{i},img.nii.gz,mask.nii.gz,{int(i < 4)},40" for i in range(20)]
    with pytest.raises(CohortError, match="4 responders and 16 non-responders; at least 10"):
        read_cohort(_table(files, rows))


def test_missing_columns_are_named(files):
    p = files / "c.csv"
    p.write_text("id,image\nA,img.nii.gz\n")
    with pytest.raises(CohortError, match="missing columns patient_id, mask, response"):
        read_cohort(p)


def test_an_empty_table_is_named(tmp_path):
    empty = tmp_path / "cohort.csv"
    empty.write_text("")
    with pytest.raises(CohortError, match="the file is empty") as err:
        read_cohort(empty)
    assert "cohort.csv" in str(err.value)


def test_a_mask_on_a_shifted_grid_is_told_the_shift_in_mm(files):
    mask = np.zeros((8, 8, 4))
    mask[2:5, 2:5, 1:3] = 1
    shifted = np.eye(4)
    shifted[:3, 3] = (1.5, 0.0, -2.0)
    _write(files, "shifted.nii.gz", mask, shifted)
    rows = [f"R{i},img.nii.gz,mask.nii.gz,{i % 2},40" for i in range(20)]
    rows[0] = "R0,img.nii.gz,shifted.nii.gz,1,40"
    with pytest.raises(CohortError) as err:
        read_cohort(_table(files, rows))
    msg = str(err.value)
    assert "row 2 (patient R0), column 'mask': the mask has the image's shape but not its grid" in msg
    assert "origin is shifted by (+1.50, +0.00, -2.00) mm (2.50 mm)" in msg


def _set_rows(sets_and_codes):
    return [f"R{i},img.nii.gz,mask.nii.gz,{code},{30 + i},{s}" for i, (s, code) in enumerate(sets_and_codes)]


def test_a_set_column_is_the_split_exactly_as_given(files):
    from srgan3d.study.cohort import make_split

    sets = ["train"] * 20 + ["Test"] * 6 + ["centre_B"] * 4 + ["2023"] * 4
    codes = ["CR", "SD"] * 17
    p = _table(files, _set_rows(zip(sets, codes, strict=True)), header="patient_id,image,mask,response,diameter_mm,set")
    c = read_cohort(p, check_images=False)
    split = make_split(c.table, test_size=None, seed=0, source=p)
    assert split.names == ("train", "test", "centre_B", "2023") and split.source == "table"
    assert split.sets["centre_B"] == ("R26", "R27", "R28", "R29") and split.external == ("centre_B", "2023")
    assert split.set_of(["R0", "R21", "R33"]).tolist() == ["train", "test", "2023"]
    with pytest.raises(ValueError, match="--test-size 0.2 was given, but the cohort table has a 'set' column"):
        make_split(c.table, test_size=0.2, seed=0, source=p)


def test_every_problem_of_a_set_column_is_named_at_once(files):
    sets = ["train"] * 12 + ["validation", ""] + ["test"] * 4 + ["centre_B"] * 3
    codes = ["CR", "SD"] * 6 + ["CR", "SD"] + ["CR", "SD", "CR", "SD"] + ["PD"] * 3
    p = _table(files, _set_rows(zip(sets, codes, strict=True)), header="patient_id,image,mask,response,diameter_mm,set")
    with pytest.raises(CohortError) as err:
        read_cohort(p, check_images=False)
    problems = err.value.problems
    assert any("row 14 (patient R12), column 'set': unknown set 'validation'" in m for m in problems)
    assert any("row 15 (patient R13), column 'set': empty" in m for m in problems)
    # the whole-table checks need every row to be readable first; fix those two and look again
    sets[12:14] = ["train", "train"]
    p = _table(files, _set_rows(zip(sets, codes, strict=True)), header="patient_id,image,mask,response,diameter_mm,set")
    with pytest.raises(CohortError) as err:
        read_cohort(p, check_images=False)
    problems = err.value.problems
    assert any("the training set has 7 responders and 7 non-responders; at least 8" in m for m in problems)
    assert any("set 'centre_B' holds 3 non-responders only" in m for m in problems)


def test_no_set_column_draws_the_seeded_stratified_split(files):
    from srgan3d.study.cohort import make_split, split_patients

    rows = [f"R{i},img.nii.gz,mask.nii.gz,{'CR' if i % 3 else 'PD'},{30 + i}" for i in range(30)]
    c = read_cohort(_table(files, rows), check_images=False)
    split = make_split(c.table, test_size=None, seed=4)
    train, test = split_patients(c.labels, test_size=0.2, seed=4)
    assert split.source == "drawn" and split.test_size == 0.2
    assert split.sets["test"] == tuple(c.table["patient_id"].iloc[test])
    assert split.sets["train"] == tuple(c.table["patient_id"].iloc[train])
