"""pyradiomics features of each tumour before and after super-resolution.

For each patient the tumour VOI's bounding box plus a margin (default 16 LR voxels, clipped to the
volume) is cut from the LR image and super-resolved with the upscale engine; only that crop is
ever super-resolved, with 8 voxels of the scan around it (reflected at the scan's edge) and the
whole scan's intensity scaling, so that the FFT-based skip does not ring along its faces and the
crop's SR equals the whole scan's SR inside the VOI (`srgan3d.sr.engine.upscale_box`). Pre-SR features come from the LR crop, post-SR features from the SR crop, so
pyradiomics' intensity normalisation sees the same physical region in both.

The VOI is carried to the SR grid by the affine rule of `upscaled_affine`: the binary mask is
interpolated trilinearly at the SR voxel centres ((j + 0.5)/s - 0.5 in LR index units) and
thresholded at 0.5. This keeps the VOI's volume and centroid and gives a smooth boundary rather
than the staircase of voxel replication. A re-delineated `mask_sr` in the cohort table replaces it
(it must then lie on the SR grid of `image_sr`, which is used whole instead of a crop).

Spacing policy: texture matrices work at a distance of one voxel, so features from the native LR
grid and the native SR grid describe different physical scales. ``spacing="native"`` extracts on
each image's own grid (as the published study did); ``spacing="common"`` has pyradiomics resample
both to one isotropic grid (B-spline image, nearest mask) before extraction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from srgan3d.atomic import write_text_atomic
from srgan3d.io import read_mask, read_volume, split_segment, write_volume
from srgan3d.serialisation import JsonValue, Record
from srgan3d.sr.engine import GeneratorEngine, upscale_box, upscale_box_through_plane, upscale_volume
from srgan3d.sr.method_choice import resolve_method_and_weights, through_plane_weights_sha
from srgan3d.study.config import RadiomicsConfig
from srgan3d.volume import LPS_TO_RAS, Volume, crop_affine, thickest_axis

if TYPE_CHECKING:
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Geometry


def voi_box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """Bounding box of `mask > 0.5` plus `margin` voxels, clipped to the array."""
    idx = np.argwhere(mask > 0.5)
    if len(idx) == 0:
        raise ValueError("the VOI mask is empty")
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def crop(volume: Volume, box: Sequence[slice]) -> Volume:
    """The sub-volume `box`, with its affine moved to the crop's first voxel."""
    affine = crop_affine(volume.affine, [s.start for s in box])
    return Volume(np.ascontiguousarray(volume.data[tuple(box)]), affine, dict(volume.meta))


def mask_to_sr_grid(mask: Volume, factors: Sequence[int]) -> Volume:
    """Carry a binary VOI to the upscaled grid: trilinear at the SR centres, threshold 0.5."""
    binary = Volume((mask.data > 0.5).astype(np.float32), mask.affine, dict(mask.meta))
    up = upscale_volume(binary, method="trilinear", factors=tuple(factors))
    return Volume((up.data >= 0.5).astype(np.uint8), up.affine, up.meta)


