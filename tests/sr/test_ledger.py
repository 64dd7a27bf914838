"""The manifest as a ledger, signal-safe batches, and nothing changed silently (issue 15)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import smooth_volume

import srgan3d.sr.upscale as upscale_mod
from srgan3d.io import read_volume
from srgan3d.sr.ledger import ManifestRow, read_manifest, write_manifest
from srgan3d.sr.upscale import UpscaleConfig, upscale_files

ROOT = Path(__file__).resolve().parents[2]


def _scans(folder: Path, n: int, shape=(14, 12, 8), dtype=np.float32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        x = smooth_volume(shape, seed=i)
        data = ((x - x.min()) / np.ptp(x) * 800 + 50).astype(dtype)
        p = folder / f"s{i}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([1.2, 1.2, 3.0, 1.0])), str(p))
        paths.append(p)
    return paths


def _manifest(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {Path(r["input"]).name: r for r in csv.DictReader(f)}


def test_rerun_with_another_method_keeps_the_provenance_of_the_outputs(tmp_path):
    scans = _scans(tmp_path / "in", 3)
    out = tmp_path / "out"
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))
    first = _manifest(out / "manifest.csv")
    assert {r["status"] for r in first.values()} == {"ok"} and all(r["date"] for r in first.values())

    # One file again, another method, no --overwrite: the output is kept, and so is its row.
    upscale_files([scans[0]], out, UpscaleConfig(method="sinc"))
    second = _manifest(out / "manifest.csv")
    assert set(second) == {"s0.nii.gz", "s1.nii.gz", "s2.nii.gz"}  # the other rows are not lost
    row = second["s0.nii.gz"]
    assert row["status"] == "skipped" and row["method"] == "trilinear"
    for col in ("output", "output_shape", "input_spacing_mm", "seconds", "date", "srgan3d"):
        assert row[col] == first["s0.nii.gz"][col], col
    assert second["s1.nii.gz"] == first["s1.nii.gz"]

    # --overwrite replaces the file and with it the provenance.
    before = (out / "s0_sr2x.nii.gz").read_bytes()
    upscale_files([scans[0]], out, UpscaleConfig(method="sinc", overwrite=True))
    third = _manifest(out / "manifest.csv")
    assert third["s0.nii.gz"]["status"] == "ok" and third["s0.nii.gz"]["method"] == "sinc"
    assert (out / "s0_sr2x.nii.gz").read_bytes() != before
    assert third["s2.nii.gz"] == first["s2.nii.gz"]


def test_an_output_made_elsewhere_is_skipped_without_invented_provenance(tmp_path):
    _scans(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "s0_sr2x.nii.gz").write_bytes(b"not ours")
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))
    row = _manifest(out / "manifest.csv")["s0.nii.gz"]
    assert row["status"] == "skipped" and row["method"] == "" and "provenance unknown" in row["note"]


def test_statuses_are_true_while_the_batch_runs(tmp_path, monkeypatch):
    _scans(tmp_path / "in", 3)
    out = tmp_path / "out"
    seen = []
    real = upscale_mod.upscale_volume

    def spy(vol, **kw):
        seen.append(_manifest(out / "manifest.csv"))
        return real(vol, **kw)

    monkeypatch.setattr(upscale_mod, "upscale_volume", spy)
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))
    assert [r["status"] for r in seen[0].values()] == ["pending"] * 3
    for snapshot in seen:
        for r in snapshot.values():
            # a row names an output only once it exists
            assert (r["status"] == "ok") == bool(r["output"]), r
            if r["output"]:
                assert Path(r["output"]).is_file()


def test_a_failed_overwrite_keeps_the_earlier_output_and_says_so(tmp_path, monkeypatch):
    _scans(tmp_path / "in", 1)
    out = tmp_path / "out"
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))

    def broken(*a, **k):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(upscale_mod, "upscale_volume", broken)
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="sinc", overwrite=True))
    row = _manifest(out / "manifest.csv")["s0.nii.gz"]
    assert row["status"] == "failed" and "simulated failure" in row["error"]
    assert row["method"] == "trilinear" and Path(row["output"]).is_file() and "earlier output is kept" in row["note"]


def test_nonfinite_voxels_and_clipping_are_recorded(tmp_path):
    x = smooth_volume((14, 12, 8), seed=3)
    data = ((x - x.min()) / np.ptp(x) * 800 + 50).astype(np.float32)
    data[0, :5, 0] = np.nan
    data[3, 3, 3] = np.inf
    data[7:, 6:, 4:] = 0  # a sharp edge to zero: zero-filled k-space undershoots there
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "in" / "nan.nii.gz"))
    upscale_files([tmp_path / "in"], tmp_path / "out", UpscaleConfig(method="sinc"))
    row = _manifest(tmp_path / "out" / "manifest.csv")["nan.nii.gz"]
    assert row["status"] == "ok" and row["nonfinite_voxels"] == "6"
    assert int(row["clipped_voxels"]) > 0  # non-negative input: sinc's undershoot raised to 0
    assert read_volume(tmp_path / "out" / "nan_sr2x.nii.gz").data.min() >= 0


def test_dtype_input_keeps_an_integer_input_type(tmp_path):
    _scans(tmp_path / "in", 1, dtype=np.int16)
    upscale_files([tmp_path / "in"], tmp_path / "f32", UpscaleConfig(method="sinc"))
    upscale_files([tmp_path / "in"], tmp_path / "i16", UpscaleConfig(method="sinc", dtype="input"))
    f32, i16 = (nib.load(str(tmp_path / d / "s0_sr2x.nii.gz")) for d in ("f32", "i16"))
    assert f32.get_data_dtype() == np.float32 and i16.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(i16.dataobj), np.rint(f32.get_fdata()))
    row = _manifest(tmp_path / "i16" / "manifest.csv")["s0.nii.gz"]
    assert row["output_dtype"] == "int16" and row["dtype_clipped_voxels"] == "0"
    assert (tmp_path / "i16" / "s0_sr2x.nii.gz").stat().st_size < (tmp_path / "f32" / "s0_sr2x.nii.gz").stat().st_size


def test_dtype_input_with_a_scaled_source_fits_slope_and_intercept(oblique_nifti, tmp_path):
    """The fixture is int16 with scl_slope 2, scl_inter 10: the output is int16 too, its own
    slope/intercept keep the output's range (no clipping)."""
    upscale_files([oblique_nifti], tmp_path / "o", UpscaleConfig(method="sinc", dtype="input"))
    upscale_files([oblique_nifti], tmp_path / "f", UpscaleConfig(method="sinc"))
    name = oblique_nifti.name.replace(".nii.gz", "_sr2x.nii.gz")
    out, ref = (nib.load(str(tmp_path / d / name)) for d in ("o", "f"))
    assert out.get_data_dtype() == np.int16
    slope = float(out.dataobj.slope)
    np.testing.assert_allclose(out.get_fdata(), ref.get_fdata(), atol=slope / 2 + 1e-3)


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path):
    _scans(tmp_path / "in", 1)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = [out / f".s0_sr2x.nii.gz.{pid}.tmp.nii.gz", out / "sub" / f".manifest.csv.{pid}.tmp.csv"]
    live = out / f".x_sr2x.nii.gz.{os.getppid()}.tmp.nii.gz"  # a running process's: not ours to remove
    other = out / ".notes.txt"
    for p in (*stale, live, other):
        p.write_bytes(b"partial")
        os.utime(p, (time.time() - 60, time.time() - 60))
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()


