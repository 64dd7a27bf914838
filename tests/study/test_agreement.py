"""Several readers' mRECIST: majority labels, ties, and agreement against trusted references.

References (pasted, with their sessions):

- Fleiss' kappa: the worked example of Fleiss (1971) as tabulated in the literature (10 subjects,
  14 raters, 5 categories): P̄ = 0.378, P̄e = 0.213, κ = 0.210; and statsmodels'
  `statsmodels.stats.inter_rater.fleiss_kappa` on the HCC-TACE-Seg reads.
- Cohen's kappa on the three HCC-TACE-Seg readers' mRECIST (examples/hcc_tace_seg, patients both
  readers read), R 4.2.2 Patched (2022-11-10 r83330), psych 2.2.9, vcd 1.4.11:

      library(psych); library(vcd)
      r <- read.csv("reads.csv", na.strings = "")   # response_1..3 as written by tools/hcc_tace_seg_cohort.py
      lv <- c("CR", "PR", "SD", "PD"); x <- r[complete.cases(r[, c(1, 2)]), c(1, 2)]
      a <- as.integer(factor(x[, 1], levels = lv)); b <- as.integer(factor(x[, 2], levels = lv))
      w <- outer(1:4, 1:4, function(i, j) 1 - abs(i - j) / 3)          # linear agreement weights
      cohen.kappa(cbind(a, b), w = w, levels = 1:4)$confid
      #                   lower       estimate       upper
      # unweighted kappa 0.234128404416 0.382615759545 0.531103114674
      # weighted kappa   0.300620327048 0.472731660232 0.644842993415
      cohen.kappa(cbind(as.integer(a <= 2), as.integer(b <= 2)))$confid   # responder calls
      # unweighted kappa 0.114469943568 0.313481186145 0.512492428722
      t <- table(factor(x[, 1], levels = lv), factor(x[, 2], levels = lv))
      confint(Kappa(t, weights = "Equal-Spacing"))
      #   Weighted   0.328050779714634 0.617412540748687      (ASE 0.0738181321994951)
      # readers 1 and 3 (93 patients): psych weighted 0.554292756401, vcd CI 0.414852688921051 0.693732823881906

  The weighted estimates are psych's. For the weighted CI we follow the large-sample variance of
  Fleiss, Cohen & Everitt (1969), which vcd's `Kappa` and statsmodels' `cohens_kappa` compute
  (they agree to 1e-15); psych 2.2.9 differs there because its row-side weighted marginal is
  `rowSums(w * rs)` (each row's weights times that row's own marginal) rather than the sum over
  the other rater's marginals, so its weighted CI (0.3006-0.6448) is not the one we test against.
  Unweighted kappas and their CIs agree with psych to 1e-9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srgan3d.study.agreement import (
    CATEGORIES,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_ci,
    majority_label,
    reader_agreement,
)
from srgan3d.study.cohort import CohortError, read_cohort

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hcc_tace_seg" / "clinical_data.csv"


def _reads() -> pd.DataFrame:
    raw = pd.read_csv(EXAMPLE)
    names = {1.0: "CR", 2.0: "PR", 3.0: "SD", 4.0: "PD"}
    return pd.DataFrame({f"response_{k}": raw[f"{k}_mRECIST"].map(names) for k in (1, 2, 3)})


def test_fleiss_kappa_of_the_worked_example():
    counts = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])  # fmt: skip
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_fleiss_kappa_equals_statsmodels_and_its_ci_holds_it():
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    reads = _reads().dropna()
    codes = reads.map(CATEGORIES.index).to_numpy(int)
    table, _ = aggregate_raters(codes, n_cat=4)
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(table, method="fleiss"), abs=1e-12)
    res = fleiss_kappa_ci(codes, 4, n_bootstrap=300, seed=3)
    assert res.n == len(reads) == 93 and res.ci_low < res.value < res.ci_high
    assert res == fleiss_kappa_ci(codes, 4, n_bootstrap=300, seed=3)  # seeded


@pytest.mark.parametrize(
    ("a", "b", "weighted", "vcd_ci", "unweighted", "responder"),
    [
        ("response_1", "response_2", 0.472731660232, (0.328050779714634, 0.617412540748687),
         (0.234128404416, 0.382615759545, 0.531103114674), (0.114469943568, 0.313481186145, 0.512492428722)),
        ("response_1", "response_3", 0.554292756401, (0.414852688921051, 0.693732823881906),
         (0.327184479188, 0.476609215617, 0.626033952047), (0.276193382308, 0.463506395786, 0.650819409264)),
    ],
)  # fmt: skip
def test_cohen_kappa_equals_r(a, b, weighted, vcd_ci, unweighted, responder):
    both = _reads()[[a, b]].dropna()
    ia, ib = both[a].map(CATEGORIES.index).to_numpy(), both[b].map(CATEGORIES.index).to_numpy()
    w = cohen_kappa(ia, ib, 4, weights="linear")
    assert w.value == pytest.approx(weighted, abs=1e-9)
    assert (w.ci_low, w.ci_high) == pytest.approx(vcd_ci, abs=1e-9)
    u = cohen_kappa(ia, ib, 4)
    assert (u.ci_low, u.value, u.ci_high) == pytest.approx(unweighted, abs=1e-9)
    r = cohen_kappa((ia <= 1).astype(int), (ib <= 1).astype(int), 2)
    assert (r.ci_low, r.value, r.ci_high) == pytest.approx(responder, abs=1e-9)


def test_reader_agreement_uses_the_patients_each_statistic_can():
    reads = _reads()
    reads = reads.astype(object).where(reads.notna(), None)
    ag = reader_agreement(reads, n_bootstrap=50)
    assert ag.n_patients == 105 and ag.n_read_by_all == 93
    assert ag.reads_per_reader == {"response_1": 96, "response_2": 96, "response_3": 95}
    assert [(p.reader_a, p.reader_b, p.n) for p in ag.pairs] == [
        ("response_1", "response_2", 95), ("response_1", "response_3", 93), ("response_2", "response_3", 93)]
    p12 = ag.pairs[0]
    assert p12.weighted_kappa.value == pytest.approx(0.472731660232, abs=1e-9)
    assert p12.agreement_ci[0] < p12.agreement < p12.agreement_ci[1]


def test_majority_label():
    assert majority_label(["CR", "SD", "PR"]) == 1
    assert majority_label(["PD", None, "SD"]) == 0
    assert majority_label(["PR", "SD"]) is None  # a tie
    assert majority_label([None, None]) is None  # nobody read
    assert majority_label([1, 0, 0]) == 0


def _table(tmp_path, rows: list[str], header="patient_id,response_1,response_2,response_3,age") -> Path:
    path = tmp_path / "c.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _rows(n_pos=12, n_neg=12) -> list[str]:
    rows = [f"P{k:03d},CR,PR,SD,{50 + k}" for k in range(n_pos)]
    return rows + [f"N{k:03d},SD,PD,PR,{60 + k}" for k in range(n_neg)]


def test_ties_and_unread_patients_are_refused_by_name_with_the_fix(tmp_path):
    rows = [*_rows(), "T001,PR,SD,,70", "U001,,,,71"]
    with pytest.raises(CohortError) as err:
        read_cohort(_table(tmp_path, rows), need_images=False)
    msg = str(err.value)
    assert "row 26 (patient T001): the readers split 1-1 on response (response_1 PR, response_2 SD)" in msg
    assert "row 27 (patient U001), columns response_1, response_2, response_3: no reader read this patient" in msg
    assert msg.count("--response-ties drop") == 2


def test_ties_policies_are_applied_and_stated(tmp_path):
    rows = [*_rows(), "T001,PR,SD,,70", "U001,,,,71"]
    dropped = read_cohort(_table(tmp_path, rows), need_images=False, response_ties="drop")
    assert [(e.patient_id, e.reason.split(" (")[0]) for e in dropped.excluded] == [
        ("T001", "the readers split 1-1"), ("U001", "no reader read this patient")]
    assert "T001" not in set(dropped.table["patient_id"]) and len(dropped.table) == 24
    called = read_cohort(_table(tmp_path, rows), need_images=False, response_ties="responder")
    assert called.table.set_index("patient_id").loc["T001", "label"] == 1
    assert [e.patient_id for e in called.excluded] == ["U001"] and "ties called responders" in called.ties
    assert called.reads is not None and called.reads.loc["T001", "response_3"] is None
    with pytest.raises(ValueError, match="--response-ties must be one of drop, responder, non-responder"):
        read_cohort(_table(tmp_path, rows), need_images=False, response_ties="coin")


def test_bad_reads_and_two_label_sources_are_refused(tmp_path):
    with pytest.raises(CohortError, match=r"row 2 \(patient P000\), column 'response_2': 'maybe' is not an mRECIST read"):
        read_cohort(_table(tmp_path, ["P000,CR,maybe,PR,50", *_rows()[1:]]), need_images=False)
    both = _table(tmp_path, [r + ",CR" for r in _rows()], header="patient_id,response_1,response_2,response_3,age,response")
    with pytest.raises(CohortError, match="both 'response' and the readers' columns response_1, response_2, response_3"):
        read_cohort(both, need_images=False)
