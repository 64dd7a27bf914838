"""The clinical half of the study on a real public TACE cohort (HCC-TACE-Seg, examples/), as
`make real-example` runs it: a table with three readers' mRECIST, TTP and OS in weeks, staging
as written, and no images."""

from __future__ import annotations

import html as html_mod
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import chromium_layout
from typer.testing import CliRunner

from srgan3d.cli import app
from srgan3d.study.survival import survival_endpoints

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "hcc_tace_seg_cohort.py"


@pytest.fixture(scope="module")
def real_study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real")
    run = subprocess.run([sys.executable, str(TOOL), "-o", str(out / "cohort.csv"), "--study", str(out / "study")],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (out / "terminal.txt").write_text(run.stdout + run.stderr)
    return out


def test_the_table_is_converted_as_the_glossary_defines_it(real_study):
    t = pd.read_csv(real_study / "cohort.csv", keep_default_na=False)
    raw = pd.read_csv(REPO / "examples" / "hcc_tace_seg" / "clinical_data.csv")
    assert len(t) == 105 and list(t["patient_id"]) == list(raw["TCIA_ID"])
    assert t.loc[0, ["response_1", "response_2", "response_3"]].tolist() == ["CR", "CR", "CR"]  # HCC_001: 1, 1, 1
    assert t.loc[2, ["response_1", "response_2", "response_3"]].tolist() == ["SD", "PD", "SD"]  # HCC_003: 3, 4, 3
    assert (t["ttp_time"] - raw["TTP"]).abs().max() < 1e-4 and (t["os_event"] == raw["Death_1_StillAliveorLostToFU_0"]).all()
    assert set(t["bclc_stage"]) == {"Stage-A", "Stage-B", "Stage-C", "Stage-D"}
    assert (t["tumour_size_cm"] == "").sum() == 52  # gaps stay gaps
    assert json.loads((real_study / "cohort.json").read_text())["simulated"] is False


def test_the_clinical_study_on_the_real_cohort(real_study):
    r = json.loads((real_study / "study" / "results.json").read_text())
    assert r["cohort"]["n_in_table"] == 105 and r["cohort"]["n_patients"] == 99
    assert [e["patient_id"] for e in r["excluded"]] == ["HCC_024", "HCC_045", "HCC_050", "HCC_073", "HCC_085", "HCC_090"]
    assert all(e["reason"] == "no reader read this patient" for e in r["excluded"])
    ag = r["agreement"]
    assert ag["n_read_by_all"] == 93 and ag["fleiss_categories"]["ci_low"] < ag["fleiss_categories"]["value"] < ag["fleiss_categories"]["ci_high"]
    assert [m["name"] for m in r["roster"]["models"]] == ["clinical"] and r["roster"]["best"] == "clinical"
    assert set(r["absent"]) == {"radiomics", "sr"}
    # AFP (1.4 to 566,530 ng/mL) is modelled on log10 by the skewness rule, its ratios per SD
    afp = next(t for t in r["transforms"] if t["variable"] == "afp_ng_ml")
    assert afp["transform"] == "log10" and afp["modelled_as"] == "log10(afp_ng_ml)" and afp["skewness"] > 2
    uni = {o["variable"]: o for o in r["fitted"]["clinical_univariable"]}
    assert uni["log10(afp_ng_ml)"]["unit"] == "SD" and abs(uni["log10(afp_ng_ml)"]["odds_ratio"] - 1) > 0.01
    assert uni["portal_vein_thrombosis"]["unit"] == "unit"
    # every set's hazard ratios are per the training set's SD (one unit across the sets)
    sizes = {s: next(t["unit_size"] for t in v["cox"]["terms"] if t["covariate"] == "log10(afp_ng_ml)")
             for e in r["survival"]["endpoints"] for s, v in e["sets"].items() if v.get("cox")}  # fmt: skip
    assert len(sizes) == 2 and len(set(sizes.values())) == 1
    # the cohort summary keeps AFP in the units it was measured in
    assert "afp_ng_ml" in {row["variable"] for row in r["cohort_summary"]}
    html = (real_study / "study" / "report.html").read_text()
    assert "log10(afp_ng_ml)" in html and "skewness 8.36 &gt; 2" in html
    assert "1.000 [1.000-1.000]" not in html and not re.search(r"[^0-9.]0\.0000[^0-9]", html)
    eps = {e["endpoint"]: e for e in r["survival"]["endpoints"]}
    assert list(eps) == ["time to progression", "overall survival"]
    for e in eps.values():
        assert e["time_unit"] == "weeks" and list(e["sets"]) == ["train", "test"] and e["skipped"] is None
        assert all(s["skipped"] is None and s["c_index"] is not None for s in e["sets"].values())
    orders = {c["comparator"]: c["order"] for c in r["comparators"]}
    assert orders["bclc_stage"] == "BCLC 0 < A < B < C < D" and orders["tnm_stage"].startswith("Roman stages")
    terminal = (real_study / "terminal.txt").read_text()
    assert "left out: patient HCC_024: no reader read this patient" in terminal and "Fleiss' κ" in terminal


@pytest.mark.slow
def test_the_real_report_reads_right_and_fits_1280_px(real_study, tmp_path):
    html = (real_study / "study" / "report.html").read_text()
    # (the methods' options dump, in <code>, is machine-readable by design and left out)
    text = html_mod.unescape(
        re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]*>|<style>.*?</style>|<code>.*?</code>", "", html, flags=re.S)))
    for code in ("afp_log10_ng_ml", "bclc_stage", "ttp_time", "os_event", "predicted_responder", "clinical_post_sr",
                 "radiomics_pre_sr", "response_1 –", str(real_study.resolve())):  # fmt: skip
        assert code not in text, code
    assert not re.search(r"\bnan\b", text)
    assert "weeks" in text and "Time to progression" in text and "Fleiss' kappa, mRECIST categories" in text
    assert "Left out of the study: 6 patients" in text and "HCC_090" in text
    assert "No radiomics models: the cohort table has no images" in text and "SIMULATED" not in text
    layout = chromium_layout(real_study / "study" / "report.html", tmp_path)
    assert layout["page"] <= layout["window"] and layout["wide"] == [], layout


def test_any_name_time_event_pair_is_an_endpoint():
    eps = survival_endpoints(["patient_id", "ttp_time", "ttp_event", "os_time", "os_event", "liver_failure_time",
                              "liver_failure_event", "pfs_time"])  # fmt: skip
    assert eps == [("time to progression", "ttp_time", "ttp_event"), ("overall survival", "os_time", "os_event"),
                   ("liver failure", "liver_failure_time", "liver_failure_event"),
                   ("progression-free survival", "pfs_time", "pfs_event")]  # fmt: skip


def test_absent_images_sections_say_why_in_one_line(real_study, tmp_path):
    """Asked for rings and deep models without images, the study runs its clinical half and each
    absent section says why; an unknown staging order is refused with the fix."""
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(out), "--clinical",
                                   "afp_log10_ng_ml,portal_vein_thrombosis", "--response-ties", "drop", "--bootstrap", "0",
                                   "--peritumoral", "5", "--dl", "resnet10", "--time-unit", "weeks"])  # fmt: skip
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert html.count("No peritumoral rings: they need images and masks.") == 1
    assert html.count("No deep models: they need images and masks.") == 1
    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(tmp_path / "x"), "--clinical",
                                   "afp_log10_ng_ml", "--response-ties", "drop", "--comparators", "hepatitis"])  # fmt: skip
    assert res.exit_code == 2 and "comparator 'hepatitis'" in res.output and "--stage-order 'hepatitis=" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(tmp_path / "y"), "--clinical",
                                   "afp_log10_ng_ml"])  # fmt: skip
    assert res.exit_code == 2 and "patient HCC_024" in res.output and "--response-ties drop" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(tmp_path / "z"), "--clinical",
                                   "afp_log10_ng_ml", "--response-ties", "drop", "--time-unit", "fortnights"])  # fmt: skip
    assert res.exit_code == 2 and "--time-unit must be one of days, weeks, months, years" in res.output