def _start_batch(tmp_path: Path, n: int) -> tuple[subprocess.Popen, Path]:
    _scans(tmp_path / "in", n, shape=(40, 36, 24))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srgan3d", "upscale", str(tmp_path / "in"), "-o", str(out), "--method", "tricubic"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the first scan is written
        m = out / "manifest.csv"
        if m.exists() and any(r["status"] == "ok" for r in _manifest(m).values()):
            return proc, out
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the batch wrote nothing in 120 s")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_batch_writes_the_manifest_and_leaves_no_debris(tmp_path, sig, code):
    n = 30
    proc, out = _start_batch(tmp_path, n)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "run the same command again to resume" in output and "not done" in output
    rows = _manifest(out / "manifest.csv")
    statuses = [r["status"] for r in rows.values()]
    assert len(rows) == n and set(statuses) <= {"ok", "pending"} and "pending" in statuses
    for r in rows.values():
        assert (r["status"] == "ok") == Path(out, Path(r["input"]).name.replace(".nii.gz", "_sr2x.nii.gz")).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left"
    # Resuming finishes the rest and keeps the rows of the first run.
    done_before = {k: r for k, r in rows.items() if r["status"] == "ok"}
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="tricubic"))
    after = _manifest(out / "manifest.csv")
    assert {r["status"] for k, r in after.items() if k not in done_before} == {"ok"}
    assert all(after[k]["date"] == r["date"] and after[k]["status"] == "skipped" for k, r in done_before.items())


