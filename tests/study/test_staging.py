"""Stages as real tables write them: ranked in their documented order, or refused by name."""

from __future__ import annotations

import pandas as pd
import pytest

from srgan3d.study.staging import StageError, parse_stage_order, rank_stages


def _t(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    return pd.DataFrame({"patient_id": [f"P{k}" for k in range(n)], **cols})


def test_documented_orders_of_the_forms_real_tables_use():
    t = _t(bclc=["Stage-C", "C", "Stage-0", "stage A", "BCLC D"],
           child_pugh=["A", "B", "C", "A", "B"],
           cp_score=["A5", "B7", "C11", "A6", "B9"],
           tnm=["Stage I", "IIIA", "Stage-IVB", "Stage-IIIC", "II"],
           clip=["Stage_ 0-2", "Stage_3", "Stage_4-6", "Stage_3", "Stage_ 0-2"],
           okuda=["Stage I", "Stage II", "Stage III", "Stage I", "Stage II"])  # fmt: skip
    cols = ["bclc", "child_pugh", "cp_score", "tnm", "clip", "okuda"]
    ranks, schemes = rank_stages(t, cols)
    assert ranks["bclc"].tolist() == [3, 3, 0, 1, 4]
    assert ranks["child_pugh"].tolist() == [1, 2, 3, 1, 2]
    assert ranks["cp_score"].tolist() == [5, 7, 11, 6, 9] and schemes["cp_score"] == "Child-Pugh points 5-15"
    assert ranks["tnm"].rank(method="dense").tolist() == [1, 3, 5, 4, 2]  # I < II < IIIA < IIIC < IVB
    assert ranks["clip"].tolist() == [0, 1, 2, 1, 0]
    assert ranks["okuda"].rank(method="dense").tolist() == [1, 2, 3, 1, 2]


def test_unknown_or_ambiguous_values_are_refused_with_the_values_and_the_fix():
    t = _t(grade=["low", "high", "mid"], tnm=["III", "IIIA", "IV"], bclc=["A", "B", ""],
           cp_score=["A7", "B7", "C12"], clip=["0-3", "2-4", "5"])  # fmt: skip
    with pytest.raises(StageError) as err:
        rank_stages(t, ["grade", "tnm", "bclc", "cp_score", "clip", "nope"], source="c.csv")
    msg = str(err.value)
    assert msg.startswith("c.csv: ")
    assert "comparator 'grade': its values ('high', 'low', 'mid') fit no known staging order; declare it with --stage-order" in msg
    assert "stage III is written both bare and with substages (III, IIIA)" in msg
    assert "comparator 'bclc': empty for patient(s) P2" in msg
    assert "'A7' has 7 points, but Child-Pugh class A is 5-6 points" in msg
    assert "score ranges 0-3 and 2-4 overlap" in msg
    assert "comparator column 'nope' is not in the cohort table" in msg


def test_a_declared_order_ranks_exactly_and_refuses_what_it_does_not_list():
    order = parse_stage_order(["grade=low<mid<high"])
    assert order == {"grade": ("low", "mid", "high")}
    ranks, schemes = rank_stages(_t(grade=["low", "high", "mid"]), ["grade"], declared=order)
    assert ranks["grade"].tolist() == [0, 2, 1] and schemes["grade"] == "declared: low < mid < high"
    with pytest.raises(StageError, match=r"'severe' are not in its --stage-order \(low < mid < high\)"):
        rank_stages(_t(grade=["low", "severe"]), ["grade"], declared=order)
    with pytest.raises(StageError, match="--stage-order names 'stage'"):
        rank_stages(_t(grade=["low"]), ["grade"], declared={**order, "stage": ("a", "b")})
    with pytest.raises(ValueError, match="write COLUMN=lowest<...<highest"):
        parse_stage_order(["grade"])
