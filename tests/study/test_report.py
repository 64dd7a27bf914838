"""The report: its formatters, its HTML primitives, and a whole report rendered from a study's
result tree alone (self-contained, numbered, every number the result tree's)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from srgan3d.study.config import ModelingConfig
from srgan3d.study.evaluation import evaluate_cohort
from srgan3d.study.report import read_results, render_html, terminal_summary
from srgan3d.study.report_format import (
    Notes,
    fmt_auc,
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_p_eq,
    fmt_ranges,
    fmt_signed,
    table_html,
    variable_label,
)
from srgan3d.study.results import StudyResult
from srgan3d.study.stats import RocResult
from srgan3d.study.synthetic import CohortSpec, draw_cohort_table


@pytest.fixture(scope="module")
def clinical_study(tmp_path_factory) -> Path:
    """A clinical-half study (no images) of 60 drawn patients: clinical model, staging, survival
    and three readers; seconds to run."""
    root = tmp_path_factory.mktemp("report")
    rows = draw_cohort_table(CohortSpec(n_patients=60, n_responders=30), seed=2)
    cols = [k for k in rows[0] if not k.startswith("_")]
    with open(root / "cohort.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows({k: r[k] for k in cols} for r in rows)
    evaluate_cohort(root / "cohort.csv", root / "study",
                    modeling=ModelingConfig(n_bootstrap=20, classifiers=(), comparators=("bclc",)))  # fmt: skip
    return root / "study"


def test_numbers_are_written_as_the_report_writes_them():
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0321) == "0.032" and fmt_p(None) == "–" and fmt_p(float("nan")) == "–"
    assert fmt_p_eq(0.0004) == "p < 0.001" and fmt_p_eq(0.5) == "p = 0.500"
    assert fmt_signed(0.0844) == "+0.084" and fmt_signed(-0.0061) == "-0.006" and fmt_signed(-0.0004) == "0.000"
    assert fmt_num(-0.0001, 2) == "0.00" and fmt_num(float("inf")) == "∞" and fmt_num(float("nan")) == "–"
    assert fmt_num("a<b") == "a&lt;b"  # not a number: shown, escaped
    assert fmt_ci(0.8123, (0.7, 0.89)) == "0.812 [0.700-0.890]" and fmt_ci(float("nan"), (0, 1)) == "–"
    assert fmt_ranges([[0.34, 0.59], [0.71, 0.71]]) == "0.34–0.59, 0.71" and fmt_ranges([]) == "none"
    roc = RocResult(auc=0.81249, variance=0.01, ci_low=0.7, ci_high=0.9251, level=0.95, n_positive=5, n_negative=5)
    assert fmt_auc(roc) == "0.812 [0.700-0.925]"


def test_columns_are_named_in_words_with_their_units():
    assert variable_label("afp_log10_ng_ml") == "AFP, log10 (ng/mL)"
    assert variable_label("tumour_size_cm") == "Tumour size (cm)"
    assert variable_label("bclc_stage") == "BCLC stage"
    assert variable_label("log10(afp_ng_ml)") == "log10 AFP (ng/mL)"  # a variable modelled on log10
    assert variable_label("child_pugh_class") == "Child-Pugh class"
    assert variable_label("diameter_mm") == "Tumour diameter (mm)"
    assert variable_label("x") == "X"


def test_tables_escape_what_the_user_wrote_and_notes_number_once():
    html = table_html(pd.DataFrame({"Variable": ["<script>x</script>"], "AUC": [0.81234]}), left=("Variable",))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<td class="l">&lt;script' in html and '<td class="">0.812</td>' in html
    notes = Notes()
    assert notes.mark("one") == "[1]" and notes.mark("two") == "[2]" and notes.mark("one") == "[1]"
    assert notes.html().count("<p") == 2


def test_the_report_is_self_contained_and_numbered(clinical_study):
    r = read_results(clinical_study)
    html = render_html(r)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched when it is opened
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    numbers = [int(n) for n in re.findall(r"<h2>(\d+)\. ", html)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8
    assert "{" not in re.sub(r"<style>.*?</style>|<code>.*?</code>", "", html, flags=re.S)  # no template left over


def test_every_auc_in_the_key_results_is_the_result_trees(clinical_study):
    r = read_results(clinical_study)
    html = render_html(r)
    for s in r.split.evaluation:
        assert f"{s} AUC {fmt_auc(r.metrics[s].roc['clinical'])}" in html
    assert r.absent["radiomics"] in html  # the clinical half says why the radiomics are absent
    # the readers' table has one row per reader and one for their mean
    readers = html.split("Readers</h2>", 1)[1].split("</table>", 1)[0]
    assert readers.count("<tr>") == 1 + 3 + 1


def test_the_terminal_summary_quotes_the_result_tree(clinical_study):
    r = read_results(clinical_study)
    text = terminal_summary(r)
    train_auc = r.metrics["train"].roc["clinical"].auc
    assert re.search(rf"Clinical-radiological \(CR\)\s+{train_auc:.3f}", text)
    assert fmt_auc(r.metrics["test"].roc["clinical"]) in text
    assert r.absent["radiomics"] in text
    opt = r.fitted.optimism_of("clinical")
    assert opt is not None and f"{opt.corrected_auc:.3f}" in text


def test_results_json_round_trips_and_keeps_its_layout(clinical_study):
    raw = json.loads((clinical_study / "results.json").read_text())
    r = StudyResult.from_dict(raw)
    assert json.dumps(r.to_dict(), sort_keys=True) == json.dumps(raw, sort_keys=True)
    assert raw["config"]["radiomics"] == {} and r.config.radiomics is None  # nothing was extracted
    assert r.config.modeling.comparators == ("bclc",) and r.cohort.n_patients == 60


def test_an_older_results_json_is_refused_with_the_fix(clinical_study, tmp_path):
    raw = json.loads((clinical_study / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps({**raw, "schema_version": 2}))
    with pytest.raises(ValueError, match="schema version 2.*rerun `srgan3d evaluate`"):
        read_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="run `srgan3d evaluate"):
        read_results(tmp_path / "empty")
