"""Quality of 2x super-resolution on held-out real MRI: PSNR, SSIM, radiomic fidelity, hallucination.

Usage:
    python benchmarks/quality.py VOLUME... [--weights NAME_OR_PATH ...] [--adapt STEPS] [--json out.json]

Each volume (never used in training) is scaled to [0, 1] by its robust range, cropped to even
lengths, degraded 2x by grid-consistent k-space truncation, and upscaled by every method. Scores
against the original:

- PSNR and SSIM over the foreground.
- Radiomic fidelity: pyradiomics first-order, GLCM, GLRLM and GLSZM features in spherical VOIs
  (radius 12 mm, centred on foreground voxels drawn with a fixed seed) on the upscaled and on the
  true volume; the concordance correlation coefficient (CCC) of each feature across VOIs; the
  median CCC over features.
- Hallucination: the output's energy outside the input's k-space band, relative to the truth's
  there (`hf_ratio`), and the error in that band relative to the truth's energy there
  (`hf_error`): below 1 the added detail correlates with the truth; 1 is what adding nothing
  scores; above 1 the detail is invented.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from srgan3d.provenance import versions
from srgan3d.sr.adapt import adapt_generator
from srgan3d.sr.degrade import crop_to_multiple, degrade_array, sinc_upsample, spline_upsample
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.weights import load_generator
from srgan3d.volume import Volume, read_volume

FEATURE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm")


def ccc(a: np.ndarray, b: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(), b.var()
    denom = va + vb + (a.mean() - b.mean()) ** 2
    return float(2 * np.cov(a, b, bias=True)[0, 1] / denom) if denom > 0 else float("nan")


def sphere_vois(
    mask: np.ndarray, spacing: tuple[float, ...], *, n: int, radius_mm: float, seed: int
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    r_vox = [radius_mm / s for s in spacing]
    inner = np.argwhere(mask)
    inner = inner[np.all((inner >= np.ceil(r_vox)) & (inner < np.array(mask.shape) - np.ceil(r_vox)), axis=1)]
    if len(inner) == 0:
        return []
    grid = np.indices(mask.shape, dtype=np.float32)
    vois = []
    for c in inner[rng.choice(len(inner), size=min(n, len(inner)), replace=False)]:
        d2 = sum(((grid[i] - c[i]) / r_vox[i]) ** 2 for i in range(3))
        voi = (d2 <= 1) & mask
        if voi.sum() >= 64:
            vois.append(voi)
    return vois


def radiomic_features(image: np.ndarray, vois: list[np.ndarray], spacing: tuple[float, ...]) -> np.ndarray:
    """(n_vois, n_features) pyradiomics features; bin width 0.025 on the [0, 1] intensity scale."""
    import radiomics
    import SimpleITK as sitk
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    ex = featureextractor.RadiomicsFeatureExtractor(binWidth=0.025)
    ex.disableAllFeatures()
    for c in FEATURE_CLASSES:
        ex.enableFeatureClassByName(c)
    img = sitk.GetImageFromArray(np.transpose(image, (2, 1, 0)).astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing))
    rows = []
    names: list[str] = []
    for voi in vois:
        m = sitk.GetImageFromArray(np.transpose(voi, (2, 1, 0)).astype(np.uint8))
        m.CopyInformation(img)
        feats = {k: float(v) for k, v in ex.execute(img, m).items() if not k.startswith("diagnostics")}
        names = sorted(feats)
        rows.append([feats[k] for k in names])
    return np.array(rows)


def hallucination(truth: np.ndarray, sr: np.ndarray, lr_shape: tuple[int, ...]) -> tuple[float, float]:
    ft, fs = np.fft.fftn(truth), np.fft.fftn(sr)
    band = np.ones(truth.shape, bool)
    for axis, (n, m) in enumerate(zip(truth.shape, lr_shape, strict=True)):
        k = np.abs(np.fft.fftfreq(n, 1.0 / n))
        shape = [1] * 3
        shape[axis] = n
        band &= (k <= m / 2).reshape(shape)  # the Nyquist bin is shared by both grids
    hf = ~band
    e_truth = float(np.sum(np.abs(ft[hf]) ** 2))
    return float(np.sum(np.abs(fs[hf]) ** 2) / e_truth), float(np.sum(np.abs(fs[hf] - ft[hf]) ** 2) / e_truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("volumes", nargs="+")
    ap.add_argument("--weights", action="append", default=[], help="generator weights (repeatable)")
    ap.add_argument(
        "--adapt",
        type=int,
        default=0,
        help="also the first weights adapted to each scan for STEPS steps (upscale --adapt)",
    )
    ap.add_argument("--vois", type=int, default=24)
    ap.add_argument("--json", default="benchmarks/quality.json")
    args = ap.parse_args()

    engines = {}
    models = []
    for w in args.weights:
        model, info = load_generator(w)
        models.append((info.name, model))
        engines[info.name] = GeneratorEngine(model, device=torch.device("cpu"))
    results = []
    for path in args.volumes:
        vol = crop_to_multiple(read_volume(path), 2)
        hr = IntensityScaling.fit(vol.data).forward(vol.data)
        lr = degrade_array(hr, 2)
        mask = foreground_mask(hr)
        outputs = {
            "nearest": spline_upsample(lr, 2, order=0),
            "trilinear": spline_upsample(lr, 2, order=1),
            "tricubic": spline_upsample(lr, 2, order=3),
            "sinc": sinc_upsample(lr, 2),
        }
        seconds = {}
        for name, engine in engines.items():
            t0 = time.perf_counter()
            outputs[name] = engine.run(lr)
            seconds[name] = time.perf_counter() - t0
        if args.adapt and models:
            name, model = models[0]
            t0 = time.perf_counter()
            adapted, _ = adapt_generator(
                model, Volume(lr, np.diag([*(2 * np.asarray(vol.spacing_mm)), 1.0])), steps=args.adapt
            )
            outputs[f"{name} + adapt {args.adapt}"] = GeneratorEngine(
                adapted, device=torch.device("cpu")
            ).run(lr)
            seconds[f"{name} + adapt {args.adapt}"] = time.perf_counter() - t0
        vois = sphere_vois(mask, vol.spacing_mm, n=args.vois, radius_mm=12.0, seed=0)
        truth_feats = radiomic_features(hr, vois, vol.spacing_mm) if vois else None
        for method, sr in outputs.items():
            row = {
                "volume": Path(path).name,
                "method": method,
                "psnr_db": psnr(hr, sr, mask=mask),
                "ssim": ssim(hr, sr, mask=mask),
            }
            row["hf_ratio"], row["hf_error"] = hallucination(hr, sr, lr.shape)
            if truth_feats is not None:
                f = radiomic_features(sr, vois, vol.spacing_mm)
                cccs = [ccc(truth_feats[:, j], f[:, j]) for j in range(f.shape[1])]
                row["median_ccc"] = float(np.nanmedian(cccs))
                row["n_vois"] = len(vois)
            if method in seconds:
                row["seconds"] = seconds[method]
            results.append(row)
            print(
                f"{row['volume']:40s} {method:18s} PSNR {row['psnr_db']:6.2f}  SSIM {row['ssim']:.4f}  "
                f"CCC {row.get('median_ccc', float('nan')):.4f}  HF ratio {row['hf_ratio']:.3f} error {row['hf_error']:.3f}",
                flush=True,
            )
    out = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/quality.py "
        + " ".join(args.volumes)
        + "".join(f" --weights {w}" for w in args.weights)
        + (f" --adapt {args.adapt}" if args.adapt else "")
        + f" --vois {args.vois}",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "results": results,
        "versions": versions(),
    }
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