def test_post_sr_features_need_the_pre_sr_table(real_study, tmp_path):
    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(tmp_path / "f"),
                                   "--features-sr", str(real_study / "cohort.csv")])  # fmt: skip
    assert res.exit_code == 2 and "--features-sr was given without --features" in res.output


def _batch_features(cohort: pd.DataFrame, ids: list[str], root: Path) -> pd.DataFrame:
    """A pyradiomics batch CSV as such files come: one row per image/mask pair (here every
    patient of the real table, unread ones included), diagnostics columns, then the features."""
    rng = np.random.default_rng(7)
    rows = pd.DataFrame({"Image": [str(root / f"scans/{p}_arterial.nii.gz") for p in ids],
                         "Mask": [str(root / f"scans/{p}_tumour.nii.gz") for p in ids],
                         "diagnostics_Versions_PyRadiomics": "v3.1.0"})  # fmt: skip
    for k, name in enumerate(["original_firstorder_Mean", "original_firstorder_Entropy", "original_shape_Sphericity",
                              "original_glcm_Contrast", "original_glszm_ZoneEntropy", "original_gldm_DependenceVariance"]):  # fmt: skip
        rows[name] = rng.normal(10.0 * (k + 1), 2.0, len(ids))
    return rows


def test_a_feature_table_of_every_patient_sets_aside_the_unread_and_names_the_unusable(real_study, tmp_path):
    """The real table with a batch feature table (Image/Mask paths) covering all 105 patients: the
    6 patients no reader read are set aside with that reason, named once; a patient whose
    features are missing and one with a non-finite feature are left out by name; the study runs."""
    cohort = pd.read_csv(real_study / "cohort.csv", dtype=str, keep_default_na=False)
    ids = cohort["patient_id"].tolist()
    cohort["image"] = [f"scans/{p}_arterial.nii.gz" for p in ids]  # names only: the features come from the table
    cohort["mask"] = [f"scans/{p}_tumour.nii.gz" for p in ids]
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    batch = _batch_features(cohort, ids, tmp_path)
    batch = batch[batch["Image"].str.contains("HCC_010_") == False]  # noqa: E712 - a scan whose extraction was never run
    batch.loc[batch["Image"].str.contains("HCC_020_"), "original_glcm_Contrast"] = np.nan
    batch.to_csv(tmp_path / "features.csv", index=False)
    out = tmp_path / "study"
    sys.path.insert(0, str(REPO / "tools"))
    from hcc_tace_seg_cohort import STUDY_ARGS

    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "cohort.csv"), "-o", str(out), *STUDY_ARGS,
                                   "--features", str(tmp_path / "features.csv"), "--bootstrap", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    excluded = {e["patient_id"]: e["reason"] for e in r["excluded"]}
    unread = ["HCC_024", "HCC_045", "HCC_050", "HCC_073", "HCC_085", "HCC_090"]
    assert all(excluded[p] == "no reader read this patient" for p in unread)
    assert excluded["HCC_010"] == "no features in features.csv"
    assert excluded["HCC_020"].startswith("NaN or infinite feature(s) in features.csv: original_glcm_Contrast")
    assert r["cohort"]["n_patients"] == 97
    assert res.output.count("were set aside") == 1 and all(p in res.output for p in unread)
    assert "set aside: HCC_024" in json.dumps(r)  # the methods say where the features came from, and what was set aside
    # A row of a patient the cohort table does not list at all is an error, with the id and the fix.
    extra = pd.concat([batch, _batch_features(cohort, ["HCC_999"], tmp_path)], ignore_index=True)
    extra.to_csv(tmp_path / "extra.csv", index=False)
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "e"), *STUDY_ARGS,
                                   "--features", str(tmp_path / "extra.csv")])  # fmt: skip
    assert res.exit_code == 2
    assert "Image" in res.output and "HCC_999" in res.output and "add a patient_id column, or correct the paths" in res.output


def test_a_feature_table_keyed_by_patient_id_names_a_patient_absent_from_the_table(real_study, tmp_path):
    table = pd.DataFrame({"patient_id": ["HCC_001", "HCC_024", "HCC_999"], "original_firstorder_Mean": [1.0, 2.0, 3.0]})
    table.to_csv(tmp_path / "f.csv", index=False)
    sys.path.insert(0, str(REPO / "tools"))
    from hcc_tace_seg_cohort import STUDY_ARGS

    res = CliRunner().invoke(app, ["evaluate", str(real_study / "cohort.csv"), "-o", str(tmp_path / "s"), *STUDY_ARGS,
                                   "--features", str(tmp_path / "f.csv")])  # fmt: skip
    assert res.exit_code == 2
    assert "row 4: patient HCC_999 is not in the cohort table (which lists 105 patients)" in res.output
    assert "add the patient to the cohort table, or delete the row" in res.output
    assert "patient HCC_024 is not" not in res.output and "problem in" in res.output  # unread: set aside, not an error
