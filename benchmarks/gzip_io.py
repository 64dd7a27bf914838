"""Writing and reading a clinical-size SR output (640x640x160 float32, 262 MB): nibabel's own
gzip (zlib level 1) against ISA-L's threaded igzip (python-isal), and uncompressed .nii.

    python benchmarks/gzip_io.py [--shape 640,640,160] [--json out.json]

The volume is a smooth random field at scanner-like intensities plus 0.5% noise, which
compresses like an MRI (mostly texture, some air).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, igzip_threaded
from scipy import ndimage


def volume(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = ndimage.gaussian_filter(rng.random(tuple(n // 4 for n in shape), dtype=np.float32), 2)
    data = ndimage.zoom(small, 4, order=1)[tuple(slice(0, n) for n in shape)] * 1000
    data[data < np.percentile(data, 20)] = 0  # air
    return (data + rng.normal(0, 5, data.shape) * (data > 0)).astype(np.float32)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="640,640,160")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    img = nib.Nifti1Image(volume(shape), np.diag([0.75, 0.75, 1.5, 1.0]))
    threads = max(1, min(4, os.cpu_count() or 1))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        rows["write .nii"] = timed(lambda: nib.save(img, str(t / "a.nii")))
        rows["write .nii.gz nibabel zlib-1"] = timed(lambda: nib.save(img, str(t / "a.nii.gz")))

        def isal_write(level: int, n: int) -> None:
            with igzip_threaded.open(t / f"b{level}.nii.gz", "wb", compresslevel=level, threads=n) as f:
                f.write(img.to_bytes())

        for level in (1, 2):
            rows[f"write .nii.gz isal-{level} {threads} threads"] = timed(lambda level=level: isal_write(level, threads))
        sizes = {p.name: p.stat().st_size for p in t.iterdir()}
        assert gzip.decompress((t / "b1.nii.gz").read_bytes()) == img.to_bytes()  # standard gzip, same bytes
        rows["read .nii.gz nibabel"] = timed(lambda: nib.load(str(t / "a.nii.gz")).get_fdata(dtype=np.float32))
        rows["read .nii.gz isal"] = timed(
            lambda: nib.Nifti1Image.from_bytes(igzip.decompress((t / "a.nii.gz").read_bytes())).get_fdata(dtype=np.float32)
        )
        rows["read .nii"] = timed(lambda: nib.load(str(t / "a.nii")).get_fdata(dtype=np.float32))
    result = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "shape": shape, "seconds": rows, "bytes": sizes,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