def ring_mask(tumour: Volume, width_mm: float, *, liver: Volume | None = None) -> Volume:
    """The peritumoral ring of `width_mm`: voxels outside the tumour whose centre lies within
    `width_mm` of it, by a Euclidean distance transform in millimetres on the mask's own grid
    (anisotropic voxels handled), clipped to `liver` (same grid) when given."""
    from scipy import ndimage

    inside = tumour.data > 0.5
    sp = np.asarray(tumour.spacing_mm, float)
    # Distance to the tumour's surface, not to the nearest tumour voxel's centre: the surface lies
    # between the last inside and the first outside centres, so the centre-to-centre distance is
    # shortened by a fraction of the voxel step along it (0.7 of half the step: on spheres at 0.5,
    # 1 and 2 mm voxels the 5 mm ring then lies within 5% of the analytic shell, where the plain
    # centre distance is 2-9% short on coarse grids and would make LR and SR rings differ).
    _, nearest = ndimage.distance_transform_edt(~inside, sampling=sp, return_indices=True)
    v = [(np.arange(inside.shape[k]).reshape([-1 if j == k else 1 for j in range(3)]) - nearest[k]) * sp[k]
         for k in range(3)]  # fmt: skip
    d = np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    safe = np.where(d > 0, d, 1.0)
    half_step = 0.5 * np.sqrt(sum((vk / safe * sk) ** 2 for vk, sk in zip(v, sp, strict=True)))
    ring = (~inside) & (d - 0.7 * half_step <= width_mm)
    if liver is not None:
        if liver.shape != tumour.shape:
            raise ValueError(f"liver mask grid {liver.shape} differs from the tumour mask's {tumour.shape}")
        ring &= liver.data > 0.5
    return Volume(ring.astype(np.uint8), tumour.affine.copy(), dict(tumour.meta))


def ring_leaves_image(mask: np.ndarray, spacing_mm: Sequence[float], width_mm: float) -> bool:
    """Whether a ring of `width_mm` around `mask > 0.5` would reach past the array's edge."""
    idx = np.argwhere(mask > 0.5)
    reach = np.ceil(width_mm / np.asarray(spacing_mm, float)).astype(int)
    return bool(np.any(idx.min(axis=0) - reach < 0) or np.any(idx.max(axis=0) + reach >= np.asarray(mask.shape)))


def to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image (LPS) of a Volume (RAS affine, (X, Y, Z) array)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(volume.data, (2, 1, 0))))
    lps = LPS_TO_RAS[:3, :3]  # its own inverse: RAS -> LPS
    spacing = np.asarray(volume.spacing_mm, float)
    direction = lps @ (volume.affine[:3, :3] / spacing)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    img.SetOrigin(tuple(float(v) for v in lps @ volume.affine[:3, 3]))
    return img


# --------------------------------------------------------------------------------------------
# Extraction


def make_extractor(params: str | Path, *, resample_mm: float | None = None) -> RadiomicsFeatureExtractor:
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    for name in ("radiomics", "pykwalify"):  # their INFO lines would flood the CLI
        logging.getLogger(name).setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(str(params))
    if resample_mm is not None:
        extractor.settings["resampledPixelSpacing"] = [float(resample_mm)] * 3
    else:
        extractor.settings.pop("resampledPixelSpacing", None)
    return extractor


def extract_features(extractor: RadiomicsFeatureExtractor, image: Volume, mask: Volume) -> dict[str, float]:
    """Feature name -> value (pyradiomics' diagnostics left out)."""
    binary = Volume((mask.data > 0.5).astype(np.uint8), mask.affine, mask.meta)
    result = extractor.execute(to_sitk(image), to_sitk(binary), label=1)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


# --------------------------------------------------------------------------------------------
# One patient (runs in worker processes)


def sr_files(outdir: str | Path, patient_id: str) -> tuple[Path, Path]:
    """Where `extract_cohort` keeps a patient's super-resolved VOI crop and its mask (the one home
    of this layout)."""
    folder = Path(outdir) / "sr"
    return folder / f"{patient_id}.nii.gz", folder / f"{patient_id}_mask.nii.gz"


def sr_images(row: Mapping[str, object] | pd.Series, outdir: str | Path) -> tuple[Path, Path]:
    """A patient's SR image and mask: the table's `image_sr`/`mask_sr` when given, else the crop
    that `extract_cohort` made."""
    made = sr_files(outdir, str(row["patient_id"]))
    image = Path(str(row["image_sr"])) if row.get("image_sr") else made[0]
    mask = Path(str(row["mask_sr"])) if row.get("mask_sr") else made[1]
    return image, mask

_WORKER: dict[str, object] = {}


