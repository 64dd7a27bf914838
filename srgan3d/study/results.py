"""The study's typed result tree: small frozen objects that the steps of `srgan3d evaluate` pass on,
and that `results.json` serialises (with `SCHEMA_VERSION`).

Each object has `to_dict()` (JSON-ready: lists, numbers, strings) and `from_dict()`, which rebuilds
it from that dict alone, so `srgan3d report` renders from results.json without the images. The
leaves that come from `srgan3d.study.stats` (an AUC with its CI, an operating point, a calibration,
a DeLong comparison) are kept as those objects' own `to_dict()` forms. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from srgan3d.study.stats import DelongResult

#: Version of results.json's layout; `StudyResult.from_dict` refuses other versions.
SCHEMA_VERSION = 3

#: Set names with a fixed meaning in the cohort's `set` column; any other name is an external set.
TRAIN, TEST = "train", "test"

R = TypeVar("R", bound="Result")
T = TypeVar("T")


def tested_sets(sets: dict[str, T]) -> dict[str, T]:
    """The sets the models are tested on: every set of the split but the training set."""
    return {name: v for name, v in sets.items() if name != TRAIN}


def _plain(v: Any) -> Any:
    """A value as JSON-ready Python: results by `to_dict`, numpy scalars and arrays as numbers and
    lists, tuples as lists."""
    if isinstance(v, Result):
        return v.to_dict()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _build(tp: Any, v: Any) -> Any:
    """`v` (from JSON) as the annotated type `tp`: results rebuilt, tuples made tuples."""
    if v is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner[0], v) if len(inner) == 1 else v
    if isinstance(tp, type) and issubclass(tp, Result):
        return tp.from_dict(v)
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_build(item, x) for x in v)
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _build(item, x) for k, x in v.items()}
    return v


class Result:
    """Base of the result objects (frozen dataclasses): generic `to_dict` / `from_dict`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: _build(hints[k], v) for k, v in d.items()})


