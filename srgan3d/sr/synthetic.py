"""Synthetic arterial-phase abdominal MRI phantoms with a liver tumour.

Shapes are defined in millimetres, so one phantom can be rendered at any resolution. Intensities
imitate a fat-suppressed T1 arterial phase: arteries and the enhancing tumour bright, liver
intermediate with fine texture, portal veins moderately enhanced, necrosis and the tumour capsule
dark. A smooth multiplicative bias field and Rician noise finish it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from srgan3d.provenance import write_csv_atomic, write_text_atomic
from srgan3d.volume import Volume


@dataclass(frozen=True)
class TumourSpec:
    """A hepatocellular-carcinoma-like lesion.

    Attributes:
        diameter_mm: longest diameter.
        enhancement: arterial hyperenhancement of viable tumour relative to liver (0 = none).
        necrosis: fraction of the radius that is a non-enhancing core (0 = none).
        capsule: whether a thin non-enhancing capsule surrounds it.
        texture: strength of fine (1-3 mm) heterogeneity inside the tumour.
        halo: arterial hyperenhancement of the liver within 5 mm outside the tumour (a
            peritumoral signal; 0 = none).
    """

    diameter_mm: float = 40.0
    enhancement: float = 0.8
    necrosis: float = 0.3
    capsule: bool = True
    texture: float = 0.25
    halo: float = 0.0


#: Version of the cohort's files and columns (2: liver masks, AST, peritumoral halo; 3: overall
#: survival and three simulated readers).
COHORT_FORMAT = 3


@dataclass
class Phantom:
    """A rendered phantom: the image, the tumour mask and the liver mask share one grid."""

    image: Volume
    tumour_mask: Volume
    tumour: TumourSpec
    liver_mask: Volume | None = None


def _smooth_noise(shape: tuple[int, ...], sigma_vox: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-8)


def _ellipsoid(
    p: np.ndarray, centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> np.ndarray:
    """Signed-ish distance: < 1 inside the ellipsoid, in units of its radii."""
    return np.sqrt(sum(((p[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))


def _tube(p: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of a tube of `radius` mm around a polyline of (N, 3) points (mm)."""
    mask = np.zeros(p.shape[1:], bool)
    for a, b in zip(points[:-1], points[1:], strict=True):
        ab = b - a
        t = np.clip(sum((p[i] - a[i]) * ab[i] for i in range(3)) / (ab @ ab + 1e-9), 0, 1)
        d2 = sum((p[i] - (a[i] + t * ab[i])) ** 2 for i in range(3))
        mask |= d2 < radius * radius
    return mask