def test_one_row_per_input_however_its_path_is_spelled(tmp_path, monkeypatch):
    _scans(tmp_path / "in", 2)
    monkeypatch.chdir(tmp_path)
    upscale_files([Path("in")], tmp_path / "out", UpscaleConfig(method="trilinear"))
    upscale_files([tmp_path / "in"], tmp_path / "out", UpscaleConfig(method="trilinear"))
    with (tmp_path / "out" / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"skipped"}
    assert all(r["method"] == "trilinear" and r["date"] for r in rows)


def test_a_writer_killed_mid_write_leaves_nothing_after_an_immediate_resume(tmp_path):
    """A real process writing an output through `atomic_path` is killed with SIGKILL mid-write;
    the batch run right after removes its hidden temporary at once (same machine, dead process:
    no waiting for the age rule), while another machine's fresh temporary is left alone."""

    from srgan3d.atomic import _HOST

    _scans(tmp_path / "in", 1)
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "from srgan3d.atomic import atomic_path\n"
        f"with atomic_path({str(out / 's0_sr2x.nii.gz')!r}) as tmp:\n"
        "    f = open(tmp, 'wb'); f.write(b'x' * 4096); f.flush()\n"
        "    print(tmp.name, flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    name = proc.stdout.readline().strip()
    partial = out / name
    assert partial.exists() and f".{_HOST}-{proc.pid}.tmp" in name
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    elsewhere = out / f".s1_sr2x.nii.gz.other-node-{proc.pid}.tmp.nii.gz"  # a writer on another machine
    elsewhere.write_bytes(b"partial")
    upscale_files([tmp_path / "in"], out, UpscaleConfig(method="trilinear"))
    assert not partial.exists()
    assert [p.name for p in out.rglob(".*")] == [elsewhere.name]
    assert (out / "s0_sr2x.nii.gz").is_file()


def test_an_input_keeps_its_output_however_it_is_named(tmp_path, monkeypatch):
    """The three-command sequence: a folder with a nested scan, then that scan alone with
    --overwrite, then the folder again. The nested scan has one output, where the folder's run
    put it, its provenance known throughout; every ok/skipped row names a file that exists."""
    monkeypatch.chdir(tmp_path)
    _scans(Path("scans"), 1)
    (nested,) = _scans(Path("scans/nested"), 1, shape=(12, 10, 8))
    upscale_files(["scans"], "out", UpscaleConfig(method="trilinear"))
    nested_out = Path("out/nested/s0_sr2x.nii.gz")
    top_before = Path("out/s0_sr2x.nii.gz").read_bytes()  # the top-level scan's output, same name
    upscale_files([nested], "out", UpscaleConfig(method="sinc", overwrite=True))
    assert Path("out/s0_sr2x.nii.gz").read_bytes() == top_before  # not overwritten by the nested scan
    rows = {r["input"]: r for r in csv.DictReader(Path("out/manifest.csv").open())}
    row = rows[str(nested)]
    assert row["status"] == "ok" and row["output"] == str(nested_out) and row["method"] == "sinc"
    upscale_files(["scans"], "out", UpscaleConfig(method="trilinear"))
    rows = list(csv.DictReader(Path("out/manifest.csv").open()))
    assert len(rows) == 2
    by_input = {Path(r["input"]).resolve(): r for r in rows}
    again = by_input[nested.resolve()]
    assert again["status"] == "skipped" and again["method"] == "sinc" and "provenance unknown" not in again["note"]
    for r in rows:
        assert r["status"] in ("ok", "skipped") and Path(r["output"]).is_file(), r
    outputs = sorted(p.as_posix() for p in Path("out").rglob("*.nii.gz"))
    assert outputs == ["out/nested/s0_sr2x.nii.gz", "out/s0_sr2x.nii.gz"]  # one output per input


