"""Radiomics geometry and `srgan3d evaluate` / `srgan3d report` end to end on a tiny synthetic
cohort."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import chromium_layout, tree_digest
from typer.testing import CliRunner

from srgan3d.cli import app

runner = CliRunner()


def _results(evaluated) -> tuple[Path, dict, str]:
    out, _, _ = evaluated
    return out, json.loads((out / "results.json").read_text()), (out / "report.html").read_text()


@pytest.mark.slow
def test_evaluate_writes_its_outputs_and_a_typed_tree(evaluated, tmp_path):
    out, results, _ = _results(evaluated)
    for name in ("report.html", "results.json", "predictions.csv", "coefficients.csv", "features_pre.csv",
                 "features_post.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert results["schema_version"] == 4
    # a results.json of the previous layout is refused with the fix
    from srgan3d.study.report import read_results

    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({**results, "schema_version": 2}))
    with pytest.raises(ValueError, match=r"schema version 2.*rerun `srgan3d evaluate`"):
        read_results(old)
    # the typed result tree rebuilds from results.json alone and writes it back unchanged
    from srgan3d.study.results import StudyResult

    assert json.dumps(StudyResult.from_dict(results).to_dict()) == json.dumps(results)
    assert results["cohort"]["n_patients"] == 34 and results["cohort"]["simulated"] is True
    assert results["radiomics"]["spacing"] == "native" and results["radiomics"]["source"] == "extracted"
    assert results["radiomics"]["sr_spacing_mm"] == pytest.approx([2.0, 2.0, 3.5])
    assert results["provenance"]["seed"] == 0 and "torch" in results["provenance"]["versions"]
    assert results["excluded"] == [] and results["absent"] == {} and results["agreement"] is None


@pytest.mark.slow
def test_the_split_is_the_table_set_column_and_external_aucs_are_the_models_own(tiny_cohort, evaluated):
    out, results, html = _results(evaluated)
    table = pd.read_csv(tiny_cohort)
    assert results["split"]["source"] == "table" and list(results["split"]["sets"]) == ["train", "test", "centre_B"]
    for name, ids in results["split"]["sets"].items():
        assert sorted(ids) == sorted(table.loc[table["set"] == name, "patient_id"]), name
    pred = pd.read_csv(out / "predictions.csv")
    assert dict(zip(pred["patient_id"], pred["set"], strict=True)) == dict(zip(table["patient_id"], table["set"], strict=True))
    # centre_B's AUCs and CIs are those of the models' own probabilities on its rows (stats' DeLong)
    from srgan3d.study import stats

    ext = pred[pred["set"] == "centre_B"]
    roster = [m["name"] for m in results["roster"]["models"]]
    assert roster[:4] == ["radiomics_pre_sr", "radiomics_post_sr", "clinical", "clinical_post_sr"]
    for m in roster:
        ref = stats.roc_auc_ci(ext["label"], ext[m]).to_dict()
        assert results["metrics"]["centre_B"]["roc"][m] == pytest.approx(ref), m
    assert len(results["metrics"]["centre_B"]["delong"]) == len(roster) * (len(roster) - 1) // 2
    assert html.count("data:image/png;base64,") >= 4 and "http://" not in html and "https://" not in html
    assert "centre_B AUC [95% CI]" in html and "external test set: <b>centre_B</b>" in html
    assert "<td class=\"l\">centre_B</td>" in html and "left to right: train, test, centre_B" in html


@pytest.mark.slow
def test_the_training_thresholds_apply_unchanged_to_every_set(evaluated):
    _, results, html = _results(evaluated)
    thresholds = results["roster"]["thresholds"]
    for name in ("train", "test", "centre_B"):
        for m, point in results["metrics"][name]["operating_points"].items():
            assert point["threshold"] == thresholds[m]
    for m in (m["name"] for m in results["roster"]["models"]):
        assert f">{thresholds[m]:.3f}</td>" in html
    assert "out-of-fold predictions on the training set" in html


@pytest.mark.slow
def test_the_report_has_every_section_in_order(evaluated):
    _, results, html = _results(evaluated)
    assert "Candidates considered: <b>Tumour diameter (mm), Arterial enhancement (0 = no, 1 = yes)</b>" in html
    assert "not</b> candidates" in html  # the cohort's other clinical columns are named
    numbers = [int(n) for n in re.findall(r"<h2>(\d+)\. ", html)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 14
    # the panel, the staging comparators, the net-benefit table and the nomogram are in the report, per set
    panel = results["panel"]
    assert set(panel["models"]) <= {"lr", "svm"} and panel["best"]["rule"].startswith("highest training-set")
    assert set(panel["models"]["lr"]["post"]["roc"]) == {"test", "centre_B"}
    assert "Classifier panel</h2>" in html and "Best classifier" in html and "Staging systems</h2>" in html
    assert [c["comparator"] for c in results["comparators"]] == ["bclc", "child_pugh"]
    assert [c["order"] for c in results["comparators"]] == ["BCLC 0 < A < B < C < D", "Child-Pugh A < B < C"]
    assert set(results["comparators"][0]["roc"]) == {"test", "centre_B"}
    assert "Net benefit at three threshold probabilities" in html and "Nomogram of the combined" in html


@pytest.mark.slow
def test_peritumoral_regions(evaluated):
    out, results, html = _results(evaluated)
    regions = {r["region"]: r for r in results["regions"]}
    assert set(regions) == {"tumour", "ring 6 mm", "tumour + rings"} and "Peritumoral regions</h2>" in html
    assert regions["tumour + rings"]["n_features"] == 2 * regions["tumour"]["n_features"]
    assert set(regions["tumour"]["delong_post_vs_pre"]) == {"test", "centre_B"}
    info = pd.read_csv(out / "voi_info.csv")
    assert (info["ring6mm_ml_lr"] > 0).all() and info["ring6mm_clipped_to_liver"].all()
    assert ((info["ring6mm_ml_sr"] - info["ring6mm_ml_lr"]).abs() / info["ring6mm_ml_lr"] < 0.25).all()
    assert not any(c.startswith("ring") for c in results["fitted"]["radscore"]["radiomics_post_sr"]["features"])


@pytest.mark.slow
def test_deep_models_and_dlrcr(evaluated):
    """The dual-branch deep model before and after SR. On this tiny cohort (4 epochs of a
    quarter-width ResNet-10, seeded and deterministic on the CPU) the post-SR model does not learn:
    the verdict says why, and DLRCR is not built on it."""
    from srgan3d.study.deep import learning_verdict

    _, results, html = _results(evaluated)
    deep = results["deep"]
    assert deep["skipped"] is None, deep["skipped"]
    assert set(deep["models"]) == {"pre", "post"} and deep["config"]["dual"] == "ring"
    assert "Deep-learning models</h2>" in html
    post = deep["models"]["post"]
    assert post["not_learned"] == learning_verdict(post["train_auc"], post["best_epoch"])
    roster = [m["name"] for m in results["roster"]["models"]]
    assert post["not_learned"] is not None, "the tiny deep model learned: pin the DLRCR branch instead"
    assert deep["dlrcr"] is None and "dlrcr" not in roster and "did not learn" in deep["dlrcr_skipped"]
    assert "DLRCR not built" in html and "did not learn" in html
    assert "Best classifier: " in html


@pytest.mark.slow
def test_survival_and_readers_per_set(evaluated):
    _, results, html = _results(evaluated)
    (os_,) = results["survival"]["endpoints"]
    assert os_["endpoint"] == "overall survival" and list(os_["sets"]) == ["train", "test", "centre_B"]
    tr = os_["sets"]["train"]
    assert [c["covariate"] for c in tr["cox"]["terms"]] == ["predicted_responder", "diameter_mm", "arterial_enhancement"]
    assert tr["cox"]["n"] == 19 and tr["cox"]["likelihood_ratio"]["df"] == 3
    assert {k["group"] for k in tr["kaplan_meier"]} <= {"predicted responder", "predicted non-responder"}
    assert 0 <= tr["logrank"]["p"] <= 1 and 0 <= tr["c_index"]["c_index"] <= 1 and tr["n"] == 19
    readers = results["readers"]["sets"]
    assert list(readers) == ["test", "centre_B"]
    assert [r["reader"] for r in readers["centre_B"]["readers"]] == ["reader_1", "reader_2", "reader_3"]
    assert readers["centre_B"]["mean_of_readers"] is not None
    assert "Survival</h2>" in html and "Readers</h2>" in html


@pytest.mark.slow
def test_the_users_cohort_folder_is_untouched(tiny_cohort, evaluated):
    _, _, before = evaluated
    assert tree_digest(tiny_cohort.parent) == before, "evaluate modified the user's cohort folder"


@pytest.mark.slow
def test_every_figure_of_a_simulated_cohort_carries_the_stamp(evaluated):
    from srgan3d.study import report as report_mod
    from srgan3d.study import report_figures as figs

    out, _, _ = evaluated
    stamps = []
    real_png = figs._png
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figs, "_png", lambda fig, stamp=None: stamps.append(stamp) or real_png(fig, stamp))
        report_mod.render_html(report_mod.read_results(out))
    assert len(stamps) >= 6 and set(stamps) == {figs.SIMULATED_STAMP}


@pytest.mark.slow
def test_the_report_rerenders_from_results_json_alone(evaluated, tmp_path):
    out, _, html = _results(evaluated)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "results.json", alone / "results.json")
    res = runner.invoke(app, ["report", str(alone)])
    assert res.exit_code == 0, res.output
    assert (alone / "report.html").read_text() == html


@pytest.mark.slow
def test_a_second_run_reuses_the_cache_and_test_size_with_sets_is_refused(evaluated, tmp_path):
    out, args, _ = evaluated
    results = json.loads((out / "results.json").read_text())
    again_out = tmp_path / "again"
    shutil.copytree(out, again_out)  # the cached SR crops and features travel with the folder
    again_args = [again_out if a == str(out) else a for a in args]
    res = runner.invoke(app, [str(a) for a in again_args])
    assert res.exit_code == 0, res.output
    again = json.loads((again_out / "results.json").read_text())
    assert again["metrics"] == results["metrics"]
    # --test-size with a set column is refused before any work, saying why
    res = runner.invoke(app, [*args, "--test-size", "0.3"])
    assert res.exit_code != 0 and "has a 'set' column" in res.output and "drop --test-size" in res.output


@pytest.mark.slow
def test_report_reads_right(evaluated):
    """No internal code, stray sign or absolute path in the report's text; DCA ranges per set in
    the key results; one sign convention stated."""
    out, _, _ = evaluated
    html = (out / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]*>|<style>.*?</style>", "", html, flags=re.S))
    for code in ("svm_pre", "svm_post", "lr_post", "predicted_responder", "radscore_post_sr", "dl_score", "reader_1",
                 "clinical_post_sr", "p = &lt;", "p = <", str(out.resolve())):  # fmt: skip
        assert code not in text, code
    assert not re.search(r"\bnan\b", text) and not re.search(r"(?<!\d)-0\.0+(?!\d*[1-9])", text)
    key = html[html.index("Key results"):html.index("<h2>")]
    assert "Decision curves of the best model" in key and all(f"{s}: above both at" in key for s in ("train", "test", "centre_B"))
    assert key.count("later-listed model minus the earlier") == 1
    assert "Threshold ranges of each model" in html


@pytest.mark.slow
def test_report_fits_1280_px_in_chromium(evaluated, tmp_path):
    """Headless Chromium lays the report out at 1280 px: the page is no wider than the window, and
    no table, figure or paragraph reaches past it."""
    out, _, _ = evaluated
    layout = chromium_layout(out / "report.html", tmp_path)
    assert layout["page"] <= layout["window"] and layout["window"] > 1200, layout
    assert layout["wide"] == [], layout["wide"]


def test_evaluate_reports_every_cohort_problem(tiny_cohort, tmp_path):
    bad = tiny_cohort.parent / "bad.csv"
    lines = tiny_cohort.read_text().splitlines()
    lines[1] = lines[1].replace("images/P001.nii.gz", "images/nope.nii.gz")
    lines[2] = (
        lines[2]
        .replace(",SD,", ",maybe,")
        .replace(",PR,", ",maybe,")
        .replace(",CR,", ",maybe,")
        .replace(",PD,", ",maybe,")
    )
    bad.write_text("\n".join(lines) + "\n")
    try:
        res = runner.invoke(app, ["evaluate", str(bad), "-o", str(tmp_path / "o")])
    finally:
        bad.unlink()
    assert res.exit_code == 2
    assert "row 2 (patient P001), column 'image': file images/nope.nii.gz not found" in res.output
    assert "row 3 (patient P002), column 'response': 'maybe' is not an mRECIST read" in res.output


def test_radiomics_with_the_generator_records_its_weights_and_reuses_its_cache(
    tiny_cohort, tiny_weights, tmp_path
):
    from srgan3d.sr.weights import sha256_file
    from srgan3d.study.cohort import read_cohort
    from srgan3d.study.config import RadiomicsConfig
    from srgan3d.study.radiomics import extract_cohort

    table = read_cohort(tiny_cohort).table.head(2)
    cfg = RadiomicsConfig(
        params=str(tiny_cohort.parent.parent / "fast.yaml"),
        method="generator",
        weights=str(tiny_weights),
        margin_vox=4,
    )
    first = extract_cohort(table, tmp_path / "f", cfg)
    assert not first.failed
    assert set(first.info["method"]) == {"generator"}
    assert set(first.info["weights_sha256"]) == {sha256_file(tiny_weights)}
    np.testing.assert_allclose(first.info["sr_spacing_mm"].iloc[0], [2.0, 2.0, 3.5])
    sr_files = sorted((tmp_path / "f" / "sr").glob("*.nii.gz"))
    stamps = [p.stat().st_mtime_ns for p in sr_files]
    again = extract_cohort(table, tmp_path / "f", cfg)
    assert [p.stat().st_mtime_ns for p in sr_files] == stamps, "the SR crops were recomputed"
    np.testing.assert_allclose(again.post.to_numpy(), first.post.to_numpy())


def test_bad_survival_and_reader_columns_are_skipped_with_the_reason(tiny_cohort, tmp_path):
    """A negative survival time and a reader value outside both scales: the study still runs, and
    the report says what was skipped and why, naming the column and the row."""
    df = pd.read_csv(tiny_cohort).drop(columns="set")  # a drawn split this time
    df.loc[3, "os_time"] = -1.0
    df.loc[5, "reader_2"] = 7
    bad = tiny_cohort.parent / "cohort_bad.csv"
    df.to_csv(bad, index=False)
    out = tmp_path / "eval"
    args = ["evaluate", str(bad), "-o", str(out), "--params", str(tiny_cohort.parent.parent / "fast.yaml"),
            "--bootstrap", "0", "--test-size", "0.25", "--method", "sinc", "--workers", "2", "--classifiers", "",
            "--dl", "resnet10", "--dl-epochs", "1", "--dl-crop-vox", "16", "--dl-widen", "0.25", "--dl-dual", "image_2"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["split"]["source"] == "drawn" and len(results["split"]["sets"]["test"]) == 9
    skipped = results["survival"]["endpoints"][0]["skipped"]
    bad_time = f"patient {df.loc[3, 'patient_id']}: os_time = -1 "
    bad_read = f"patient {df.loc[5, 'patient_id']}: reader_2 = 7"
    assert bad_time in skipped and bad_read in results["readers"]["skipped"]
    html = (out / "report.html").read_text()
    assert "overall survival: skipped" in html and "outside both scales" in html
    assert bad_time in res.output and bad_read in res.output  # on the terminal too
    # the synthetic second phase feeds the deep model's second branch
    assert results["deep"]["config"]["dual"] == "image_2" and set(results["deep"]["models"]) == {"pre", "post"}


@pytest.mark.slow
def test_features_from_a_pyradiomics_batch_table_give_the_same_aucs(tiny_cohort, evaluated, tmp_path):
    """The study's own extracted features, written in pyradiomics' batch layout (Image, Mask,
    diagnostics_*, features) and read back with --features/--features-sr, give the same AUCs as
    the extraction did, to 1e-9, on every set."""
    from srgan3d.study.cohort import read_cohort
    from srgan3d.study.feature_tables import write_batch_layout

    out, _, _ = evaluated
    results = json.loads((out / "results.json").read_text())
    table = read_cohort(tiny_cohort).table
    for name in ("pre", "post"):
        feats = pd.read_csv(out / f"features_{name}.csv", index_col="patient_id")
        write_batch_layout(feats, table, tmp_path / f"{name}.csv")
    head = (tmp_path / "pre.csv").read_text().splitlines()[0].split(",")
    assert head[:3] == ["Image", "Mask", "diagnostics_Versions_PyRadiomics"]
    res = runner.invoke(app, ["evaluate", str(tiny_cohort), "-o", str(tmp_path / "t"), "--features", str(tmp_path / "pre.csv"),
                              "--features-sr", str(tmp_path / "post.csv"), "--bootstrap", "0", "--classifiers", "",
                              "--workers", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "t" / "results.json").read_text())
    assert again["features_source"] == "tables: pre.csv, post.csv" and again["excluded"] == []
    for s in ("train", "test", "centre_B"):
        for m in ("radiomics_pre_sr", "radiomics_post_sr", "clinical", "clinical_post_sr"):
            for k in ("auc", "ci_low", "ci_high"):
                assert abs(again["metrics"][s]["roc"][m][k] - results["metrics"][s]["roc"][m][k]) < 1e-9, (s, m, k)
    html = (tmp_path / "t" / "report.html").read_text()
    assert "read from pre.csv, post.csv" in html and "No super-resolution here" in html
    assert "No deep models" not in html  # --dl was not asked for

    # --features alone: the post-SR models are absent, and the report says so once
    res = runner.invoke(app, ["evaluate", str(tiny_cohort), "-o", str(tmp_path / "p"), "--features", str(tmp_path / "pre.csv"),
                              "--bootstrap", "0", "--classifiers", "lr", "--workers", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    pre_only = json.loads((tmp_path / "p" / "results.json").read_text())
    assert [m["name"] for m in pre_only["roster"]["models"]] == ["radiomics_pre_sr", "clinical"]
    assert pre_only["metrics"]["test"]["roc"]["radiomics_pre_sr"] == pytest.approx(results["metrics"]["test"]["roc"]["radiomics_pre_sr"])
    html = (tmp_path / "p" / "report.html").read_text()
    assert html.count("No post-SR models") == 1 and "add --features-sr" in html


def test_radiomics_on_through_plane_sr_doubles_only_the_slice_axis_and_says_which_ran(tiny_cohort, tmp_path):
    """`evaluate --scale through-plane` end to end at the extraction: each VOI's box is
    super-resolved 2x along its scan's slice axis only, the in-plane spacing kept, and the
    method that ran (auto without protocol weights: B-spline + consistency) recorded per patient."""
    from srgan3d.io import read_volume
    from srgan3d.study.cohort import read_cohort
    from srgan3d.study.config import RadiomicsConfig
    from srgan3d.study.radiomics import extract_cohort

    table = read_cohort(tiny_cohort).table.head(2)
    cfg = RadiomicsConfig(
        params=str(tiny_cohort.parent.parent / "fast.yaml"), method="auto", through_plane=True, margin_vox=4
    )
    res = extract_cohort(table, tmp_path / "f", cfg)
    assert not res.failed
    assert set(res.info["method"]) == {"bspline-consistent (through-plane, x2 along the slices)"}
    spacing = np.asarray(read_volume(table["image"].iloc[0]).spacing_mm)
    slice_axis = int(np.argmax(spacing))
    want = spacing.copy()
    want[slice_axis] /= 2
    np.testing.assert_allclose(res.info["sr_spacing_mm"].iloc[0], want, rtol=1e-6)
    assert np.isfinite(res.post.to_numpy()).all()
    assert not np.allclose(res.post.to_numpy(), res.pre.to_numpy())


@pytest.mark.slow
def test_noise_at_the_ninth_digit_moves_no_auc_and_no_choice(tmp_path):
    """A cohort of the demo's size (122 patients; feature tables as if computed elsewhere), and the
    same with every feature perturbed by relative 1e-9 noise (far above ITK's threaded-sum noise):
    every AUC the results report moves by less than 0.005, and every hyperparameter choice and the
    panel's pick stay the same. (The demo's own extracted features take 15 minutes to compute; the
    same check on them is `benchmarks/noise_stability.py`, in benchmarks/RESULTS.md.)"""
    from conftest import toy_radiomics_cohort

    pre, post, clin, y = toy_radiomics_cohort(n=122, seed=4)
    cohort = clin.reset_index().assign(response=y)
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    rng = np.random.default_rng(11)
    runs = {}
    for name, scale in (("same", 0.0), ("noisy", 1e-9)):
        tables = []
        for which, df in (("pre", pre), ("post", post)):
            noisy = df * (1 + scale * rng.standard_normal(df.shape))
            noisy.reset_index().to_csv(tmp_path / f"{name}_{which}.csv", index=False, float_format="%.17g")
            tables.append(tmp_path / f"{name}_{which}.csv")
        res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / name), "--features",
                                       str(tables[0]), "--features-sr", str(tables[1]), "--bootstrap", "4",
                                       "--panel-bootstrap", "2", "--workers", "2", "--seed", "0"])  # fmt: skip
        assert res.exit_code == 0, res.output
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    from srgan3d.study.results import reported_aucs

    a, b = reported_aucs(runs["same"]), reported_aucs(runs["noisy"])
    assert a.keys() == b.keys() and len(a) > 50
    moved = {k: (a[k], b[k]) for k in a if not (np.isnan(a[k]) and np.isnan(b[k])) and not abs(a[k] - b[k]) < 0.005}
    assert not moved, moved
    panel_a, panel_b = runs["same"]["panel"], runs["noisy"]["panel"]
    assert panel_a["best"] == panel_b["best"]
    for name, images in panel_a["models"].items():
        for image, m in images.items():
            assert m["params"] == panel_b["models"][name][image]["params"], (name, image)
            assert m["seed_spread"]  # the spread over inner-CV seeds is reported
    assert {k: v["C"] for k, v in runs["same"]["fitted"]["radscore"].items()} == {
        k: v["C"] for k, v in runs["noisy"]["fitted"]["radscore"].items()
    }


@pytest.mark.slow
def test_a_cohort_extracted_in_three_shards_gives_the_numbers_of_one_machine(tiny_cohort, tmp_path):
    """`evaluate --extract-only --shard K/N` three times (as a SLURM array would), then one
    `evaluate` on the same folder: it extracts nothing again, and its results equal a run on one
    machine, number for number."""
    common = ["--params", str(tiny_cohort.parent.parent / "fast.yaml"), "--method", "sinc", "--bootstrap", "2",
              "--classifiers", "lr,knn", "--panel-bootstrap", "0", "--workers", "1", "--peritumoral", ""]  # fmt: skip
    one = tmp_path / "one"
    res = CliRunner().invoke(app, ["evaluate", str(tiny_cohort), "-o", str(one), *common])
    assert res.exit_code == 0, res.output
    sharded = tmp_path / "sharded"
    for k in (1, 2, 3):
        res = CliRunner().invoke(app, ["evaluate", str(tiny_cohort), "-o", str(sharded), *common, "--extract-only",
                                       "--shard", f"{k}/3"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert f"shard {k}/3:" in res.output and "when every shard has run" in res.output
    assert not (sharded / "results.json").exists()
    assert len(list((sharded / "features_cache").glob("*.json"))) == 34
    stamps = {p: p.stat().st_mtime_ns for p in (sharded / "features_cache").glob("*.json")}
    again = CliRunner().invoke(app, ["evaluate", str(tiny_cohort), "-o", str(sharded), *common, "--extract-only",
                                     "--shard", "2/3"])  # fmt: skip
    assert again.exit_code == 0 and "were there already" in again.output
    res = CliRunner().invoke(app, ["evaluate", str(tiny_cohort), "-o", str(sharded), *common])
    assert res.exit_code == 0, res.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "the final run extracted again"
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, sharded))
    for key in ("metrics", "fitted", "predictions", "panel", "split", "roster", "cohort_summary", "excluded"):
        assert a[key] == b[key], key
    assert (one / "features_pre.csv").read_text() == (sharded / "features_pre.csv").read_text()
    bad = CliRunner().invoke(app, ["evaluate", str(tiny_cohort), "-o", str(tmp_path / "x"), *common, "--shard", "1/2"])
    assert bad.exit_code == 2 and "--shard needs --extract-only" in bad.output
