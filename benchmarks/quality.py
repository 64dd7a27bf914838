"""Quality of 2x super-resolution on held-out real MRI: PSNR, SSIM, radiomic fidelity, hallucination.

Usage:
    python benchmarks/quality.py VOLUME[:T1|:T2]... [--weights NAME_OR_PATH ...] [--adapt STEPS]
        [--masks MASK|- ...] [--json out.json] [--card NAME_OR_PATH]

A volume may carry its contrast after a colon (`scan.nii.gz:T1`); results and the model card
report T1- and T2-weighted volumes apart.

Each volume (never used in training or for picking anything) is cropped to even lengths, degraded
2x by grid-consistent k-space truncation in its own units (`srgan3d.sr.degrade`, as a scanner
acquiring half the matrix), and upscaled by every method exactly as `srgan3d upscale` does it
(`srgan3d.sr.engine.upscale_volume`: intensity scaling, background kept, and for each generator
with and without k-space data consistency). The truth and the outputs are then scaled by the
truth's robust range (one linear map, so PSNR and SSIM are those of the scan units) and scored:

- PSNR and SSIM over the foreground.
- Radiomic fidelity: pyradiomics first-order, GLCM, GLRLM and GLSZM features in spherical VOIs
  (radius 12 mm, centred on foreground voxels drawn with a fixed seed) on the upscaled and on the
  true volume; the concordance correlation coefficient (CCC) of each feature across VOIs; the
  median CCC over features.
- Hallucination: the output's energy outside the input's k-space band, relative to the truth's
  there (`hf_ratio`), and the error in that band relative to the truth's energy there
  (`hf_error`): below 1 the added detail correlates with the truth; 1 is what adding nothing
  scores; above 1 the detail is invented.

- Radiomic fidelity on real anatomy (`--masks`, one per volume in order, `-` for none): each
  label of an organ mask on the truth's grid (default CHAOS labels 1 liver, 2 right kidney,
  3 left kidney, 4 spleen; `--labels`) is a VOI; pyradiomics features of the same classes inside
  it on the truth, on zero-filled k-space and on each generator's output (all on the truth's
  grid); per feature class the median relative error |f - f_truth| / |f_truth| over features and
  organs. Does SR move the features toward the truth?

`--card W` writes the per-volume PSNR gains over zero-filled k-space of weights W (with data
consistency, the default) into W's model card under "heldout_abdominal_mri"; `--method auto` uses
a generator only when that record shows a gain (`srgan3d.sr.weights.auto_eligibility`). Give it
only volumes that trained nothing and picked nothing.
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

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_volume
from srgan3d.provenance import versions
from srgan3d.sr.adapt import adapt_generator
from srgan3d.sr.degrade import crop_to_multiple, degrade_volume
from srgan3d.sr.engine import GeneratorEngine, IntensityScaling, upscale_volume
from srgan3d.sr.metrics import foreground_mask, psnr, ssim
from srgan3d.sr.weights import HELDOUT_KEY, auto_eligibility, find_weights

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


def _extractor_and_image(image: np.ndarray, spacing: tuple[float, ...]):
    """A pyradiomics extractor of FEATURE_CLASSES (bin width 0.025 on the [0, 1] intensity scale)
    and `image` as a SimpleITK image with `spacing`."""
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
    return ex, img


def radiomic_features(image: np.ndarray, vois: list[np.ndarray], spacing: tuple[float, ...]) -> np.ndarray:
    """(n_vois, n_features) pyradiomics features; bin width 0.025 on the [0, 1] intensity scale."""
    import SimpleITK as sitk

    ex, img = _extractor_and_image(image, spacing)
    rows = []
    names: list[str] = []
    for voi in vois:
        m = sitk.GetImageFromArray(np.transpose(voi, (2, 1, 0)).astype(np.uint8))
        m.CopyInformation(img)
        feats = {k: float(v) for k, v in ex.execute(img, m).items() if not k.startswith("diagnostics")}
        names = sorted(feats)
        rows.append([feats[k] for k in names])
    return np.array(rows)


def organ_vois(mask: np.ndarray, labels: dict[int, str]) -> dict[str, np.ndarray]:
    """One boolean VOI per label present in `mask` with at least 64 voxels."""
    out = {}
    for value, name in labels.items():
        voi = mask == value
        if int(voi.sum()) >= 64:
            out[name] = voi
    return out


def relative_errors_by_class(truth: dict[str, float], other: dict[str, float]) -> dict[str, list[float]]:
    """|f - f_truth| / |f_truth| per feature, grouped by feature class (features whose truth is
    exactly zero are left out: no relative error exists)."""
    out: dict[str, list[float]] = {c: [] for c in FEATURE_CLASSES}
    for name, t in truth.items():
        cls = name.split("_")[1] if name.count("_") >= 2 else ""
        if cls in out and t != 0 and np.isfinite(t) and np.isfinite(other[name]):
            out[cls].append(abs(other[name] - t) / abs(t))
    return out


def named_features(image: np.ndarray, voi: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """pyradiomics features (FEATURE_CLASSES) of one VOI, by name; bin width 0.025 on [0, 1]."""
    import SimpleITK as sitk

    ex, img = _extractor_and_image(image, spacing)
    m = sitk.GetImageFromArray(np.transpose(voi, (2, 1, 0)).astype(np.uint8))
    m.CopyInformation(img)
    return {k: float(v) for k, v in ex.execute(img, m).items() if not k.startswith("diagnostics")}


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
    ap.add_argument("--vois", type=int, default=16)
    ap.add_argument("--masks", nargs="+", default=[], help="organ mask per volume, in order ('-': none)")
    ap.add_argument("--labels", default="1=liver,2=kidney_right,3=kidney_left,4=spleen")
    ap.add_argument("--json", default="benchmarks/quality.json")
    ap.add_argument(
        "--card", action="append", default=[], help="record these weights' held-out result in their model card (repeatable)"
    )
    args = ap.parse_args()

    engines: dict[str, GeneratorEngine] = {}
    infos = {}
    for w in args.weights:
        engine = GeneratorEngine.from_weights(w, device="cpu")
        assert engine.weights is not None
        name = engine.weights.name
        infos[name] = engine.weights
        engines[name] = engine
        engines[f"{name} (no DC)"] = GeneratorEngine(engine.model, device=engine.device, dc=False)
    if args.masks and len(args.masks) != len(args.volumes):
        raise SystemExit(f"--masks: give one per volume ({len(args.volumes)}), '-' for none; got {len(args.masks)}")
    labels = {int(k): v for k, v in (item.split("=") for item in args.labels.split(","))}
    results = []
    organ_rows: list[dict] = []
    for k_vol, spec in enumerate(args.volumes):
        path, _, contrast = spec.partition(":")
        vol = crop_to_multiple(read_volume(path), 2)
        lr_vol = degrade_volume(vol, 2)
        scaling = IntensityScaling.fit(vol.data)
        hr = scaling.forward(vol.data)
        mask = foreground_mask(hr)
        outputs = {}
        seconds = {}
        for method in ("nearest", "trilinear", "tricubic", "sinc"):
            outputs[method] = scaling.forward(upscale_volume(lr_vol, method=method).data)
        for name, engine in engines.items():
            t0 = time.perf_counter()
            outputs[name] = scaling.forward(upscale_volume(lr_vol, method="generator", engine=engine).data)
            seconds[name] = time.perf_counter() - t0
        if args.adapt and args.weights:
            name = next(iter(infos))
            t0 = time.perf_counter()
            adapted, _ = adapt_generator(engines[name].model, lr_vol, steps=args.adapt)
            key = f"{name} + adapt {args.adapt}"
            outputs[key] = scaling.forward(
                upscale_volume(lr_vol, method="generator", engine=GeneratorEngine(adapted, device=torch.device("cpu"))).data
            )
            seconds[key] = time.perf_counter() - t0
        vois = sphere_vois(mask, vol.spacing_mm, n=args.vois, radius_mm=12.0, seed=0) if args.vois else []
        truth_feats = radiomic_features(hr, vois, vol.spacing_mm) if vois else None
        for method, sr in outputs.items():
            row = {
                "volume": Path(path).name,
                "contrast": contrast or "",
                "shape": list(vol.shape),
                "method": method,
                "psnr_db": psnr(hr, sr, mask=mask),
                "ssim": ssim(hr, sr, mask=mask),
            }
            row["hf_ratio"], row["hf_error"] = hallucination(hr, sr, lr_vol.shape)
            if truth_feats is not None:
                f = radiomic_features(sr, vois, vol.spacing_mm)
                cccs = [ccc(truth_feats[:, j], f[:, j]) for j in range(f.shape[1])]
                row["median_ccc"] = float(np.nanmedian(cccs))
                row["n_vois"] = len(vois)
            if method in seconds:
                row["seconds"] = seconds[method]
            results.append(row)
        mask_path = args.masks[k_vol] if args.masks else "-"
        if mask_path != "-":
            organ_rows += organ_fidelity(mask_path, vol, hr, outputs, labels, volume=Path(path).name)
        sinc = next(r for r in results if r["volume"] == Path(path).name and r["method"] == "sinc")
        for r in results:
            if r["volume"] == sinc["volume"]:
                r["psnr_gain_db"] = r["psnr_db"] - sinc["psnr_db"]
                print(
                    f"{r['volume']:40s} {r['method']:26s} PSNR {r['psnr_db']:6.2f} ({r['psnr_gain_db']:+.2f})  "
                    f"SSIM {r['ssim']:.4f}  CCC {r.get('median_ccc', float('nan')):.4f}  "
                    f"HF ratio {r['hf_ratio']:.3f} error {r['hf_error']:.3f}",
                    flush=True,
                )
    command = (
        "python benchmarks/quality.py " + " ".join(args.volumes) + "".join(f" --weights {w}" for w in args.weights)
        + (f" --adapt {args.adapt}" if args.adapt else "") + f" --vois {args.vois}"
        + (" --masks " + " ".join(args.masks) if args.masks else "")
        + "".join(f" --card {c}" for c in args.card)
    )  # fmt: skip
    out = {
        "date": date.today().isoformat(),
        "command": command,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        # What each generator ran in: bf16 where the CPU has bf16 units, fp32 elsewhere.
        "precision": {name: engine.precision for name, engine in engines.items()},
        "results": results,
        "organ_fidelity": organ_rows,
        "organ_fidelity_summary": summarise_organs(organ_rows),
        "versions": versions(),
    }
    write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
    if organ_rows:
        print_organ_summary(out["organ_fidelity_summary"])
    for card in args.card:
        record_in_card(
            card, results, command=command, organs=out["organ_fidelity_summary"], precision=out["precision"]
        )


def organ_fidelity(
    mask_path: str, vol, hr: np.ndarray, outputs: dict[str, np.ndarray], labels: dict[int, str], *, volume: str
) -> list[dict]:
    """Per organ and method: the median relative feature error per class against the truth."""
    mask_vol = read_volume(mask_path)
    mask = np.rint(mask_vol.data[tuple(slice(0, n) for n in vol.shape)]).astype(int)
    if mask.shape != vol.shape:
        raise SystemExit(f"{mask_path}: mask shape {mask_vol.shape} does not cover the volume's {vol.shape}")
    rows = []
    for organ, voi in organ_vois(mask, labels).items():
        truth = named_features(hr, voi, vol.spacing_mm)
        for method, sr in outputs.items():
            if method in ("nearest", "trilinear") or "(no DC)" in method:  # what `upscale` gives only
                continue
            errs = relative_errors_by_class(truth, named_features(sr, voi, vol.spacing_mm))
            row = {"volume": volume, "organ": organ, "voxels": int(voi.sum()), "method": method}
            row.update({f"{c}_median_rel_error": float(np.median(v)) if v else float("nan") for c, v in errs.items()})
            row["all_median_rel_error"] = float(np.median([e for v in errs.values() for e in v]))
            rows.append(row)
    return rows


def summarise_organs(rows: list[dict]) -> list[dict]:
    """Per method: the median over organs and volumes of each class's median relative error, and
    the share of organs where the method's overall error is below zero-filled k-space's."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        summary: dict = {"method": method, "organs": len(mine)}
        for c in (*FEATURE_CLASSES, "all"):
            summary[f"{c}_median_rel_error"] = float(np.nanmedian([r[f"{c}_median_rel_error"] for r in mine]))
        sinc = {(r["volume"], r["organ"]): r["all_median_rel_error"] for r in rows if r["method"] == "sinc"}
        closer = [r["all_median_rel_error"] < sinc[(r["volume"], r["organ"])] for r in mine]
        summary["organs_closer_than_sinc"] = int(sum(closer))
        out.append(summary)
    return out