def test_a_file_first_upscaled_alone_keeps_its_output_when_its_folder_runs(tmp_path, monkeypatch):
    """Upscaled alone first (the documented rule: top level), then its folder: the ledger's output
    is kept, no second copy is made in the mirrored subfolder."""
    monkeypatch.chdir(tmp_path)
    (nested,) = _scans(Path("scans/nested"), 1)
    upscale_files([nested], "out", UpscaleConfig(method="trilinear"))
    assert Path("out/s0_sr2x.nii.gz").is_file()
    upscale_files(["scans"], "out", UpscaleConfig(method="trilinear"))
    (row,) = list(csv.DictReader(Path("out/manifest.csv").open()))
    assert row["status"] == "skipped" and row["output"] == "out/s0_sr2x.nii.gz" and row["date"]
    assert not Path("out/nested").exists()


def test_a_manifest_of_the_previous_release_is_read_and_written_byte_for_byte(tmp_path):
    """The typed row keeps the CSV exactly: a manifest written by release 0.2.0 (generator, adapted,
    through-plane network and B-spline, failed and skipped rows) read and written again."""
    fixture = ROOT / "tests" / "data" / "manifest_0.2.0.csv"
    rows = read_manifest(fixture)
    assert len(rows) == 14
    out = write_manifest(rows.values(), tmp_path / "manifest.csv")
    assert out.read_bytes() == fixture.read_bytes()
    net = next(r for r in rows.values() if r.method == "self-supervised")
    assert net.held_out_gain_db == 0.14 and net.self_supervised_steps == 67 and net.scale == (1, 1, 2)
    assert net.axis_detail_upper_share == (0.4918, 0.5016, 0.5124) and net.seconds == 3.97
    failed = next(r for r in rows.values() if r.status == "failed")
    assert failed.output == "" and failed.scale == () and failed.nonfinite_voxels is None


def test_a_manifest_row_takes_only_its_columns_in_their_types():
    row = ManifestRow("a.nii.gz")
    row.update(scale=[2, 2, np.int64(1)], seconds=np.float32(0.5), adapt_steps=np.int64(3))
    assert row.scale == (2, 2, 1) and type(row.scale[2]) is int and row.as_csv()["seconds"] == "0.50"
    with pytest.raises(KeyError, match="no column 'sceonds'"):
        row.update(sceonds=1.0)
    with pytest.raises(TypeError, match="adapt_steps takes int"):
        row.update(adapt_steps=2.5)
    with pytest.raises(TypeError, match="method takes text"):
        row.update(method=3)


def test_a_manifest_with_a_cell_of_the_wrong_type_is_set_aside_not_lost(tmp_path, caplog):
    text = (ROOT / "tests" / "data" / "manifest_0.2.0.csv").read_text(encoding="utf-8")
    bad = tmp_path / "manifest.csv"
    bad.write_text(text.replace(",3.97,", ",soon,"), encoding="utf-8")
    assert read_manifest(bad) == {}
    kept = list(tmp_path.glob("manifest.csv.unreadable-*"))
    assert len(kept) == 1 and "column seconds holds 'soon'" in caplog.text
