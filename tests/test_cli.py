from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
from conftest import REAL_SCAN, tree_digest
from typer.testing import CliRunner

from srgan3d.cli import app

runner = CliRunner()


def test_upscale_folder_with_a_corrupt_file(tmp_path, oblique_nifti):
    root = tmp_path / "in"
    root.mkdir()
    (root / "good.nii.gz").write_bytes(oblique_nifti.read_bytes())
    (root / "corrupt.nii.gz").write_bytes(b"this is not a nifti file at all")
    before = tree_digest(root)
    res = runner.invoke(app, ["upscale", str(root), "-o", str(tmp_path / "out"), "--method", "sinc"])
    assert res.exit_code == 1
    assert "1 upscaled" in res.output and "1 failed" in res.output
    assert "corrupt.nii.gz" in res.output
    assert nib.load(str(tmp_path / "out" / "good_sr2x.nii.gz")).shape == (32, 32, 16)
    assert tree_digest(root) == before
    with (tmp_path / "out" / "manifest.csv").open() as f:
        assert {r["status"] for r in csv.DictReader(f)} == {"ok", "failed"}


def test_upscale_clear_errors(tmp_path, oblique_nifti):
    (tmp_path / "empty").mkdir()
    res = runner.invoke(
        app, ["upscale", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--method", "sinc"]
    )
    assert res.exit_code == 2 and "no scans found" in res.output
    res = runner.invoke(app, ["upscale", str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    res = runner.invoke(
        app, ["upscale", str(oblique_nifti), "-o", str(tmp_path / "o"), "--method", "bicubic"]
    )
    assert res.exit_code == 2 and "unknown method 'bicubic'" in res.output
    res = runner.invoke(app, ["upscale", str(oblique_nifti), "-o", str(tmp_path / "o"), "--scale", "2,a"])
    assert res.exit_code == 2 and "--scale" in res.output


def test_upscale_with_weights_path_and_through_plane(tmp_path, oblique_nifti, tiny_weights):
    res = runner.invoke(
        app,
        [
            "upscale",
            str(oblique_nifti),
            "-o",
            str(tmp_path / "g"),
            "--method",
            "generator",
            "--weights",
            str(tiny_weights),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    with (tmp_path / "g" / "manifest.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["weights"] == "tiny_x2" and len(row["weights_sha256"]) == 64 and row["device"] == "cpu"
    res = runner.invoke(
        app,
        [
            "upscale",
            str(oblique_nifti),
            "-o",
            str(tmp_path / "t"),
            "--method",
            "sinc",
            "--scale",
            "through-plane",
        ],
    )
    assert res.exit_code == 0, res.output
    assert nib.load(str(tmp_path / "t" / "oblique_sr2x.nii.gz")).shape == (16, 16, 16)


def test_info_lists_versions():
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0
    assert "torch" in res.output and "monai" in res.output and "weights" in res.output
    # each shipped weights file with its licence; the NonCommercial pair marked opt-in
    line = next(x for x in res.output.splitlines() if " srgan3d_x2_nc " in x)
    assert "licence CC BY-NC-SA 4.0 (opt-in)" in line and "not used (opt-in" in line
    line = next(x for x in res.output.splitlines() if " srgan3d_x2 " in x)
    assert "licence Apache-2.0 " in line


def test_console_script_as_subprocess(tmp_path):
    exe = Path(sys.executable).parent / "srgan3d"
    src = REAL_SCAN
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "upscale" in out.stdout and "demo" in out.stdout
    run = subprocess.run(
        [str(exe), "upscale", str(src), "-o", str(tmp_path / "o"), "--method", "tricubic"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert nib.load(str(tmp_path / "o" / "totalseg_example_mr_sm_sr2x.nii.gz")).shape == (234, 182, 40)


@pytest.mark.slow
def test_demo_runs_the_whole_study_on_built_in_data(tmp_path):
    out = tmp_path / "demo"
    args = [
        "demo",
        "-o",
        str(out),
        "--patients",
        "20",
        "--responders",
        "10",
        "--external",
        "8",
        "--external-responders",
        "4",
        "--bootstrap",
        "3",
        "--workers",
        "2",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = __import__("json").loads((out / "summary.json").read_text())
    # the layout of summary.json as release 0.2.0 wrote it, and the typed summary reads it back
    assert list(summary) == ["method", "note", "seed", "lr_shape", "hr_shape", "lr_spacing_mm", "hr_spacing_mm",
                             "results", "versions", "table", "report", "evaluation_table", "seconds",
                             "simulated_responses"]  # fmt: skip
    assert list(summary["results"][0]) == ["method", "psnr_db", "ssim", "psnr_tumour_db", "seconds"]
    assert list(summary["seconds"]) == ["phantom", "cohort", "evaluate"] and summary["simulated_responses"] is True
    from srgan3d.demo import DemoSummary

    assert DemoSummary.from_dict(summary).to_dict() == summary
    by = {r["method"]: r for r in summary["results"]}
    # Zero-filled k-space undoes k-space truncation better than trilinear interpolation.
    assert by["sinc"]["psnr_db"] > by["trilinear"]["psnr_db"]
    html = (out / "evaluation" / "report.html").read_text()
    assert "Simulated data" in html and 'src="http' not in html and "<script" not in html
    assert "Super-resolution quality against a known truth" in html
    results = __import__("json").loads((out / "evaluation" / "results.json").read_text())
    assert [r["method"] for r in results["sr_quality"]["results"]] == [r["method"] for r in summary["results"]]
    assert list(results["split"]["sets"]) == ["train", "test", "centre_B"] and len(results["split"]["sets"]["centre_B"]) == 8
    assert "SIMULATED" in res.output and "DeLong" in res.output


def test_benchmark_quick_writes_json_and_table(tmp_path):
    import json

    res = runner.invoke(app, ["benchmark", "--quick", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    import torch

    from srgan3d.sr.device import use_bf16

    cpu_bf16 = use_bf16(torch.device("cpu"), True)
    rows = result["rows"]
    # the quick sweep (two window batches) in the CPU default (channels_last_3d, bf16 only with bf16
    # units), then one row without channels_last and, on a bf16 CPU, one in fp32
    assert len(rows) == (4 if cpu_bf16 else 3) and all(r["compute_s"] > 0 for r in rows)
    assert [r["channels_last"] for r in rows[:3]] == [True, True, False]
    assert {r["precision"] for r in rows[:2]} == {"bf16" if cpu_bf16 else "fp32"}
    assert result["end_to_end"]["seconds"] > 0 and result["trilinear_s"] > 0
    assert result["output_shape"] == [80, 80, 32]
    # useful-work FLOPs per output voxel follow the architecture (default: 32 channels, 4 blocks)
    assert 80e3 < result["flops_per_output_voxel"] < 100e3
    assert "| window | batch |" in (tmp_path / "b" / "benchmark.md").read_text()
    # every stage of one volume is reported, and the parts of the engine add up to its total
    st = result["stages_s"]
    parts = ("normalise", "to_device", "network", "stitch", "kspace", "copy_back", "denormalise")
    assert all(st[k] > 0 for k in (*parts, "read.nii.gz", "read.nii", "write.nii.gz", "write.nii")), st
    assert st["engine_total"] == pytest.approx(sum(st[k] for k in parts))
    assert result["first_call_s"] > 0 and all(r["warmup_s"] > 0 for r in result["rows"])
    folder = result["folder"]
    assert folder["scans"] == folder["ok"] == 2 and 0 < folder["device_busy_fraction"] <= 1
    # the layout of benchmark.json as release 0.2.0 wrote it (a row's setting beside its
    # measurements), and the typed result reads it back
    assert list(result) == ["date", "device", "torch_threads", "input_shape", "output_shape", "generator",
                            "flops_per_output_voxel", "matmul_peak_tflops", "first_call_s", "rows", "best",
                            "trilinear_s", "stages_s", "end_to_end", "folder", "config", "versions", "table"]  # fmt: skip
    assert list(rows[0])[:7] == ["window", "batch", "precision", "compile", "channels_last", "cudnn_benchmark", "warmup_s"]
    from srgan3d.sr.bench import BenchmarkResult

    back = BenchmarkResult.from_dict(result)
    assert back.rows[0].setting.precision == rows[0]["precision"] and back.folder is not None
    assert back.to_dict() == result


def test_version_matches_the_package_metadata():
    from importlib.metadata import version

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"srgan3d {version('srgan3d')}"


@pytest.mark.parametrize("command", ["", "upscale", "evaluate", "train", "demo", "synth-cohort", "benchmark",
                                     "merge-manifests", "report", "export", "info"])  # fmt: skip
def test_help_reads_at_80_columns(command):
    """Every help page fits 80 columns without cutting words or option names, flags show as
    --x / --no-x (no <bool>), and the command list gives whole sentences."""
    res = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "<bool>" not in res.output and "…" not in res.output
    if not command:
        listed = [line for line in lines if line.startswith("  ") and not line.strip().startswith("-")]
        assert len(listed) >= 10 and not any(line.rstrip().endswith("...") for line in listed), listed