def print_organ_summary(summary: list[dict]) -> None:
    print("\nRadiomic fidelity in organ VOIs: median relative error against the truth (lower is truer)")
    print(f"{'method':28s} " + " ".join(f"{c:>10s}" for c in (*FEATURE_CLASSES, "all")) + "  closer than sinc")
    for s in summary:
        vals = " ".join(f"{s[f'{c}_median_rel_error']:10.4f}" for c in (*FEATURE_CLASSES, "all"))
        print(f"{s['method']:28s} {vals}  {s['organs_closer_than_sinc']}/{s['organs']}")


def record_in_card(
    weights: str, results: list[dict], *, command: str, organs: list[dict] | None = None,
    precision: dict[str, str] | None = None,
) -> None:  # fmt: skip
    """Write the held-out result of `weights` (with data consistency) into its model card."""
    info = find_weights(weights)
    by_volume = {r["volume"]: r for r in results if r["method"] == "sinc"}
    vols = []
    for r in results:
        if r["method"] == info.name:
            s = by_volume[r["volume"]]
            vols.append(
                {
                    "name": r["volume"], "contrast": r.get("contrast", ""), "shape": r["shape"],
                    "psnr_db": round(r["psnr_db"], 4),
                    "psnr_sinc_db": round(s["psnr_db"], 4), "psnr_gain_db": round(r["psnr_db"] - s["psnr_db"], 4),
                    "ssim": round(r["ssim"], 5), "ssim_sinc": round(s["ssim"], 5),
                    "median_ccc": r.get("median_ccc"), "median_ccc_sinc": s.get("median_ccc"),
                }  # fmt: skip
            )
    if not vols:
        raise SystemExit(f"--card {weights}: no results for {info.name}; pass it with --weights too")
    gains = [v["psnr_gain_db"] for v in vols]
    card = dict(info.card)
    card[HELDOUT_KEY] = {
        "protocol": "2x grid-consistent k-space truncation in scan units, upscaled as `srgan3d upscale` "
        "does with data consistency; PSNR/SSIM over the foreground",
        "volumes": vols,
        "mean_gain_db": round(float(np.mean(gains)), 4),
        "min_gain_db": round(float(np.min(gains)), 4),
        "mean_gain_db_by_contrast": {
            c: round(float(np.mean([v["psnr_gain_db"] for v in vols if v["contrast"] == c])), 4)
            for c in sorted({v["contrast"] for v in vols if v["contrast"]})
        },
        "organ_radiomic_fidelity": [o for o in (organs or []) if o["method"] in ("sinc", info.name)],
        "data_consistency": True,
        "precision": (precision or {}).get(info.name, "fp32"),
        "date": date.today().isoformat(),
        "command": command,
    }
    write_text_atomic(info.path.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    md_path = info.path.with_suffix(".md")
    md = md_path.read_text().split("\n## Held-out test")[0].rstrip() if md_path.exists() else f"# {info.name}"
    lines = [
        md, "", "## Held-out test on real abdominal MRI", "",
        f"Never used for training or for picking anything; {card[HELDOUT_KEY]['protocol']}. "
        f"Command: `{command}` ({card[HELDOUT_KEY]['date']}).", "",
        "| volume | contrast | shape | zero-filled k-space dB | this model dB | gain dB | SSIM zero-fill | SSIM model |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *(
            f"| {v['name']} | {v['contrast'] or '?'} | {'x'.join(map(str, v['shape']))} | {v['psnr_sinc_db']:.2f} | {v['psnr_db']:.2f} | "
            f"{v['psnr_gain_db']:+.2f} | {v['ssim_sinc']:.4f} | {v['ssim']:.4f} |"
            for v in vols
        ),
        "", f"Mean gain {card[HELDOUT_KEY]['mean_gain_db']:+.2f} dB, worst volume {card[HELDOUT_KEY]['min_gain_db']:+.2f} dB"
        + "".join(f"; {c}: {g:+.2f} dB" for c, g in card[HELDOUT_KEY]["mean_gain_db_by_contrast"].items()) + ".", "",
    ]  # fmt: skip
    if card[HELDOUT_KEY]["organ_radiomic_fidelity"]:
        lines += [
            "Radiomic fidelity in real organ VOIs (liver, kidneys, spleen of the held-out CHAOS subjects): "
            "median relative feature error against the truth, per class (lower is truer):", "",
            "| method | " + " | ".join((*FEATURE_CLASSES, "all")) + " | organs closer than zero-fill |",
            "|---|" + "---:|" * (len(FEATURE_CLASSES) + 2),
            *(
                f"| {o['method']} | " + " | ".join(f"{o[f'{c}_median_rel_error']:.4f}" for c in (*FEATURE_CLASSES, "all"))
                + f" | {o['organs_closer_than_sinc']}/{o['organs']} |"
                for o in card[HELDOUT_KEY]["organ_radiomic_fidelity"]
            ),
            "",
        ]  # fmt: skip
    write_text_atomic(md_path, "\n".join(lines))
    ok, why = auto_eligibility(find_weights(weights))
    print(f"model card of {info.name} updated; --method auto {'uses' if ok else 'does not use'} it: {why}")


if __name__ == "__main__":
    main()