def _engine(config: RadiomicsConfig) -> tuple[str, GeneratorEngine | None, str | None]:
    """(method, engine or None, weights sha256 or None) for this process, built once."""
    key = (config.method, config.weights, config.device)
    if _WORKER.get("key") != key:
        (method, weights), engine, sha = resolve_method_and_weights(config.method, config.weights), None, None
        if method == "generator":
            import torch

            if config.workers > 1:
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
            engine = GeneratorEngine.from_weights(weights, device=config.device)
            sha = engine.weights.sha256 if engine.weights else None
        _WORKER.update(key=key, value=(method, engine, sha))
    return _WORKER["value"]  # type: ignore[return-value]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_json(path: Path, obj: dict[str, object]) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


@dataclass(frozen=True)
class PatientFeatures(Record):
    """One patient's features before (``pre``) and after (``post``) SR, and ``info`` (spacings,
    method, crop, rings); or ``error`` (one line) when this patient failed."""

    patient_id: str
    pre: dict[str, float] = field(default_factory=dict)
    post: dict[str, float] = field(default_factory=dict)
    info: dict[str, JsonValue] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class RingFeatures:
    """One peritumoral ring's features before and after SR, and its volumes."""

    pre: dict[str, float]
    post: dict[str, float]
    info: dict[str, JsonValue]