def make_phantom(
    shape: tuple[int, int, int] = (192, 160, 64),
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.5),
    *,
    tumour: TumourSpec | None = None,
    seed: int = 0,
    noise: float = 0.01,
    bias: float = 0.15,
) -> Phantom:
    """Render an axial abdominal phantom centred on the liver dome.

    Args:
        shape: voxels along X (right->left), Y (posterior->anterior), Z (inferior->superior).
        spacing_mm: voxel size; the affine is RAS+ with the grid centred on the origin.
        tumour: the lesion; None draws a default one.
        seed: seeds anatomy jitter, textures, vessels and noise.
        noise: Rician noise sigma relative to the liver signal.
        bias: amplitude of the multiplicative bias field.
    """
    rng = np.random.default_rng(seed)
    tumour = tumour or TumourSpec()
    sp = np.asarray(spacing_mm, float)
    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = -sp * (np.asarray(shape) - 1) / 2.0
    idx = np.indices(shape, dtype=np.float32)
    p = np.stack([idx[i] * sp[i] + affine[i, 3] for i in range(3)]).astype(np.float32)
    half = sp * np.asarray(shape) / 2.0
    j = lambda s=0.05: 1 + rng.uniform(-s, s)  # noqa: E731 - anatomy jitter

    # Body outline and subcutaneous fat (fat suppressed: moderately dark), muscle wall.
    bx, by = 0.46 * 2 * half[0] * j(), 0.40 * 2 * half[1] * j()
    body_r = np.sqrt((p[0] / bx) ** 2 + (p[1] / by) ** 2)
    img = np.zeros(shape, np.float32)
    img[body_r < 1.0] = 0.35
    img[body_r < 0.93] = 0.45  # muscle wall
    img[body_r < 0.86] = 0.30  # visceral fat
    # Spine (posterior midline) and paraspinal muscles.
    spine = _ellipsoid(p, (0, -0.55 * by, 0), (18, 16, 1e6)) < 1
    img[_ellipsoid(p, (0, -0.6 * by, 0), (55, 28, 1e6)) < 1] = 0.42
    img[spine] = 0.20

    liver_c = (-0.30 * bx * j(), 0.05 * by * j(), 0.1 * half[2])
    liver_r = (0.52 * bx * j(), 0.62 * by * j(), 1.6 * half[2])
    liver = _ellipsoid(p, liver_c, liver_r) < 1
    liver &= body_r < 0.84
    texture = _smooth_noise(shape, 1.2 / sp, rng)
    img[liver] = (0.55 + 0.03 * texture)[liver]
    spleen = (
        _ellipsoid(p, (0.55 * bx, -0.20 * by, 0), (0.20 * bx * j(), 0.25 * by * j(), 0.9 * half[2])) < 1
    ) & ~liver
    img[spleen] = (0.75 + 0.08 * _smooth_noise(shape, 3.0 / sp, rng))[spleen]  # arterial-phase moire
    for side in (-1, 1):
        kc = (side * 0.35 * bx, -0.42 * by, -0.5 * half[2])
        k = _ellipsoid(p, kc, (28 * j(), 24 * j(), 50 * j()))
        cortex = (k < 1) & (k >= 0.7) & ~liver
        medulla = (k < 0.7) & ~liver
        img[cortex] = 0.95
        img[medulla] = 0.45

    # Aorta (left of midline, anterior to spine) and hepatic arteries; portal veins in the liver.
    aorta = _ellipsoid(p, (0.06 * bx, -0.30 * by, 0), (11, 11, 1e6)) < 1
    img[aorta] = 1.0
    hilum = np.array(
        [liver_c[0] + 0.3 * liver_r[0], liver_c[1] - 0.1 * liver_r[1], liver_c[2] - 0.4 * liver_r[2]]
    )
    for n_branch, (radius, value) in enumerate([(1.6, 0.95)] * 5 + [(3.0, 0.68)] * 4):
        pts = [hilum.copy()]
        direction = rng.normal(size=3)
        direction[0] = -abs(direction[0])
        direction /= np.linalg.norm(direction)
        for _ in range(6):
            direction = direction + 0.45 * rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            pts.append(pts[-1] + direction * rng.uniform(10, 18))
        vessel = _tube(p, np.array(pts), radius * (0.8 if n_branch % 2 else 1.0)) & liver
        img[vessel] = value

    # Tumour: perturbed sphere in the right lobe, enhancing viable rim, necrotic core, capsule.
    r_mm = tumour.diameter_mm / 2
    tc = np.array(
        [liver_c[0] - 0.25 * liver_r[0], liver_c[1] + 0.15 * liver_r[1], liver_c[2] - 0.2 * liver_r[2]]
    )
    tc += rng.uniform(-5, 5, 3)
    d = np.sqrt(sum((p[i] - tc[i]) ** 2 for i in range(3)))
    lobes = 1 + 0.12 * _smooth_noise(shape, 8.0 / sp, rng)
    rel = d / (r_mm * lobes)
    tumour_mask = (rel < 1) & (body_r < 0.84)
    fine = _smooth_noise(shape, 0.8 / sp, rng)
    viable = 0.55 * (1 + tumour.enhancement) * (1 + tumour.texture * 0.5 * fine)
    img[tumour_mask] = viable[tumour_mask]
    if tumour.necrosis > 0:
        core = tumour_mask & (rel < tumour.necrosis)
        img[core] = (0.22 + 0.03 * fine)[core]
    if tumour.capsule:
        cap = (rel >= 1) & (rel < 1 + 1.5 / r_mm) & liver
        img[cap] = 0.35
        tumour_mask |= (rel < 1 + 1.5 / r_mm) & (body_r < 0.84)
    if tumour.halo > 0:
        halo = (rel < 1 + 5.0 / r_mm) & ~tumour_mask & liver
        img[halo] = img[halo] * (1 + tumour.halo)
    liver_mask = liver | tumour_mask

    bias_field = 1 + bias * _smooth_noise(shape, 60.0 / sp, rng)
    img = img * bias_field  # type: ignore[assignment]  # float64 until the final cast
    if noise > 0:
        sigma = noise * 0.55
        img = np.sqrt((img + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    # Scale into a scanner-like integer range.
    img = (img * 1000.0).astype(np.float32)
    meta = {"source": "srgan3d.sr.synthetic.make_phantom", "seed": seed, "sform_code": 1, "qform_code": 1}
    return Phantom(
        image=Volume(img, affine, meta),
        tumour_mask=Volume(tumour_mask.astype(np.float32), affine.copy(), dict(meta)),
        tumour=tumour,
        liver_mask=Volume(liver_mask.astype(np.float32), affine.copy(), dict(meta)),
    )


# --------------------------------------------------------------------------------------------
# A synthetic cohort


@dataclass(frozen=True)
class CohortSpec:
    """How `make_cohort` draws patients and their responses.

    The response model (documented in the README and the report): for patient i,

        logit P(objective response) = b0 + b_diam * z(log diameter) + b_enh * z(enhancement)
                                      + b_tex * z(fine texture)

    with z() the standardisation over the cohort. Larger tumours, weaker arterial enhancement and
    stronger fine (1-3 mm) texture heterogeneity make response less likely. The labels are drawn
    from this model again and again (seeded) until the number of responders equals
    `n_responders`: the logistic model conditioned on the class sizes of the study.

    Attributes:
        n_patients, n_responders: cohort size and responders (Dong et al. 2024: 122 and 68).
        shape, spacing_mm: grid of the true high-resolution image; the LR image that the tool
            sees is the 2x k-space truncation of it.
        b_diam, b_enh, b_tex: log-odds per standard deviation.
        noise: Rician noise relative to the liver signal, on the high-resolution image.
        second_phase: also write a portal-venous-like second phase (`image_2`: the same anatomy
            and noise seed, the tumour washed out to 40% of its arterial enhancement), LR only.
    """

    n_patients: int = 122
    n_responders: int = 68
    shape: tuple[int, int, int] = (128, 112, 48)
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.5)
    b_diam: float = -0.8
    b_enh: float = 0.8
    b_tex: float = -1.4
    noise: float = 0.02
    second_phase: bool = False


def draw_cohort_table(spec: CohortSpec, *, seed: int = 0) -> list[dict]:
    """Patients' tumour parameters, clinical variables and mRECIST responses (no images)."""
    if not 0 < spec.n_responders < spec.n_patients:
        raise ValueError(
            f"n_responders must lie between 1 and n_patients - 1, not {spec.n_responders} of {spec.n_patients}"
        )
    rng = np.random.default_rng(seed)
    n = spec.n_patients
    diameter = np.clip(np.exp(rng.normal(np.log(38), 0.35, n)), 15, 75)
    enhancement = rng.uniform(0.1, 1.3, n)
    texture = rng.uniform(0.05, 0.7, n)
    necrosis = rng.uniform(0.0, 0.5, n)
    capsule = rng.random(n) < 0.6

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std()

    lin = spec.b_diam * z(np.log(diameter)) + spec.b_enh * z(enhancement) + spec.b_tex * z(texture)
    # intercept that makes the expected number of responders match
    from scipy.optimize import brentq

    b0 = brentq(lambda b: (1 / (1 + np.exp(-(b + lin)))).sum() - spec.n_responders, -10, 10)
    prob = 1 / (1 + np.exp(-(b0 + lin)))
    for _ in range(10_000):
        resp = rng.random(n) < prob
        if resp.sum() == spec.n_responders:
            break
    else:  # pragma: no cover - needs an absurd spec
        raise RuntimeError("could not draw the requested number of responders")

    # Survival and readers from their own stream, so the images and responses above stay as they were.
    srng = np.random.default_rng([seed, 7])
    hazard = 0.03 * np.exp(-0.9 * resp + 0.5 * z(np.log(diameter)))  # per month
    t_event = srng.exponential(1 / hazard)
    t_censor = srng.uniform(12, 48, n)
    os_time = np.round(np.minimum(t_event, t_censor), 1)
    os_event = (t_event <= t_censor).astype(int)
    logit = np.log(prob / (1 - prob))
    readers = {  # three simulated radiologists of decreasing skill: 1-5 confidence of response
        f"reader_{k + 1}": np.clip(np.round(3 + (skill * logit + srng.normal(0, 1, n)) / 1.2), 1, 5).astype(int)
        for k, skill in enumerate((1.5, 1.0, 0.5))
    }
    rows = []
    for i in range(n):
        if resp[i]:
            category = "CR" if rng.random() < 0.25 else "PR"
        else:
            category = "SD" if rng.random() < 0.7 else "PD"
        rows.append(
            {
                "patient_id": f"P{i + 1:03d}",
                "response": category,
                # a radiologist's measurement of the longest diameter, to the mm
                "diameter_mm": float(round(diameter[i] + rng.normal(0, 1.5))),
                "arterial_enhancement": int(enhancement[i] + rng.normal(0, 0.1) > 0.45),
                "afp_ng_ml": float(round(10 ** rng.normal(1.6 + 0.3 * z(np.log(diameter))[i], 0.8), 1)),
                "child_pugh": "A" if rng.random() < 0.8 else "B",
                "bclc": "B" if rng.random() < 0.6 else "C",
                "age": int(np.clip(round(rng.normal(58, 10)), 30, 85)),
                "sex": "M" if rng.random() < 0.85 else "F",
                "ast_u_l": float(round(np.clip(rng.lognormal(np.log(42), 0.4), 10, 300))),
                "os_time": float(os_time[i]),
                "os_event": int(os_event[i]),
                **{k: int(v[i]) for k, v in readers.items()},
                "_tumour": TumourSpec(
                    diameter_mm=float(diameter[i]),
                    enhancement=float(enhancement[i]),
                    necrosis=float(necrosis[i]),
                    capsule=bool(capsule[i]),
                    texture=float(texture[i]),
                    # a peritumoral signal in half the responders (not in the response model's
                    # probability: it marks who responded, as the texture does)
                    halo=float(rng.uniform(0.15, 0.35)) if resp[i] and rng.random() < 0.5 else 0.0,
                ),
                "_probability": float(prob[i]),
            }
        )
    return rows


def _render_patient(args: tuple) -> tuple[str, dict[str, str]]:
    from srgan3d.sr.degrade import degrade_volume
    from srgan3d.volume import downscaled_affine, write_volume

    row, spec, seed, outdir = args
    pid = row["patient_id"]
    ph = make_phantom(spec.shape, spec.spacing_mm, tumour=row["_tumour"], seed=seed, noise=spec.noise)
    lr = degrade_volume(ph.image, 2, model="kspace")
    m = ph.tumour_mask.data
    sx, sy, sz = (n // 2 for n in m.shape)
    lr_mask = m.reshape(sx, 2, sy, 2, sz, 2).mean(axis=(1, 3, 5)) >= 0.5
    assert ph.liver_mask is not None
    lr_liver = ph.liver_mask.data.reshape(sx, 2, sy, 2, sz, 2).mean(axis=(1, 3, 5)) >= 0.5
    meta = dict(lr.meta)
    lr.meta = meta
    paths = {
        "image": f"images/{pid}.nii.gz",
        "mask": f"masks/{pid}.nii.gz",
        "liver_mask": f"masks/{pid}_liver.nii.gz",
        "truth_hr": f"truth_hr/{pid}.nii.gz",
        "truth_hr_mask": f"truth_hr/{pid}_mask.nii.gz",
    }
    write_volume(lr, outdir / paths["image"], description=f"srgan3d synthetic cohort {pid}, LR")
    write_volume(
        Volume(lr_mask.astype(np.uint8), downscaled_affine(ph.image.affine, 2), dict(meta)),
        outdir / paths["mask"],
        description=f"srgan3d synthetic cohort {pid}, tumour VOI",
    )
    if spec.second_phase:
        from dataclasses import replace as _replace

        washout = _replace(row["_tumour"], enhancement=0.4 * row["_tumour"].enhancement, halo=0.0)
        pv = make_phantom(spec.shape, spec.spacing_mm, tumour=washout, seed=seed, noise=spec.noise)
        paths["image_2"] = f"images/{pid}_phase2.nii.gz"
        write_volume(degrade_volume(pv.image, 2, model="kspace"), outdir / paths["image_2"],
                     description=f"srgan3d synthetic cohort {pid}, second phase, LR")  # fmt: skip
    write_volume(
        Volume(lr_liver.astype(np.uint8), downscaled_affine(ph.image.affine, 2), dict(meta)),
        outdir / paths["liver_mask"],
        description=f"srgan3d synthetic cohort {pid}, liver",
    )
    write_volume(ph.image, outdir / paths["truth_hr"], description=f"srgan3d synthetic cohort {pid}, truth")
    write_volume(
        Volume(m.astype(np.uint8), ph.image.affine, dict(meta)),
        outdir / paths["truth_hr_mask"],
        description=f"srgan3d synthetic cohort {pid}, truth VOI",
    )
    return pid, paths


def make_cohort(
    outdir: str | Path,
    spec: CohortSpec | None = None,
    *,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Write a synthetic cohort: LR images, VOI masks, true HR images and `cohort.csv`.

    The LR image of each patient is the 2x k-space truncation of its phantom (what the tool is
    given); `truth_hr/` holds the phantom itself for measuring super-resolution. The responses are
    SIMULATED from the model of `CohortSpec`; `cohort.csv` also lists the true tumour parameters
    and response probability in columns starting with ``true_``.

    Returns the path of `cohort.csv`.
    """
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    spec = spec or CohortSpec()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = draw_cohort_table(spec, seed=seed)
    jobs = [(r, spec, seed * 100_003 + i + 1, outdir) for i, r in enumerate(rows)]
    bar = tqdm(total=len(jobs), desc="synthetic cohort", unit="patient", disable=not progress)
    results: dict[str, dict[str, str]] = {}
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for pid, paths in pool.map(_render_patient, jobs):
                results[pid] = paths
                bar.update()
    else:
        for job in jobs:
            pid, paths = _render_patient(job)
            results[pid] = paths
            bar.update()
    bar.close()

    fields = [
        "patient_id", "image", "mask", "liver_mask", "response", "diameter_mm", "arterial_enhancement", "afp_ng_ml",
        "child_pugh", "bclc", "age", "sex", "ast_u_l", "os_time", "os_event", "reader_1", "reader_2", "reader_3",
        "truth_hr", "truth_hr_mask", "true_diameter_mm",
        "true_enhancement", "true_texture", "true_necrosis", "true_capsule", "true_halo", "true_response_probability",
    ]  # fmt: skip
    if spec.second_phase:
        fields.insert(fields.index("liver_mask") + 1, "image_2")
    table = []
    for r in rows:
        t: TumourSpec = r["_tumour"]
        out = {k: v for k, v in r.items() if not k.startswith("_")}
        out.update(results[r["patient_id"]])
        out.update(
            true_diameter_mm=round(t.diameter_mm, 2),
            true_enhancement=round(t.enhancement, 4),
            true_texture=round(t.texture, 4),
            true_halo=round(t.halo, 4),
            true_necrosis=round(t.necrosis, 4),
            true_capsule=int(t.capsule),
            true_response_probability=round(r["_probability"], 4),
        )
        table.append(out)
    write_csv_atomic(outdir / "cohort.csv", table, fields)
    card = {
        "simulated": True,
        "generator": "srgan3d.sr.synthetic.make_cohort",
        "seed": seed,
        "format": COHORT_FORMAT,
        "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()},
        "response_model": "logit P = b0 + b_diam z(log diameter) + b_enh z(enhancement) + b_tex z(texture), "
        "conditioned on n_responders",
    }

    write_text_atomic(outdir / "cohort.json", json.dumps(card, indent=2))
    return outdir / "cohort.csv"
