"""The study's options: feature extraction (`RadiomicsConfig`), modelling (`ModelingConfig`) and
the deep models (`DeepConfig`), one attribute per `srgan3d evaluate` option.

The CLI reads its defaults from these classes, and results.json records them (they are results
themselves: `to_dict`/`from_dict`). Imports neither torch nor any fitting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from srgan3d.serialisation import Record
from srgan3d.sr import DEFAULT_WEIGHTS

PARAMS_DIR = Path(__file__).parent / "params"
DEFAULT_PARAMS = PARAMS_DIR / "arterial_mri.yaml"
#: Parameter files shipped with srgan3d, by the name `--params` accepts.
SHIPPED_PARAMS = {"default": DEFAULT_PARAMS, "arterial_mri": DEFAULT_PARAMS, "extended": PARAMS_DIR / "extended.yaml"}
#: Features per VOI of the extended parameter file, as pyradiomics computes them (measured in
#: benchmarks/extended_radiomics.py; the help text and README take it from here).
EXTENDED_FEATURES = 2525


def resolve_params(name_or_path: str | Path | None) -> str:
    """A shipped parameter file's name ("default", "extended") or a path, as a path."""
    if name_or_path is None:
        return str(DEFAULT_PARAMS)
    return str(SHIPPED_PARAMS.get(str(name_or_path), name_or_path))


SPACINGS = ("native", "common")


#: The share of the patients held out for testing when the cohort table has no `set` column.
DEFAULT_TEST_SIZE = 0.2

#: The classifier panel's members (`srgan3d.study.panel`).
CLASSIFIER_NAMES = ("lr", "svm", "knn", "xgboost", "mlp")


