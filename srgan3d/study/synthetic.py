"""The built-in synthetic cohort of the response study: patients with mRECIST responses, clinical
variables, survival and readers' scores SIMULATED from a documented model, and their images
rendered as arterial-phase phantoms (`srgan3d.sr.synthetic.make_phantom`) acquired at half the
resolution by the k-space model (`srgan3d.sr.degrade`). An optional external set imitates a second
centre (its own patients, a noisier scanner), named in the table's `set` column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from srgan3d.atomic import write_csv_atomic, write_text_atomic
from srgan3d.sr.synthetic import TumourSpec, make_phantom
from srgan3d.volume import Volume

#: Version of the cohort's files; a demo folder of another version is redrawn.
COHORT_FORMAT = 4


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
        n_external, external_responders: patients and responders of an external test set (0 =
            none); they are drawn apart, from the same response model, and rendered with
            `external_noise` (a second centre's scanner).
        external_name: the external set's name in the `set` column.
        test_size: with an external set the table gets a `set` column; the other patients are
            split train/test by the same seeded stratified draw `evaluate` makes without one.
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
    n_external: int = 0
    external_responders: int = 0
    external_name: str = "centre_B"
    external_noise: float = 0.03
    test_size: float = 0.2

    def __post_init__(self) -> None:
        if self.n_external and not 0 < self.external_responders < self.n_external:
            raise ValueError(
                f"external_responders must lie between 1 and n_external - 1, not {self.external_responders} of "
                f"{self.n_external}"
            )

    def record(self) -> dict[str, object]:
        """The spec as cohort.json records it (tuples as lists): the one form that is written and
        compared when a cohort is reused."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


def draw_cohort_table(spec: CohortSpec, *, seed: int = 0, prefix: str = "P") -> list[dict[str, object]]:
    """Patients' tumour parameters, clinical variables and mRECIST responses (no images); patient
    ids are `prefix` and a number."""
    if not 0 < spec.n_responders < spec.n_patients:
        raise ValueError(
            f"n_responders must lie between 1 and n_patients - 1, not {spec.n_responders} of {spec.n_patients}"
        )
    rng = np.random.default_rng(seed)
    t = _draw_tumours(spec, rng)
    # Survival and readers from their own stream, so the images and responses above stay as they were.
    extra = _survival_and_readers(seed, t)
    return [_patient_row(i, prefix, rng, t, extra) for i in range(spec.n_patients)]


@dataclass(frozen=True)
class _Tumours:
    """The drawn tumours of a cohort (one value per patient) and their responses."""

    diameter: np.ndarray
    enhancement: np.ndarray
    texture: np.ndarray
    necrosis: np.ndarray
    capsule: np.ndarray
    prob: np.ndarray
    resp: np.ndarray


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def _draw_tumours(spec: CohortSpec, rng: np.random.Generator) -> _Tumours:
    """Tumour parameters, then responses from the logistic model, conditioned on `n_responders`."""
    from scipy.optimize import brentq

    n = spec.n_patients
    diameter = np.clip(np.exp(rng.normal(np.log(38), 0.35, n)), 15, 75)
    enhancement = rng.uniform(0.1, 1.3, n)
    texture = rng.uniform(0.05, 0.7, n)
    necrosis = rng.uniform(0.0, 0.5, n)
    capsule = rng.random(n) < 0.6
    lin = spec.b_diam * _z(np.log(diameter)) + spec.b_enh * _z(enhancement) + spec.b_tex * _z(texture)
    # intercept that makes the expected number of responders match
    b0 = brentq(lambda b: (1 / (1 + np.exp(-(b + lin)))).sum() - spec.n_responders, -10, 10)
    prob = 1 / (1 + np.exp(-(b0 + lin)))
    for _ in range(10_000):
        resp = rng.random(n) < prob
        if resp.sum() == spec.n_responders:
            break
    else:  # pragma: no cover - needs an absurd spec
        raise RuntimeError("could not draw the requested number of responders")
    return _Tumours(diameter, enhancement, texture, necrosis, capsule, prob, resp)