# --------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class Split(Result):
    """The patients of each set, made once per study and used by every step.

    Attributes:
        sets: set name -> patient ids, in report order: ``train``, ``test`` (when present), then
            the external sets in the order the cohort table first names them.
        source: ``table`` (the cohort's `set` column) or ``drawn`` (seeded stratified split).
        seed, test_size: of the drawn split (test_size None for a split from the table).
    """

    sets: dict[str, tuple[str, ...]]
    source: str
    seed: int
    test_size: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sets)

    @property
    def evaluation(self) -> tuple[str, ...]:
        """Every set the models are tested on (all but the training set)."""
        return tuple(tested_sets(self.sets))

    @property
    def external(self) -> tuple[str, ...]:
        return tuple(n for n in self.sets if n not in (TRAIN, TEST))

    @property
    def primary(self) -> str:
        """The set the key results quote first: the internal test set, else the first external one."""
        return TEST if TEST in self.sets else self.evaluation[0]

    @property
    def train_ids(self) -> tuple[str, ...]:
        return self.sets[TRAIN]

    def set_of(self, patient_ids: Sequence[str]) -> np.ndarray:
        """The set name of each patient, in the given order; a patient in no set is an error."""
        where = {pid: name for name, ids in self.sets.items() for pid in ids}
        missing = [str(p) for p in patient_ids if str(p) not in where]
        if missing:
            raise ValueError(f"patients {', '.join(missing[:10])} are in no set of the split")
        return np.array([where[str(p)] for p in patient_ids], dtype=object)

    def indices(self, patient_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Row indices of each set within `patient_ids` (e.g. the rows of a feature table)."""
        of = self.set_of(patient_ids)
        return {name: np.flatnonzero(of == name) for name in self.sets}

    def describe(self) -> str:
        """'96 train, 24 test, 20 centre_B'."""
        return ", ".join(f"{len(ids)} {name}" for name, ids in self.sets.items())


# --------------------------------------------------------------------------------------------
# Models and their metrics per set


@dataclass(frozen=True)
class ModelEntry(Result):
    """One model of the report: its key (a column of predictions.csv), label and colour."""

    name: str
    label: str
    colour: str
    family: str  # "study" (the four models), "panel" (the panel's pick), "deep" (DLRCR)


#: The study's four models, in report order: the one descriptor (key, label, colour) of each. The
#: report's full roster (with the panel's pick and DLRCR) is `Roster`, built by
#: `srgan3d.study.evaluation`; the fitting modules and the report both read these names from here.
STUDY_MODELS = (
    ModelEntry("radiomics_pre_sr", "Radiomics, pre-SR", "#1f77b4", "study"),
    ModelEntry("radiomics_post_sr", "Radiomics, post-SR", "#d62728", "study"),
    ModelEntry("clinical", "Clinical-radiological (CR)", "#2ca02c", "study"),
    ModelEntry("clinical_post_sr", "RCR: CR + post-SR radscore", "#9467bd", "study"),
)
MODEL_NAMES = tuple(m.name for m in STUDY_MODELS)
MODEL_LABELS = {m.name: m.label for m in STUDY_MODELS}
RADSCORE_MODELS = ("radiomics_pre_sr", "radiomics_post_sr")
"""The radscore models; the study's question is whether the second beats the first."""
#: The classifier panel's members (`srgan3d.study.panel`) as the report names them.
CLASSIFIER_LABELS = {
    "lr": "Logistic regression",
    "svm": "SVM (RBF, Platt-calibrated)",
    "knn": "k-nearest neighbours",
    "xgboost": "Gradient boosting (XGBoost)",
    "mlp": "Multilayer perceptron",
}
#: The name of the risk-group covariate in the survival section's Cox models.
GROUP_COVARIATE = "predicted_responder"


@dataclass(frozen=True)
class Roster(Result):
    """The models compared in every set, in report order, and the study's best model.

    `best` is chosen on the training set only (`best_rule` says how); survival, staging and
    reader comparisons use it. This is the one place that names it.
    """

    models: tuple[ModelEntry, ...]
    best: str
    best_rule: str
    thresholds: dict[str, float]  # model -> operating threshold chosen on the training set

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def entry(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in the roster ({', '.join(self.names)})")

    def label(self, name: str) -> str:
        return self.entry(name).label

    @property
    def best_label(self) -> str:
        return self.label(self.best)


@dataclass(frozen=True)
class SetMetrics(Result):
    """Every roster model on one set: AUC with DeLong CI, operating point at the training
    threshold, calibration, pairwise DeLong tests and decision curves.

    Attributes:
        roc, operating_points, calibration: model -> the stats result's `to_dict()`.
        delong: one dict per pair (``model_a``, ``model_b`` and the `DelongResult`, A - B).
        decision_curve: ``threshold`` and one net-benefit list per model, ``treat_all`` and
            ``treat_none``.
    """

    name: str
    n: int
    n_responders: int
    roc: dict[str, dict[str, float]]
    operating_points: dict[str, dict[str, Any]]
    calibration: dict[str, dict[str, Any]]
    delong: tuple[dict[str, Any], ...]
    decision_curve: dict[str, list[float]]
    # model -> "useful" (above treat-all and treat-none) and "highest" (and the best of the models):
    # [first, last] threshold of each run on the curve's grid (`stats.decision_ranges`)
    decision_ranges: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    def delong_pair(self, a: str, b: str) -> DelongResult:
        """The DeLong comparison of A against B, oriented as A - B whichever way it was stored."""
        fields = [f.name for f in dataclasses.fields(DelongResult)]
        for d in self.delong:
            if (d["model_a"], d["model_b"]) == (a, b):
                return DelongResult(**{k: d[k] for k in fields})
            if (d["model_a"], d["model_b"]) == (b, a):
                return DelongResult(auc_a=d["auc_b"], auc_b=d["auc_a"], difference=-d["difference"], z=-d["z"],
                                    p_value=d["p_value"], ci_low=-d["ci_high"], ci_high=-d["ci_low"], level=d["level"])  # fmt: skip
        raise KeyError(f"no DeLong comparison of {a} and {b} on the {self.name} set")


# --------------------------------------------------------------------------------------------
# The study's parts


@dataclass(frozen=True)
class RadscoreSummary(Result):
    formula: str
    features: tuple[str, ...]
    coefficients: tuple[dict[str, Any], ...]
    n_features_in: int
    n_variance_kept: int
    n_screen_passed: int
    n_after_redundancy: int
    C: float
    fallback: bool


@dataclass(frozen=True)
class FitNote(Result):
    """How one logistic model was fitted: the separation found in its training data (none,
    quasi-complete, complete), the fewest predictors that separate, and the method (maximum
    likelihood, or Firth's penalised likelihood as the remedy)."""

    separation: str = "none"
    separating_variables: tuple[str, ...] = ()
    method: str = "maximum likelihood"
    remedy: str | None = None

    @property
    def separated(self) -> bool:
        return self.separation != "none"


@dataclass(frozen=True)
class FittedSummary(Result):
    """What the training set fitted: the radscores and the logistic models' odds-ratio tables."""

    radscore: dict[str, RadscoreSummary]
    clinical_univariable: tuple[dict[str, Any], ...]
    clinical_multivariable: tuple[dict[str, Any], ...]
    combined_model: tuple[dict[str, Any], ...]
    optimism: tuple[dict[str, Any], ...] | None = None  # Harrell's bootstrap over the development sets
    # model ("clinical", "clinical_post_sr", "univariable: <variable>") -> how it was fitted:
    # separation (none / quasi-complete / complete), separating variables, method, remedy
    fits: dict[str, FitNote] = field(default_factory=dict)
    threshold_rule: str = ""

    @property
    def separated(self) -> dict[str, FitNote]:
        """The logistic models whose training data were separated."""
        return {k: v for k, v in self.fits.items() if v.separated}


@dataclass(frozen=True)
class Nomogram(Result):
    """A logistic model's nomogram: per predictor (``variable``, ``coefficient``, ``min``, ``max``,
    ``ref``, ``points_per_unit``, ``max_points``); linear predictor = offset + points * scale."""

    predictors: tuple[dict[str, Any], ...]
    scale: float
    offset: float


@dataclass(frozen=True)
class ClassifierResult(Result):
    """One panel classifier on one image's features."""

    cv_auc: float
    params: dict[str, Any]
    warnings: tuple[str, ...]
    train_auc: float
    threshold: float
    roc: dict[str, dict[str, float]]  # evaluation set -> AUC with CI
    operating_points: dict[str, dict[str, Any]]  # evaluation set -> at the training threshold
    corrected_auc: float = math.nan
    separation: str | None = None  # logistic regression only: none / quasi-complete / complete


@dataclass(frozen=True)
class PanelResult(Result):
    classifiers: tuple[str, ...]
    features: dict[str, tuple[str, ...]]
    inner_cv_folds: int
    n_bootstrap: int
    models: dict[str, dict[str, ClassifierResult]]  # classifier -> image -> result
    skipped: dict[str, str]
    delong: dict[str, tuple[dict[str, Any], ...]]  # evaluation set -> comparisons
    best: dict[str, Any] | None = None  # classifier, image, cv_auc, rule

    @property
    def best_key(self) -> str | None:
        return f"{self.best['classifier']}_{self.best['image']}" if self.best else None


@dataclass(frozen=True)
class RegionResult(Result):
    """A radscore per peritumoral region and image."""

    region: str
    n_features: int
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # image -> features, train_auc, roc per set
    delong_post_vs_pre: dict[str, dict[str, Any]] = field(default_factory=dict)  # set -> DeLong
    error: str | None = None


@dataclass(frozen=True)
class ComparatorResult(Result):
    comparator: str
    direction: str
    best_model: str
    roc: dict[str, dict[str, float]]  # evaluation set -> AUC
    delong_vs_best: dict[str, dict[str, Any]]  # evaluation set -> best - comparator
    order: str = ""  # how its values were ranked (`srgan3d.study.staging`)


#: A deep model whose training-set AUC is below this did not learn (nor one whose inner validation
#: loss never improved after its first epoch): the report says so, and DLRCR does not use it.
LEARNED_AUC_FLOOR = 0.6


def learning_verdict(train_auc: float, best_epoch: int) -> str | None:
    """None when the model learned; otherwise why it did not, in words for the report."""
    if not train_auc >= LEARNED_AUC_FLOOR:
        return f"training AUC {train_auc:.2f} is below the floor of {LEARNED_AUC_FLOOR:.2f}"
    if best_epoch <= 1:
        return "its inner-validation loss never improved after the first epoch"
    return None


@dataclass(frozen=True)
class DeepModelResult(Result):
    epochs: int
    best_val_loss: float
    n_fit: int
    n_val: int
    train_auc: float
    roc: dict[str, dict[str, float]]  # evaluation set -> AUC
    best_epoch: int = 0
    not_learned: str | None = None  # why the model did not learn (`deep.learning_verdict`), or None

    @property
    def learned(self) -> bool:
        return self.not_learned is None


@dataclass(frozen=True)
class DeepResult(Result):
    config: dict[str, Any]
    models: dict[str, DeepModelResult] = field(default_factory=dict)  # "pre", "post"
    delong_post_vs_pre: dict[str, dict[str, Any]] = field(default_factory=dict)
    dlrcr: dict[str, Any] | None = None  # variables, odds-ratio table, fit (its metrics: SetMetrics, 'dlrcr')
    skipped: str | None = None
    dlrcr_skipped: str | None = None  # why DLRCR was not built (the post-SR deep model did not learn)


@dataclass(frozen=True)
class CIndex(Result):
    """Harrell's C of a risk score with its percentile-bootstrap CI."""

    c_index: float
    ci_low: float
    ci_high: float
    n_bootstrap: int


@dataclass(frozen=True)
class ChiSquareTest(Result):
    """A chi-square test: the log-rank test across groups, or a Cox model's likelihood-ratio test."""

    statistic: float
    df: int
    p: float


@dataclass(frozen=True)
class KaplanMeier(Result):
    """One group's product-limit curve, its 95% CI (Greenwood, log-log) and numbers at risk
    (`at_risk`: (time, patients at risk) pairs)."""

    group: str
    times: tuple[float, ...]
    survival: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    at_risk: tuple[tuple[float, int], ...]
    median: float


@dataclass(frozen=True)
class CoxTerm(Result):
    """One covariate of a Cox model: Wald statistics and the hazard ratio with its 95% CI."""

    covariate: str
    coef: float
    se: float
    z: float
    p: float
    hr: float
    hr_low: float
    hr_high: float


@dataclass(frozen=True)
class CoxResult(Result):
    """A Cox proportional-hazards fit (Efron ties): its terms, Harrell's C of the linear
    predictor, the likelihood-ratio test, and the patients and events it saw."""

    terms: tuple[CoxTerm, ...]
    concordance: float
    likelihood_ratio: ChiSquareTest
    n: int
    events: int

    def term(self, covariate: str) -> CoxTerm:
        for t in self.terms:
            if t.covariate == covariate:
                return t
        raise KeyError(f"no covariate {covariate!r} in the Cox model ({', '.join(t.covariate for t in self.terms)})")


@dataclass(frozen=True)
class SurvivalSet(Result):
    """One endpoint on one set: KM per risk group, log-rank, Cox and Harrell's C."""

    n: int
    events: int
    kaplan_meier: tuple[KaplanMeier, ...] = ()
    logrank: ChiSquareTest | None = None
    cox: CoxResult | None = None
    c_index: CIndex | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class SurvivalEndpoint(Result):
    endpoint: str
    time: str
    event: str
    best_model: str
    threshold: float
    sets: dict[str, SurvivalSet] = field(default_factory=dict)
    skipped: str | None = None
    time_unit: str = "months"


@dataclass(frozen=True)
class SurvivalResult(Result):
    endpoints: tuple[SurvivalEndpoint, ...]


@dataclass(frozen=True)
class ReaderSet(Result):
    """The best model against each reader on one evaluation set."""

    best: dict[str, float]  # the best model's AUC
    readers: tuple[dict[str, Any], ...]
    mean_of_readers: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReaderResult(Result):
    best_model: str
    sets: dict[str, ReaderSet] = field(default_factory=dict)
    skipped: str | None = None


@dataclass(frozen=True)
class KappaResult(Result):
    """An agreement statistic (kappa) with its 95% CI, the patients it was computed on, and how
    its CI was obtained."""

    statistic: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    ci_method: str


@dataclass(frozen=True)
class PairAgreement(Result):
    """Two readers over the patients both read: linear-weighted kappa on the mRECIST categories
    (None when either gave only responder calls), kappa and percentage agreement on responder
    calls (Wilson CI)."""

    reader_a: str
    reader_b: str
    n: int
    weighted_kappa: KappaResult | None
    kappa_responder: KappaResult
    agreement: float
    agreement_ci: tuple[float, float]


@dataclass(frozen=True)
class ReaderAgreement(Result):
    """Several readers' mRECIST: their agreement and how the study's label came from them.

    Attributes:
        readers: the response columns (``response_1`` ...).
        reads_per_reader: patients each reader read.
        n_read_by_all: patients every reader read (Fleiss' kappa is computed on them).
        label_rule, ties: the majority rule and what was done with ties and unread patients.
    """

    readers: tuple[str, ...]
    reads_per_reader: dict[str, int]
    n_patients: int
    n_read_by_all: int
    fleiss_categories: KappaResult | None
    fleiss_responder: KappaResult | None
    pairs: tuple[PairAgreement, ...]
    label_rule: str
    ties: str


@dataclass(frozen=True)
class ExcludedPatient(Result):
    """A patient of the cohort table that the study could not use, and why."""

    patient_id: str
    reason: str


@dataclass(frozen=True)
class Example(Result):
    """An axial slice through a tumour's VOI centre before (``lr``) and after (``sr``) SR: each
    with ``image``, ``mask`` (2D lists), ``spacing_mm`` and ``flip`` (axes shown flipped)."""

    patient_id: str
    response: str
    set: str
    lr: dict[str, Any]
    sr: dict[str, Any]


@dataclass(frozen=True)
class RadiomicsRecord(Result):
    """Where the study's features came from: extracted here (with the extraction's settings), read
    from tables computed elsewhere, or none (the clinical half)."""

    source: str  # "extracted", "tables: PRE.csv, POST.csv" or "none"
    n_features: int = 0
    params: str | None = None
    n_features_with_rings: int | None = None
    spacing: str | None = None
    common_spacing_mm: float | None = None
    lr_spacing_mm: tuple[float, ...] | None = None
    sr_spacing_mm: tuple[float, ...] | None = None
    sr_method: str | None = None
    weights_sha256: str | None = None
    margin_vox: int | None = None

    @property
    def extracted(self) -> bool:
        return self.source == "extracted"


@dataclass(frozen=True)
class StudyResult(Result):
    """Everything `srgan3d evaluate` found; results.json is its `to_dict()`."""

    schema_version: int
    created: str
    cohort: dict[str, Any]
    config: dict[str, Any]
    radiomics: RadiomicsRecord
    split: Split
    roster: Roster
    metrics: dict[str, SetMetrics]  # set -> every roster model on it
    fitted: FittedSummary
    predictions: dict[str, list[Any]]  # patient_id, set, label, one column per model
    cohort_summary: tuple[dict[str, Any], ...]
    provenance: dict[str, Any]
    panel: PanelResult | None = None
    regions: tuple[RegionResult, ...] | None = None
    comparators: tuple[ComparatorResult, ...] = ()
    nomogram: Nomogram | None = None
    deep: DeepResult | None = None
    survival: SurvivalResult | None = None
    readers: ReaderResult | None = None
    examples: tuple[Example, ...] = ()
    sr_quality: dict[str, Any] | None = None
    agreement: ReaderAgreement | None = None  # several readers' mRECIST (response_1 ... response_k)
    excluded: tuple[ExcludedPatient, ...] = ()  # patients of the table the study could not use
    # section -> the one line saying why it is absent (no images, no post-SR features ...)
    absent: dict[str, str] = field(default_factory=dict)
    features_source: str = "extracted"  # "extracted", or the feature tables given (--features)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"results.json has schema version {version!r}; this srgan3d reads version {SCHEMA_VERSION}: "
                "rerun `srgan3d evaluate` to rebuild it"
            )
        return super().from_dict(d)

    @property
    def sets(self) -> tuple[str, ...]:
        return self.split.names