def parse_classifiers(text: str | Sequence[str]) -> tuple[str, ...]:
    """`lr,svm,...` (or a sequence) -> a tuple of known names; an unknown name is an error naming
    the option and the choices."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in CLASSIFIER_NAMES]
    if unknown:
        raise ValueError(
            f"--classifiers: unknown classifier(s) {', '.join(unknown)}; choose from {', '.join(CLASSIFIER_NAMES)}"
        )
    return tuple(dict.fromkeys(names))


#: The deep models' MONAI ResNets.
ARCHS = ("resnet10", "resnet18", "resnet34")


@dataclass(frozen=True)
class RadiomicsConfig(Record):
    """Options of the feature extraction; one per `evaluate` option.

    Attributes:
        params: pyradiomics parameter file (YAML).
        spacing: "native" or "common" (see the module docstring).
        common_spacing_mm: the isotropic spacing of "common"; None = the finest SR spacing of the
            cohort's first patient.
        method: upscale method for the VOI crops ("auto", "generator" or an interpolation).
        weights: generator weights name or path.
        margin_vox: LR voxels added around the VOI's bounding box.
        device: torch device for the generator: auto (CUDA when there is one), cpu, cuda[:N].
        workers: patients processed in parallel (processes).
        peritumoral: ring widths in mm (`ring_mask`); features of each ring, before and after SR,
            go into the tables with the prefix ``ring<W>mm_``. The crop's margin grows to hold
            the widest ring.
        through_plane: super-resolve 2x along each scan's slice (thickest) axis only
            (`srgan3d.sr.engine.upscale_box_through_plane`); `method` is then auto (through-plane
            `weights` of the scan's protocol, else B-spline + slice-profile consistency),
            self-supervised or bspline-consistent.
        through_plane_minutes: self-supervised: training minutes per scan (on the whole scan).
    """

    params: str = str(DEFAULT_PARAMS)
    spacing: str = "native"
    common_spacing_mm: float | None = None
    method: str = "auto"
    weights: str = DEFAULT_WEIGHTS
    margin_vox: int = 16
    device: str = "auto"
    workers: int = 1
    peritumoral: tuple[float, ...] = ()
    through_plane: bool = False
    through_plane_minutes: float = 3.0

    def __post_init__(self) -> None:
        if self.through_plane and self.method not in ("auto", "self-supervised", "bspline-consistent"):
            raise ValueError(f"--scale through-plane takes --method auto, self-supervised or bspline-consistent, "
                             f"not {self.method!r}")  # fmt: skip
        if any(not 0 < w <= 50 for w in self.peritumoral):
            raise ValueError(f"--peritumoral widths must lie in (0, 50] mm, not {list(self.peritumoral)}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be 'native' or 'common', not {self.spacing!r}")
        if self.margin_vox < 0:
            raise ValueError(f"margin must be >= 0 voxels, not {self.margin_vox}")

    def check_params(self) -> None:
        """The parameter file must exist before extraction starts (checked here, not at
        construction, so that a record of the options can name a file by its shown name)."""
        if not Path(self.params).is_file():
            raise FileNotFoundError(f"pyradiomics parameter file {self.params} does not exist")


#: Units of the survival time columns, and the default (`evaluate --time-unit`).
TIME_UNITS = ("days", "weeks", "months", "years")
DEFAULT_TIME_UNIT = "months"

#: Inner-CV AUCs closer than this to the best are a tie: noise (a re-run, ITK's threaded sums at
#: the 12th digit) must not decide between them, so ties go to the simpler setting
#: (`srgan3d.study.resampling.simplest_within`: the LASSO's penalty, the panel's grids).
TIE_TOLERANCE_AUC = 0.01
#: Inner-CV seeds over which each panel classifier is refitted to show the spread of its test AUC.
SEED_SPREAD = 5

#: How a clinical variable may be modelled (`evaluate --transform COLUMN=log10|none`).
TRANSFORMS = ("log10", "none")


def parse_transforms(specs: Sequence[str]) -> dict[str, str]:
    """`--transform` values ("afp_ng_ml=log10", "size_cm=none"; comma-separated or repeated) as
    {column: transform}; a malformed one is an error naming it and the forms allowed."""
    out: dict[str, str] = {}
    for spec in (s.strip() for item in specs for s in str(item).split(",")):
        if not spec:
            continue
        col, sep, how = spec.partition("=")
        if not sep or not col.strip() or how.strip() not in TRANSFORMS:
            raise ValueError(f"--transform {spec!r}: write COLUMN=log10 or COLUMN=none")
        out[col.strip()] = how.strip()
    return out


@dataclass(frozen=True)
class ModelingConfig(Record):
    """Options of the modelling; one per `evaluate` option.

    Attributes:
        test_size: fraction of patients held out (stratified by response) when the cohort table
            has no `set` column; None = `DEFAULT_TEST_SIZE`. Given with a `set` column, it is an error.
        seed: seeds the split, the cross-validation folds and the bootstrap.
        screen_p: Mann-Whitney p-value below which a feature passes univariate screening.
        min_screened: if fewer pass, the features with the smallest p-values are kept instead.
        max_screened: at most this many (smallest p) go on to the redundancy filter.
        max_abs_spearman: of two features correlated more than this, the one with the larger
            screening p-value is dropped.
        cv_folds: folds of the LASSO's cross-validation (scored by ROC AUC).
        n_cs: size of the grid of inverse penalties C (log-spaced 0.005 to 10).
        clinical: candidate clinical variables (numeric or 0/1 columns).
        clinical_p_enter: univariable p-value below which a clinical variable enters the
            multivariable model; if none does, all candidates enter.
        n_bootstrap: bootstrap resamples for the optimism-corrected AUC (0 = skip).
        classifiers: the classifier panel (`srgan3d.study.panel`) on each image's selected
            features; () = no panel.
        panel_bootstrap: resamples of the panel's optimism correction (0 = skip).
        comparators: ordinal columns (staging systems such as BCLC or Child-Pugh) compared with
            the best model by AUC and DeLong.
        workers: processes for the bootstrap refits (the numbers do not depend on it).
        transforms: how clinical variables are modelled, "COLUMN=log10" or "COLUMN=none";
            columns not named follow the skewness rule (`srgan3d.study.transforms`).
    """

    test_size: float | None = None
    seed: int = 0
    screen_p: float = 0.05
    min_screened: int = 5
    max_screened: int = 30
    max_abs_spearman: float = 0.9
    cv_folds: int = 5
    n_cs: int = 20
    clinical: tuple[str, ...] = ("diameter_mm", "arterial_enhancement")
    clinical_p_enter: float = 0.10
    n_bootstrap: int = 100
    classifiers: tuple[str, ...] = ("lr", "svm", "knn", "xgboost", "mlp")
    panel_bootstrap: int = 25
    comparators: tuple[str, ...] = ()
    workers: int = 1
    transforms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classifiers", parse_classifiers(self.classifiers))
        asked = parse_transforms(self.transforms)
        object.__setattr__(self, "transforms", tuple(f"{c}={t}" for c, t in asked.items()))
        if self.test_size is not None and not 0.05 <= self.test_size <= 0.5:
            raise ValueError(f"test size must lie between 0.05 and 0.5, not {self.test_size}")
        if not self.clinical:
            raise ValueError("at least one clinical variable is needed for the clinical model")


@dataclass(frozen=True)
class DeepConfig(Record):
    """Options of the deep models; one per `evaluate --dl-*` option.

    Attributes:
        arch: resnet10, resnet18 or resnet34 (MONAI).
        crop_mm: edge of the cube around the tumour centroid, in mm.
        crop_vox: voxels per edge after resampling (the same for the LR and SR images).
        widen_factor: channel width of the ResNet relative to the standard one.
        epochs: at most this many passes over the training patients.
        patience: epochs without a better inner-validation loss before stopping.
        batch_size, lr: Adam's batch and learning rate.
        val_fraction: share of the training patients held out for early stopping.
        dual: None, "ring" (a shell of `ring_mm` around the tumour as the second branch's
            input) or "image_2" (a second-phase image column, same grid as `image`).
        ring_mm: the shell's width for dual="ring".
        seed: seeds the inner split, the initialisation, the batches and the augmentation.
        device: "cpu" or "cuda".
    """

    arch: str = "resnet18"
    crop_mm: float = 96.0
    crop_vox: int = 32
    widen_factor: float = 1.0
    epochs: int = 40
    patience: int = 8
    batch_size: int = 8
    lr: float = 3e-4
    val_fraction: float = 0.2
    dual: str | None = None
    ring_mm: float = 10.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"--dl must be none or one of {', '.join(ARCHS)}, not {self.arch!r}")
        if self.dual not in (None, "ring", "image_2"):
            raise ValueError(f"--dl-dual must be ring or image_2, not {self.dual!r}")

    @classmethod
    def tiny(cls, *, seed: int = 0, epochs: int = 6, patience: int = 3, lr: float = 3e-4) -> DeepConfig:
        """A CPU setting of seconds (tests, the demo)."""
        return cls(arch="resnet10", crop_vox=16, widen_factor=0.25, epochs=epochs, patience=patience, lr=lr, seed=seed)
