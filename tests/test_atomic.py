"""Atomic files and folders (`srgan3d.atomic`): a reader sees the old or the new, never half; a
failed write leaves the old in place and no temporary behind; a dead writer's temporary is cleared."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from srgan3d.atomic import atomic_dir, atomic_path, remove_stale_temps, write_csv_atomic, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    p = write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        assert tmp.name.endswith(".tmp.txt") and tmp.parent == p.parent and tmp.name.startswith(".")
        raise RuntimeError("killed mid-write")
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]
    write_text_atomic(p, "new")
    assert p.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_a_nifti_temporary_keeps_both_suffixes(tmp_path):
    with atomic_path(tmp_path / "sub" / "x.nii.gz") as tmp:
        assert tmp.name.endswith(".tmp.nii.gz")
        tmp.write_bytes(b"\x1f\x8b")
    assert (tmp_path / "sub" / "x.nii.gz").read_bytes() == b"\x1f\x8b"


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "series"
    with atomic_dir(target) as tmp:
        (tmp / "1.dcm").write_text("one")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "2.dcm").write_text("two")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["1.dcm"]
    with atomic_dir(target) as tmp:
        (tmp / "3.dcm").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["3.dcm"] and sorted(p.name for p in tmp_path.iterdir()) == ["series"]


def test_csv_rows_are_written_in_the_columns_given(tmp_path):
    p = write_csv_atomic(tmp_path / "t.csv", [{"b": 2, "a": 1}], ["a", "b"])
    with p.open(newline="") as f:
        assert list(csv.reader(f)) == [["a", "b"], ["1", "2"]]


def test_only_a_dead_writers_temporaries_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    from srgan3d.atomic import _HOST

    stale = tmp_path / "d" / f".x.nii.gz.{_HOST}-{pid}.tmp.nii.gz"
    stale.parent.mkdir()
    stale.write_bytes(b"")
    mine = tmp_path / f".y.csv.{_HOST}-{os.getpid()}.tmp.csv"
    mine.write_bytes(b"")
    other_host = tmp_path / f".z.csv.othernode-{pid}.tmp.csv"
    other_host.write_bytes(b"")  # fresh: a live writer on another node keeps it fresh
    user_file = tmp_path / ".hidden.tmp"
    user_file.write_bytes(b"")  # not named like ours
    assert remove_stale_temps(tmp_path) == [stale]
    assert mine.exists() and other_host.exists() and user_file.exists()
    old = os.path.getmtime(other_host) - 60
    os.utime(other_host, (old, old))
    assert remove_stale_temps(tmp_path, min_age_s=10) == [other_host]
