"""Synthetic arterial-phase abdominal MRI phantoms with a liver tumour.

Shapes are defined in millimetres, so one phantom can be rendered at any resolution. Intensities
imitate a fat-suppressed T1 arterial phase: arteries and the enhancing tumour bright, liver
intermediate with fine texture, portal veins moderately enhanced, necrosis and the tumour capsule
dark. A smooth multiplicative bias field and Rician noise finish it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
    c = _Canvas(p=p, shape=shape, sp=sp, half=sp * np.asarray(shape) / 2.0, rng=rng, img=np.zeros(shape, np.float32))
    # one random stream, drawn in one order (a seed's phantom never changes): body, organs, vessels, tumour
    body_r, bx, by = _body(c)
    liver, liver_c, liver_r = _organs(c, body_r, bx, by)
    _vessels(c, liver, liver_c, liver_r, bx, by)
    tumour_mask = _tumour(c, tumour, body_r, liver, liver_c, liver_r)
    liver_mask = liver | tumour_mask
    bias_field = 1 + bias * _smooth_noise(shape, 60.0 / sp, rng)
    img = c.img * bias_field
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


@dataclass
class _Canvas:
    """The phantom being drawn: world coordinates of every voxel (mm), its grid, the image so far
    and the one random stream every step draws from in turn."""

    p: np.ndarray
    shape: tuple[int, int, int]
    sp: np.ndarray
    half: np.ndarray
    rng: np.random.Generator
    img: np.ndarray

    def jitter(self, s: float = 0.05) -> float:
        """Anatomy jitter: a factor within 1 +- s."""
        return 1 + self.rng.uniform(-s, s)


def _body(c: _Canvas) -> tuple[np.ndarray, float, float]:
    """Body outline and subcutaneous fat (fat suppressed: moderately dark), muscle wall, spine
    and paraspinal muscles. Returns the body's normalised radius and semi-axes."""
    p, img = c.p, c.img
    bx, by = 0.46 * 2 * c.half[0] * c.jitter(), 0.40 * 2 * c.half[1] * c.jitter()
    body_r = np.sqrt((p[0] / bx) ** 2 + (p[1] / by) ** 2)
    img[body_r < 1.0] = 0.35
    img[body_r < 0.93] = 0.45  # muscle wall
    img[body_r < 0.86] = 0.30  # visceral fat
    spine = _ellipsoid(p, (0, -0.55 * by, 0), (18, 16, 1e6)) < 1
    img[_ellipsoid(p, (0, -0.6 * by, 0), (55, 28, 1e6)) < 1] = 0.42
    img[spine] = 0.20
    return body_r, bx, by


def _organs(
    c: _Canvas, body_r: np.ndarray, bx: float, by: float
) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float]]:
    """Liver (textured), spleen (arterial-phase moire) and kidneys (cortex and medulla). Returns
    the liver's mask, centre and radii."""
    p, img, j, shape, sp, half = c.p, c.img, c.jitter, c.shape, c.sp, c.half
    liver_c = (-0.30 * bx * j(), 0.05 * by * j(), 0.1 * half[2])
    liver_r = (0.52 * bx * j(), 0.62 * by * j(), 1.6 * half[2])
    liver = _ellipsoid(p, liver_c, liver_r) < 1
    liver &= body_r < 0.84
    texture = _smooth_noise(shape, 1.2 / sp, c.rng)
    img[liver] = (0.55 + 0.03 * texture)[liver]
    spleen = (
        _ellipsoid(p, (0.55 * bx, -0.20 * by, 0), (0.20 * bx * j(), 0.25 * by * j(), 0.9 * half[2])) < 1
    ) & ~liver
    img[spleen] = (0.75 + 0.08 * _smooth_noise(shape, 3.0 / sp, c.rng))[spleen]  # arterial-phase moire
    for side in (-1, 1):
        kc = (side * 0.35 * bx, -0.42 * by, -0.5 * half[2])
        k = _ellipsoid(p, kc, (28 * j(), 24 * j(), 50 * j()))
        cortex = (k < 1) & (k >= 0.7) & ~liver
        medulla = (k < 0.7) & ~liver
        img[cortex] = 0.95
        img[medulla] = 0.45
    return liver, liver_c, liver_r


def _vessels(
    c: _Canvas, liver: np.ndarray, liver_c: tuple[float, float, float], liver_r: tuple[float, float, float],
    bx: float, by: float,
) -> None:  # fmt: skip
    """Aorta (left of midline, anterior to the spine), hepatic arteries and portal veins branching
    from the hilum inside the liver."""
    p, img, rng = c.p, c.img, c.rng
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


def _tumour(
    c: _Canvas, tumour: TumourSpec, body_r: np.ndarray, liver: np.ndarray, liver_c: tuple[float, float, float],
    liver_r: tuple[float, float, float],
) -> np.ndarray:  # fmt: skip
    """The lesion: a perturbed sphere in the right lobe with an enhancing viable part, necrotic
    core, capsule and peritumoral halo as `tumour` says. Returns its mask (capsule included)."""
    p, img, rng, shape, sp = c.p, c.img, c.rng, c.shape, c.sp
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
    return tumour_mask