def _survival_and_readers(seed: int, t: _Tumours) -> dict[str, np.ndarray]:
    """Overall survival (shorter for non-responders and large tumours) and three simulated
    radiologists' 1-5 confidence of response, from the seed's own stream."""
    srng = np.random.default_rng([seed, 7])
    n = len(t.resp)
    hazard = 0.03 * np.exp(-0.9 * t.resp + 0.5 * _z(np.log(t.diameter)))  # per month
    t_event = srng.exponential(1 / hazard)
    t_censor = srng.uniform(12, 48, n)
    logit = np.log(t.prob / (1 - t.prob))
    readers = {  # three simulated radiologists of decreasing skill: 1-5 confidence of response
        f"reader_{k + 1}": np.clip(np.round(3 + (skill * logit + srng.normal(0, 1, n)) / 1.2), 1, 5).astype(int)
        for k, skill in enumerate((1.5, 1.0, 0.5))
    }
    return {"os_time": np.round(np.minimum(t_event, t_censor), 1), "os_event": (t_event <= t_censor).astype(int),
            **readers}  # fmt: skip


def _patient_row(i: int, prefix: str, rng: np.random.Generator, t: _Tumours, extra: dict[str, np.ndarray]) -> dict[str, object]:
    """Patient `i`'s row: mRECIST category, the clinical variables as a radiologist would record
    them, survival, reads, and the true tumour (``_tumour``) and response probability."""
    if t.resp[i]:
        category = "CR" if rng.random() < 0.25 else "PR"
    else:
        category = "SD" if rng.random() < 0.7 else "PD"
    return {
        "patient_id": f"{prefix}{i + 1:03d}",
        "response": category,
        # a radiologist's measurement of the longest diameter, to the mm
        "diameter_mm": float(round(t.diameter[i] + rng.normal(0, 1.5))),
        "arterial_enhancement": int(t.enhancement[i] + rng.normal(0, 0.1) > 0.45),
        "afp_ng_ml": float(round(10 ** rng.normal(1.6 + 0.3 * _z(np.log(t.diameter))[i], 0.8), 1)),
        "child_pugh": "A" if rng.random() < 0.8 else "B",
        "bclc": "B" if rng.random() < 0.6 else "C",
        "age": int(np.clip(round(rng.normal(58, 10)), 30, 85)),
        "sex": "M" if rng.random() < 0.85 else "F",
        "ast_u_l": float(round(np.clip(rng.lognormal(np.log(42), 0.4), 10, 300))),
        "os_time": float(extra["os_time"][i]),
        "os_event": int(extra["os_event"][i]),
        **{k: int(v[i]) for k, v in extra.items() if k.startswith("reader_")},
        "_tumour": TumourSpec(
            diameter_mm=float(t.diameter[i]),
            enhancement=float(t.enhancement[i]),
            necrosis=float(t.necrosis[i]),
            capsule=bool(t.capsule[i]),
            texture=float(t.texture[i]),
            # a peritumoral signal in half the responders (not in the response model's
            # probability: it marks who responded, as the texture does)
            halo=float(rng.uniform(0.15, 0.35)) if t.resp[i] and rng.random() < 0.5 else 0.0,
        ),
        "_probability": float(t.prob[i]),
    }


