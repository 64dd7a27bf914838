"""Outputs written atomically: to a temporary file in the same folder, then renamed, so that a
reader never sees half a file and a killed run leaves only temporaries (named with host and
process, removed by the next run in that folder: `remove_stale_temps`)."""

from __future__ import annotations

import csv
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path` to write to; on success it is renamed onto
    `path` (atomic on one file system), on failure removed. A reader never sees half a file and an
    interrupted run leaves the old one intact. The temporary name carries this machine's name and
    the process id (`remove_stale_temps` tells a dead writer's file by them) and keeps the suffix
    (e.g. .nii.gz) so writers that choose a format by name still do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.lower().endswith(".nii.gz") else path.suffix
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `path` to fill; on success it takes `path`'s place
    (an existing folder there is moved aside first and removed after), on failure it is removed.
    A reader never sees a half-written series; a killed run leaves only the temporary folder,
    which `remove_stale_temps` clears."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp.old")
    tmp.mkdir(exist_ok=False)
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


#: This machine's name as temporary names carry it (letters, digits, _ and - only).
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<host>[A-Za-z0-9_-]+)-)?(?P<pid>\d+)\.tmp(\.[A-Za-z0-9]+){0,2}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: str | Path, *, min_age_s: float = 10.0) -> list[Path]:
    """Remove the temporary files `atomic_path` leaves when a run is killed outright (SIGKILL,
    power loss) from `folder` and its subfolders: only hidden files named like ours
    (`.<name>.<host>-<pid>.tmp<suffix>`). One written on this machine by a process that no longer
    runs is removed at once: a dead process id is proof enough. One from another machine (a node
    sharing the file system, whose process ids mean nothing here), or of the older name without a
    host (`.<name>.<pid>.tmp<suffix>`, its process dead here), only once it has not changed for
    `min_age_s` seconds: a live writer keeps its file fresh. Returns what was removed."""
    import shutil

    removed = []
    for p in sorted(Path(folder).rglob(".*.tmp*")):
        m = _TEMP_NAME.match(p.name)
        if not m or not (p.is_file() or p.is_dir()):  # a folder: a DICOM series being written (`atomic_dir`)
            continue
        pid, host = int(m["pid"]), m["host"]
        try:
            if host == _HOST:
                if pid == os.getpid() or _pid_alive(pid):
                    continue
            elif host is None and (pid == os.getpid() or _pid_alive(pid)):
                continue
            elif time.time() - p.stat().st_mtime < min_age_s:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:  # removed meanwhile
            continue
    return removed


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv_atomic(
    path: str | Path, rows: Iterable[Mapping[str, object]], fieldnames: Sequence[str]
) -> Path:
    """Write dict rows as CSV to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