def process_patient(args: tuple[dict[str, object], RadiomicsConfig, str, float | None]) -> PatientFeatures:
    """Super-resolve one patient's VOI crop (cached) and extract pre- and post-SR features (cached);
    a patient that fails is returned with its error, the cohort goes on."""
    row, config, outdir_s, resample_mm = args
    pid = str(row["patient_id"])
    try:
        return _process(row, config, Path(outdir_s), resample_mm)
    except Exception as exc:  # noqa: BLE001 - one bad patient is reported, the cohort goes on
        log.debug("patient %s failed", pid, exc_info=True)
        return PatientFeatures(patient_id=pid, error=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class _Crop:
    """One patient's VOI crop before SR, and how its SR counterpart is made and cached."""

    pid: str
    image: Volume  # the whole LR image (its context feeds the SR of the crop)
    box: tuple[slice, ...]
    lr: Volume
    lr_mask: Volume
    method: str
    engine: GeneratorEngine | None
    sha: str | None
    factors: tuple[int, ...]
    key: str  # the SR crop's cache key
    config: RadiomicsConfig


def _process(row: Mapping[str, object], config: RadiomicsConfig, outdir: Path, resample_mm: float | None) -> PatientFeatures:
    pid = str(row["patient_id"])
    c = _crop(row, config)
    sr, sr_mask, sr_source, sr_method = _sr_crop(row, c, outdir)
    liver_stat = os.stat(split_segment(str(row["liver_mask"]))[0]).st_mtime_ns if row.get("liver_mask") else None
    feats_key = _digest(Path(config.params).read_text(), config.spacing, resample_mm, c.key,
                        sr_source.startswith("table"), list(config.peritumoral), liver_stat)  # fmt: skip
    feats_path = outdir / "features_cache" / f"{pid}.json"
    if feats_path.is_file() and sr_source in ("cache", "table (image_sr, mask_sr)"):
        cached = json.loads(feats_path.read_text())
        if cached.get("key") == feats_key:
            return PatientFeatures.from_dict(cached["result"])
    extractor = make_extractor(config.params, resample_mm=resample_mm)
    pre = extract_features(extractor, c.lr, c.lr_mask)
    post = extract_features(extractor, sr, sr_mask)
    rings = (_ring_features(extractor, config, row, c.box, c.lr, c.lr_mask, sr, sr_mask, c.factors, c.image)
             if config.peritumoral else {})  # fmt: skip
    for width, r in rings.items():
        pre.update({f"ring{width:g}mm_{k}": v for k, v in r.pre.items()})
        post.update({f"ring{width:g}mm_{k}": v for k, v in r.post.items()})
    result = PatientFeatures(
        patient_id=pid, pre=pre, post=post,
        info={
            "method": sr_method, "sr_source": sr_source, "weights_sha256": c.sha,
            "lr_spacing_mm": list(c.lr.spacing_mm), "sr_spacing_mm": list(sr.spacing_mm),
            "voi_voxels_lr": int(c.lr_mask.data.sum()), "voi_voxels_sr": int((sr_mask.data > 0.5).sum()),
            "crop_lr": [[s.start, s.stop] for s in c.box],
            **{f"ring{w:g}mm_{k}": v for w, r in rings.items() for k, v in r.info.items()},
        },
    )  # fmt: skip
    _atomic_json(feats_path, {"key": feats_key, "result": result.to_dict()})
    return result


def _crop(row: Mapping[str, object], config: RadiomicsConfig) -> _Crop:
    """The VOI's bounding box plus the margin (wide enough for the widest ring), cropped."""
    pid = str(row["patient_id"])
    image = read_volume(str(row["image"]))
    mask = _on_grid_of(read_mask(str(row["mask"]), image), image)  # a DICOM-SEG or RTSTRUCT: on the image's grid
    if config.through_plane:
        method, engine, sha = config.method, None, _through_plane_sha(config)
        factors: tuple[int, ...] = tuple(2 if a == thickest_axis(image) else 1 for a in range(3))
    else:
        method, engine, sha = _engine(config)
        # the SR factor is the engine's (a through-plane generator has (1, 1, 2)); 2x for interpolation
        factors = tuple(int(f) for f in engine.scale) if engine is not None else (2, 2, 2)
    margin = config.margin_vox
    if config.peritumoral:  # the crop must hold the widest ring
        margin = max(margin, int(np.ceil(max(config.peritumoral) / min(image.spacing_mm))) + 2)
    box = voi_box(mask.data, margin)
    lr_mask = crop(mask, box)
    lr_mask.data = (lr_mask.data > 0.5).astype(np.uint8)
    src_stat = [os.stat(split_segment(str(row[c]))[0]).st_mtime_ns for c in ("image", "mask")]
    tp = (config.through_plane_minutes,) if config.through_plane else ()
    key = _digest(pid, method, sha, margin, src_stat, "box-context-8", factors, *tp)
    return _Crop(pid=pid, image=image, box=box, lr=crop(image, box), lr_mask=lr_mask, method=method, engine=engine,
                 sha=sha, factors=factors, key=key, config=config)  # fmt: skip


def _on_grid_of(mask: Volume, image: Volume) -> Volume:
    """The mask with the image's affine where the two grids agree within 1e-3 mm (as the cohort
    check requires): a NIfTI mask stores its affine in float32, a DICOM image's is float64, and
    pyradiomics refuses grids that differ at the 6th decimal."""
    if mask.shape == image.shape and np.allclose(mask.affine, image.affine, atol=1e-3):
        return Volume(mask.data, image.affine.copy(), mask.meta)
    return mask


def _through_plane_sha(config: RadiomicsConfig) -> str | None:
    """The sha256 of through-plane weights when `auto` uses them, else None."""
    return through_plane_weights_sha(config.weights) if config.method == "auto" else None


def _sr_crop(row: Mapping[str, object], c: _Crop, outdir: Path) -> tuple[Volume, Volume, str, str]:
    """The SR crop and its mask: the table's (image_sr, mask_sr), the cache's, or made here (and
    cached); with where they came from and the SR method that made them."""
    sr_path, sr_mask_path = sr_files(outdir, c.pid)
    sr_card = sr_path.with_name(f"{c.pid}.json")
    if row.get("image_sr") and row.get("mask_sr"):
        image_sr = read_volume(str(row["image_sr"]))
        return image_sr, read_mask(str(row["mask_sr"]), image_sr), "table (image_sr, mask_sr)", c.method
    if sr_card.is_file() and (card := json.loads(sr_card.read_text())).get("key") == c.key:
        return read_volume(sr_path), read_volume(sr_mask_path), "cache", str(card.get("method_ran", c.method))
    # With 8 voxels of the scan's own context around the crop, reflected at its edge: no
    # wrap-around ringing along the crop's faces (see `upscale_box`).
    ran = c.method
    if c.config.through_plane:
        sr, ran, _ = upscale_box_through_plane(
            c.image, c.box, method=c.method, weights=c.config.weights, minutes=c.config.through_plane_minutes,
            context=8, device=c.config.device,
        )  # fmt: skip
    else:
        sr = upscale_box(c.image, c.box, method=c.method, factors=c.factors, engine=c.engine, context=8)
    sr_mask = mask_to_sr_grid(c.lr_mask, c.factors)
    if row.get("mask_sr"):
        sr_mask = read_volume(str(row["mask_sr"]))
        if sr_mask.shape != sr.shape:
            raise ValueError(
                f"mask_sr {row['mask_sr']} has shape {sr_mask.shape}; without image_sr it must lie on "
                f"the SR grid of the VOI crop {sr.shape}: give image_sr too"
            )
    write_volume(sr, sr_path, description=f"srgan3d SR VOI {c.pid}")
    write_volume(sr_mask, sr_mask_path, description=f"srgan3d SR VOI mask {c.pid}")
    _atomic_json(sr_card, {"key": c.key, "method": c.method, "method_ran": ran, "weights_sha256": c.sha,
                           "box": str(c.box)})  # fmt: skip
    return sr, sr_mask, c.method, ran


def _ring_features(
    extractor: RadiomicsFeatureExtractor, config: RadiomicsConfig, row: Mapping[str, object], box: Sequence[slice], lr: Volume, lr_mask: Volume,
    sr: Volume, sr_mask: Volume, factors: Sequence[int], image: Volume,
) -> dict[float, RingFeatures]:  # fmt: skip
    """Features of each peritumoral ring before and after SR; the rings are made on each grid
    (`ring_mask`), clipped to the liver mask when the table gives one."""
    liver_lr = liver_sr = None
    if row.get("liver_mask"):
        liver_lr = crop(_on_grid_of(read_mask(str(row["liver_mask"]), image), image), box)
        if liver_lr.shape != lr.shape:
            raise ValueError(f"liver_mask {row['liver_mask']} does not lie on the image's grid")
        liver_sr = mask_to_sr_grid(liver_lr, factors)
        if liver_sr.shape != sr_mask.shape:
            liver_sr = None  # a table-given SR grid: the ring is not clipped there, and says so
    out: dict[float, RingFeatures] = {}
    for width in config.peritumoral:
        ring_lr = ring_mask(lr_mask, width, liver=liver_lr)
        ring_sr = ring_mask(Volume((sr_mask.data > 0.5).astype(np.uint8), sr_mask.affine, sr_mask.meta), width,
                            liver=liver_sr)  # fmt: skip
        leaves = ring_leaves_image(lr_mask.data, lr.spacing_mm, width)
        if leaves:
            log.warning("patient %s: the %g mm ring reaches the image's edge and is cut there", row["patient_id"], width)
        if ring_lr.data.sum() < 8 or ring_sr.data.sum() < 8:
            raise ValueError(f"the {width:g} mm peritumoral ring holds under 8 voxels (outside the liver mask or "
                             "the image); drop that width or check liver_mask")  # fmt: skip
        out[width] = RingFeatures(
            pre=extract_features(extractor, lr, ring_lr),
            post=extract_features(extractor, sr, ring_sr),
            info={"ml_lr": float(ring_lr.data.sum() * np.prod(lr.spacing_mm) / 1000),
                  "ml_sr": float(ring_sr.data.sum() * np.prod(sr.spacing_mm) / 1000),
                  "cut_by_image": leaves, "clipped_to_liver": liver_lr is not None},
        )  # fmt: skip
    return out


@dataclass
class FeatureTables:
    """Pre- and post-SR features (rows: patients, columns: features) and per-patient details."""

    pre: pd.DataFrame
    post: pd.DataFrame
    info: pd.DataFrame
    failed: dict[str, str]
    config: RadiomicsConfig
    resample_mm: float | None


def extract_cohort(
    table: pd.DataFrame, outdir: str | Path, config: RadiomicsConfig, *, progress: bool = False,
    only: Sequence[str] | None = None,
) -> FeatureTables:  # fmt: skip
    """Features for every patient of a validated cohort table (see `srgan3d.study.cohort.read_cohort`).

    Writes `features_pre.csv`, `features_post.csv` and `voi_info.csv` in `outdir`; SR crops go to
    `outdir/sr/` and per-patient features to `outdir/features_cache/`, both reused when nothing
    they depend on changed (each written atomically: an interrupted run resumes where it stopped).
    A patient that fails is logged and left out; the rest go on.

    `only`: extract these patients only, into the caches, and write no tables (one shard of a
    cohort on a cluster, `evaluate --extract-only --shard K/N`); everything the features depend on
    (the common spacing too) is still decided on the whole table, so that a later run over the
    whole table finds every shard's patients in the cache.
    """
    config.check_params()
    from tqdm.auto import tqdm

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = table.to_dict(orient="records")
    resample_mm = None
    if config.spacing == "common":
        resample_mm = config.common_spacing_mm
        if resample_mm is None:
            first = (
                read_volume(rows[0]["image"])
                if not rows[0].get("image_sr")
                else read_volume(rows[0]["image_sr"])
            )
            if rows[0].get("image_sr"):
                resample_mm = float(min(first.spacing_mm))
            else:  # the finest spacing of the SR grid, by the engine's own factors
                engine = None if config.through_plane else _engine(config)[1]
                factors = np.asarray(engine.scale if engine is not None else (2, 2, 2), float)
                if config.through_plane:
                    factors = np.array([2.0 if a == thickest_axis(first) else 1.0 for a in range(3)])
                resample_mm = float(min(np.asarray(first.spacing_mm) / factors))
        config = replace(config, common_spacing_mm=resample_mm)
    wanted = None if only is None else {str(p) for p in only}
    jobs = [(r, config, str(outdir), resample_mm) for r in rows if wanted is None or str(r["patient_id"]) in wanted]
    results: list[PatientFeatures] = []
    bar = tqdm(total=len(jobs), desc="radiomics pre/post SR", unit="patient", disable=not progress)
    if config.workers > 1:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            for res in pool.map(process_patient, jobs):
                results.append(res)
                bar.update()
    else:
        for job in jobs:
            results.append(process_patient(job))
            bar.update()
    bar.close()

    failed = {r.patient_id: r.error for r in results if r.error is not None}
    for pid, err in failed.items():
        log.warning("patient %s: feature extraction failed: %s", pid, err)
    ok = [r for r in results if r.error is None]
    if only is not None:  # one shard: the caches are what it leaves
        pre = pd.DataFrame([r.pre for r in ok], index=pd.Index([r.patient_id for r in ok], name="patient_id"))
        return FeatureTables(pre=pre, post=pd.DataFrame([r.post for r in ok], index=pre.index),
                             info=pd.DataFrame([r.info for r in ok], index=pre.index), failed=failed, config=config,
                             resample_mm=resample_mm)  # fmt: skip
    if not ok:
        raise RuntimeError(
            "feature extraction failed for every patient; first error: " + next(iter(failed.values()))
        )
    pre = pd.DataFrame([r.pre for r in ok], index=pd.Index([r.patient_id for r in ok], name="patient_id"))
    post = pd.DataFrame([r.post for r in ok], index=pre.index)
    info = pd.DataFrame([r.info for r in ok], index=pre.index)
    for name, df in (("features_pre.csv", pre), ("features_post.csv", post), ("voi_info.csv", info)):
        write_text_atomic(outdir / name, df.to_csv())
    return FeatureTables(pre=pre, post=post, info=info, failed=failed, config=config, resample_mm=resample_mm)