def _render_patient(args: tuple[dict[str, object], CohortSpec, int, Path]) -> tuple[str, dict[str, str]]:
    from srgan3d.io import write_volume
    from srgan3d.sr.degrade import degrade_volume
    from srgan3d.volume import downscaled_affine

    row, spec, seed, outdir = args
    pid, tumour = str(row["patient_id"]), row["_tumour"]
    noise = float(row.get("_noise", spec.noise))  # type: ignore[arg-type]
    assert isinstance(tumour, TumourSpec)
    ph = make_phantom(spec.shape, spec.spacing_mm, tumour=tumour, seed=seed, noise=noise)
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
        washout = replace(tumour, enhancement=0.4 * tumour.enhancement, halo=0.0)
        pv = make_phantom(spec.shape, spec.spacing_mm, tumour=washout, seed=seed, noise=noise)
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
    """Write a synthetic cohort: LR images, VOI masks, true HR images and `cohort.csv` (with a
    `set` column when the spec has an external set).

    The LR image of each patient is the 2x k-space truncation of its phantom (what the tool is
    given); `truth_hr/` holds the phantom itself for measuring super-resolution. The responses are
    SIMULATED from the model of `CohortSpec`; `cohort.csv` also lists the true tumour parameters
    and response probability in columns starting with ``true_``.

    Returns the path of `cohort.csv`.
    """
    spec = spec or CohortSpec()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = _all_rows(spec, seed)
    results = _render_all(rows, spec, seed, outdir, workers=workers, progress=progress)
    _write_table(rows, results, spec, outdir)
    card = {
        "simulated": True,
        "generator": "srgan3d.study.synthetic.make_cohort",
        "seed": seed,
        "format": COHORT_FORMAT,
        "spec": spec.record(),
        "response_model": "logit P = b0 + b_diam z(log diameter) + b_enh z(enhancement) + b_tex z(texture), "
        "conditioned on n_responders",
    }
    write_text_atomic(outdir / "cohort.json", json.dumps(card, indent=2))
    return outdir / "cohort.csv"


def _all_rows(spec: CohortSpec, seed: int) -> list[dict[str, object]]:
    """The development patients (split into train and test when there is an external set) and
    the external centre's patients, drawn from their own seed."""
    rows = draw_cohort_table(spec, seed=seed)
    if spec.n_external:
        from srgan3d.study.cohort import split_patients

        labels = np.array([r["response"] in ("CR", "PR") for r in rows], int)
        test = set(split_patients(labels, test_size=spec.test_size, seed=seed)[1])
        for i, r in enumerate(rows):
            r["set"] = "test" if i in test else "train"
        ext_spec = replace(spec, n_patients=spec.n_external, n_responders=spec.external_responders)
        external = draw_cohort_table(ext_spec, seed=seed + 7919, prefix="E")
        for r in external:
            r.update(set=spec.external_name, _noise=spec.external_noise)
        rows += external
    return rows


def _render_all(
    rows: list[dict[str, object]], spec: CohortSpec, seed: int, outdir: Path, *, workers: int, progress: bool
) -> dict[str, dict[str, str]]:
    """Every patient's images (in `workers` processes): patient id -> its files."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    jobs = [(r, spec, seed * 100_003 + i + 1, outdir) for i, r in enumerate(rows)]
    results: dict[str, dict[str, str]] = {}
    with tqdm(total=len(jobs), desc="synthetic cohort", unit="patient", disable=not progress) as bar:
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
    return results


def _write_table(rows: list[dict[str, object]], results: dict[str, dict[str, str]], spec: CohortSpec, outdir: Path) -> None:
    """cohort.csv: the patients' columns, their files and the true tumour parameters (``true_*``)."""
    fields = [
        "patient_id", "image", "mask", "liver_mask", "response", "diameter_mm", "arterial_enhancement", "afp_ng_ml",
        "child_pugh", "bclc", "age", "sex", "ast_u_l", "os_time", "os_event", "reader_1", "reader_2", "reader_3",
        "truth_hr", "truth_hr_mask", "true_diameter_mm",
        "true_enhancement", "true_texture", "true_necrosis", "true_capsule", "true_halo", "true_response_probability",
    ]  # fmt: skip
    if spec.second_phase:
        fields.insert(fields.index("liver_mask") + 1, "image_2")
    if spec.n_external:
        fields.insert(fields.index("response") + 1, "set")
    table = []
    for r in rows:
        t = r["_tumour"]
        assert isinstance(t, TumourSpec)
        out = {k: v for k, v in r.items() if not k.startswith("_")}
        out.update(results[str(r["patient_id"])])
        out.update(
            true_diameter_mm=round(t.diameter_mm, 2),
            true_enhancement=round(t.enhancement, 4),
            true_texture=round(t.texture, 4),
            true_halo=round(t.halo, 4),
            true_necrosis=round(t.necrosis, 4),
            true_capsule=int(t.capsule),
            true_response_probability=round(float(r["_probability"]), 4),  # type: ignore[arg-type]
        )
        table.append(out)
    write_csv_atomic(outdir / "cohort.csv", table, fields)
