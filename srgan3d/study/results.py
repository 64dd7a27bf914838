"""The study's typed result tree: small frozen objects that the steps of `srgan3d evaluate` pass on,
and that `results.json` serialises (with `SCHEMA_VERSION`).

Each object has `to_dict()` (JSON-ready: lists, numbers, strings) and `from_dict()`, which rebuilds
it from that dict alone, so `srgan3d report` renders from results.json without the images. Every
leaf is typed: the statistics are `srgan3d.study.stats`' own results (`RocResult`, `DelongResult`,
`OperatingPoint`, `CalibrationResult`), the options are `srgan3d.study.config`'s, and the tables
(odds ratios, coefficients, the nomogram, the cohort summary) are rows of their own type. The
free-form values (`JsonValue`) are four, listed in tests/test_architecture.py: a cohort's card,
a panel classifier's hyperparameters, and the per-patient extraction details. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from srgan3d.serialisation import JsonValue, Record
from srgan3d.study.config import DEFAULT_TIME_UNIT, DeepConfig, ModelingConfig, RadiomicsConfig
from srgan3d.study.stats import CalibrationResult, DelongResult, OperatingPoint, RocResult

#: Version of results.json's layout; `StudyResult.from_dict` refuses other versions.
SCHEMA_VERSION = 4

#: Set names with a fixed meaning in the cohort's `set` column; any other name is an external set.
TRAIN, TEST = "train", "test"

T = TypeVar("T")


def tested_sets(sets: dict[str, T]) -> dict[str, T]:
    """The sets the models are tested on: every set of the split but the training set."""
    return {name: v for name, v in sets.items() if name != TRAIN}


def _delong_fields(result: DelongResult) -> dict[str, float]:
    return {f.name: getattr(result, f.name) for f in dataclasses.fields(DelongResult)}


# --------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class Split(Record):
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
class ModelEntry(Record):
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
class Roster(Record):
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
class DelongPair(DelongResult):
    """A DeLong comparison of two roster models on one set (A - B)."""

    model_a: str
    model_b: str

    @classmethod
    def of(cls, a: str, b: str, result: DelongResult) -> DelongPair:
        return cls(model_a=a, model_b=b, **_delong_fields(result))


@dataclass(frozen=True)
class SetMetrics(Record):
    """Every roster model on one set: AUC with DeLong CI, operating point at the training
    threshold, calibration, pairwise DeLong tests and decision curves.

    Attributes:
        roc, operating_points, calibration: model -> the stats result.
        delong: one comparison per pair of models (A - B).
        decision_curve: ``threshold`` and one net-benefit list per model, ``treat_all`` and
            ``treat_none``.
        decision_ranges: model -> ``useful`` (above treat-all and treat-none) and ``highest``
            (and the best of the models): [first, last] threshold of each run on the curve's grid
            (`stats.decision_ranges`).
    """

    name: str
    n: int
    n_responders: int
    roc: dict[str, RocResult]
    operating_points: dict[str, OperatingPoint]
    calibration: dict[str, CalibrationResult]
    delong: tuple[DelongPair, ...]
    decision_curve: dict[str, list[float]]
    decision_ranges: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    def delong_pair(self, a: str, b: str) -> DelongResult:
        """The DeLong comparison of A against B, oriented as A - B whichever way it was stored."""
        for d in self.delong:
            if (d.model_a, d.model_b) == (a, b):
                return d
            if (d.model_a, d.model_b) == (b, a):
                return DelongResult(auc_a=d.auc_b, auc_b=d.auc_a, difference=-d.difference, z=-d.z,
                                    p_value=d.p_value, ci_low=-d.ci_high, ci_high=-d.ci_low, level=d.level)  # fmt: skip
        raise KeyError(f"no DeLong comparison of {a} and {b} on the {self.name} set")


# --------------------------------------------------------------------------------------------
# The study's parts


@dataclass(frozen=True)
class RadscoreCoefficient(Record):
    """One term of a radscore: its LASSO coefficient (on the standardised feature), the training
    mean and SD that standardise it, and its screening p-value (NaN for the intercept)."""

    feature: str
    coefficient: float
    train_mean: float
    train_sd: float
    screen_p: float


@dataclass(frozen=True)
class TransformRecord(Record):
    """How a clinical variable is modelled (`srgan3d.study.transforms`): as it is or on log10,
    and why (the skewness rule or the user's --transform)."""

    variable: str
    transform: str  # "log10" or "none"
    reason: str
    skewness: float | None
    modelled_as: str


@dataclass(frozen=True)
class OddsRatio(Record):
    """One row of a logistic model's table: coefficient (per unit of the modelled variable), and
    the odds ratio with its 95% CI and Wald p per `unit`: per SD of the training values for a
    continuous variable (`unit_size` = that SD), per unit (1 against 0) for a binary one."""

    variable: str
    coefficient: float
    odds_ratio: float
    or_ci_low: float
    or_ci_high: float
    p_value: float
    unit: str = "unit"  # "SD" or "unit"
    unit_size: float = 1.0


@dataclass(frozen=True)
class Optimism(Record):
    """Harrell's bootstrap optimism of one model's training-set AUC."""

    model: str
    apparent_auc: float
    optimism: float
    corrected_auc: float
    n_bootstrap: int
    failed_fits: int


@dataclass(frozen=True)
class RadscoreSummary(Record):
    formula: str
    features: tuple[str, ...]
    coefficients: tuple[RadscoreCoefficient, ...]
    n_features_in: int
    n_variance_kept: int
    n_screen_passed: int
    n_after_redundancy: int
    C: float
    fallback: bool


@dataclass(frozen=True)
class FitNote(Record):
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
class FittedSummary(Record):
    """What the training set fitted: the radscores and the logistic models' odds-ratio tables."""

    radscore: dict[str, RadscoreSummary]
    clinical_univariable: tuple[OddsRatio, ...]
    clinical_multivariable: tuple[OddsRatio, ...]
    combined_model: tuple[OddsRatio, ...]
    optimism: tuple[Optimism, ...] | None = None  # Harrell's bootstrap over the development sets
    # model ("clinical", "clinical_post_sr", "univariable: <variable>") -> how it was fitted:
    # separation (none / quasi-complete / complete), separating variables, method, remedy
    fits: dict[str, FitNote] = field(default_factory=dict)
    threshold_rule: str = ""

    @property
    def separated(self) -> dict[str, FitNote]:
        """The logistic models whose training data were separated."""
        return {k: v for k, v in self.fits.items() if v.separated}

    def optimism_of(self, model: str) -> Optimism | None:
        return next((o for o in self.optimism or () if o.model == model), None)


@dataclass(frozen=True)
class NomogramPredictor(Record):
    """One axis of a nomogram: the predictor's range, its reference value (0 points) and points
    per unit."""

    variable: str
    coefficient: float
    min: float
    max: float
    ref: float
    points_per_unit: float
    max_points: float


@dataclass(frozen=True)
class Nomogram(Record):
    """A logistic model's nomogram; linear predictor = offset + points * scale."""

    predictors: tuple[NomogramPredictor, ...]
    scale: float
    offset: float


@dataclass(frozen=True)
class ClassifierResult(Record):
    """One panel classifier on one image's features."""

    cv_auc: float
    params: dict[str, JsonValue]  # the hyperparameters the inner CV chose
    warnings: tuple[str, ...]
    train_auc: float
    threshold: float
    roc: dict[str, RocResult]  # evaluation set -> AUC with CI
    operating_points: dict[str, OperatingPoint]  # evaluation set -> at the training threshold
    corrected_auc: float = math.nan
    separation: str | None = None  # logistic regression only: none / quasi-complete / complete
    # the whole fit (grid search and classifier) redone with SEED_SPREAD inner-CV seeds: the lowest and
    # highest AUC on each tested set, and how many distinct settings the seeds chose
    seed_spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed_settings: int = 1


@dataclass(frozen=True)
class ClassifierComparison(DelongResult):
    """A DeLong comparison within the panel: one classifier on image A against image B (``post``
    against ``pre``), or on one image against a study model (B is then the model's name)."""

    classifier: str
    a: str
    b: str

    @classmethod
    def of(cls, classifier: str, a: str, b: str, result: DelongResult) -> ClassifierComparison:
        return cls(classifier=classifier, a=a, b=b, **_delong_fields(result))


@dataclass(frozen=True)
class PanelPick(Record):
    """The panel's best classifier and image, and the rule that chose it (training set only)."""

    classifier: str
    image: str
    cv_auc: float
    rule: str

    @property
    def key(self) -> str:
        return f"{self.classifier}_{self.image}"


@dataclass(frozen=True)
class PanelResult(Record):
    classifiers: tuple[str, ...]
    features: dict[str, tuple[str, ...]]
    inner_cv_folds: int
    n_bootstrap: int
    models: dict[str, dict[str, ClassifierResult]]  # classifier -> image -> result
    skipped: dict[str, str]
    delong: dict[str, tuple[ClassifierComparison, ...]]  # evaluation set -> comparisons
    best: PanelPick | None = None

    @property
    def best_key(self) -> str | None:
        return self.best.key if self.best else None


@dataclass(frozen=True)
class RegionImage(Record):
    """One region's radscore on one image: its features, training AUC and AUC per tested set."""

    features: tuple[str, ...]
    train_auc: float
    roc: dict[str, RocResult]


@dataclass(frozen=True)
class RegionResult(Record):
    """A radscore per peritumoral region and image."""

    region: str
    n_features: int
    images: dict[str, RegionImage] = field(default_factory=dict)  # "pre", "post"
    delong_post_vs_pre: dict[str, DelongResult] = field(default_factory=dict)  # set -> DeLong
    error: str | None = None


@dataclass(frozen=True)
class ComparatorResult(Record):
    comparator: str
    direction: str
    best_model: str
    roc: dict[str, RocResult]  # evaluation set -> AUC
    delong_vs_best: dict[str, DelongResult]  # evaluation set -> best - comparator
    order: str = ""  # how its values were ranked (`srgan3d.study.staging`)


#: A deep model whose training-set AUC is below this did not learn (nor one whose inner validation
#: loss never improved after its first epoch): the report says so, and DLRCR does not use it.
LEARNED_AUC_FLOOR = 0.6


@dataclass(frozen=True)
class DeepModelResult(Record):
    epochs: int
    best_val_loss: float
    n_fit: int
    n_val: int
    train_auc: float
    roc: dict[str, RocResult]  # evaluation set -> AUC
    best_epoch: int = 0
    not_learned: str | None = None  # why the model did not learn (`srgan3d.study.deep.learning_verdict`), or None

    @property
    def learned(self) -> bool:
        return self.not_learned is None


@dataclass(frozen=True)
class DlrcrModel(Record):
    """DLRCR, the logistic model on the post-SR deep score, the post-SR radscore and the clinical
    variables: its variables, odds-ratio table and how it was fitted (its metrics are the
    ``dlrcr`` model of each `SetMetrics`)."""

    variables: tuple[str, ...]
    table: tuple[OddsRatio, ...]
    fit: FitNote


@dataclass(frozen=True)
class DeepResult(Record):
    config: DeepConfig
    models: dict[str, DeepModelResult] = field(default_factory=dict)  # "pre", "post"
    delong_post_vs_pre: dict[str, DelongResult] = field(default_factory=dict)
    dlrcr: DlrcrModel | None = None
    skipped: str | None = None
    dlrcr_skipped: str | None = None  # why DLRCR was not built (the post-SR deep model did not learn)


@dataclass(frozen=True)
class CIndex(Record):
    """Harrell's C of a risk score with its percentile-bootstrap CI."""

    c_index: float
    ci_low: float
    ci_high: float
    n_bootstrap: int


@dataclass(frozen=True)
class ChiSquareTest(Record):
    """A chi-square test: the log-rank test across groups, or a Cox model's likelihood-ratio test."""

    statistic: float
    df: int
    p: float


@dataclass(frozen=True)
class KaplanMeier(Record):
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
class CoxTerm(Record):
    """One covariate of a Cox model: Wald statistics and the hazard ratio with its 95% CI."""

    covariate: str
    coef: float
    se: float
    z: float
    p: float
    hr: float
    hr_low: float
    hr_high: float
    unit: str = "unit"  # the hazard ratio per SD of the set's values (continuous) or per unit (binary)
    unit_size: float = 1.0


@dataclass(frozen=True)
class CoxResult(Record):
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
class SurvivalSet(Record):
    """One endpoint on one set: KM per risk group, log-rank, Cox and Harrell's C."""

    n: int
    events: int
    kaplan_meier: tuple[KaplanMeier, ...] = ()
    logrank: ChiSquareTest | None = None
    cox: CoxResult | None = None
    c_index: CIndex | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class SurvivalEndpoint(Record):
    endpoint: str
    time: str
    event: str
    best_model: str
    threshold: float
    sets: dict[str, SurvivalSet] = field(default_factory=dict)
    skipped: str | None = None
    time_unit: str = DEFAULT_TIME_UNIT


@dataclass(frozen=True)
class SurvivalResult(Record):
    endpoints: tuple[SurvivalEndpoint, ...]


@dataclass(frozen=True)
class ReaderRead(Record):
    """One reader on one set: AUC of the reads, the best model against them (best - reader), and
    the reader's operating point (a probability >= 0.5 or a score >= 3 calls a responder)."""

    reader: str
    scale: str  # "score" (1-5) or "probability"
    roc: RocResult
    delong_best_vs_reader: DelongResult
    sensitivity: float
    specificity: float


@dataclass(frozen=True)
class MeanOfReaders(Record):
    """The readers' mean (scores mapped to 0-1) as one more reader."""

    roc: RocResult
    delong_best_vs_mean: DelongResult


@dataclass(frozen=True)
class ReaderSet(Record):
    """The best model against each reader on one evaluation set."""

    best: RocResult  # the best model's AUC
    readers: tuple[ReaderRead, ...]
    mean_of_readers: MeanOfReaders | None = None


@dataclass(frozen=True)
class ReaderResult(Record):
    best_model: str
    sets: dict[str, ReaderSet] = field(default_factory=dict)
    skipped: str | None = None


@dataclass(frozen=True)
class KappaResult(Record):
    """An agreement statistic (kappa) with its 95% CI, the patients it was computed on, and how
    its CI was obtained."""

    statistic: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    ci_method: str


@dataclass(frozen=True)
class PairAgreement(Record):
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
class ReaderAgreement(Record):
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
class ExcludedPatient(Record):
    """A patient of the cohort table that the study could not use, and why."""

    patient_id: str
    reason: str


@dataclass(frozen=True)
class ExampleSlice(Record):
    """One axial slice of an example: intensities and tumour mask (rows of the slice), the pixel
    spacing and which axes are shown flipped."""

    image: tuple[tuple[float, ...], ...]
    mask: tuple[tuple[int, ...], ...]
    spacing_mm: tuple[float, ...]
    flip: tuple[bool, ...] = (False, False)


@dataclass(frozen=True)
class Example(Record):
    """An axial slice through a tumour's VOI centre before (``lr``) and after (``sr``) SR."""

    patient_id: str
    response: str
    set: str
    lr: ExampleSlice
    sr: ExampleSlice


@dataclass(frozen=True)
class RadiomicsRecord(Record):
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
class CohortRecord(Record):
    """The cohort table the study read: its name and file, whether it is simulated, patients in
    the table and studied, responders, and the patients whose extraction failed (with why)."""

    name: str
    file: str
    simulated: bool
    n_in_table: int
    n_patients: int
    n_responders: int
    failed: tuple[str, ...] = ()
    failed_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig(Record):
    """The options the study ran with: extraction (None when no features were extracted here:
    results.json writes ``{}``), modelling, the mode (``images``, ``features`` or ``clinical``),
    the readers' tie policy and the declared stage orders."""

    radiomics: RadiomicsConfig | None
    modeling: ModelingConfig
    mode: str
    response_ties: str | None = None
    stage_order: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["radiomics"] = d["radiomics"] or {}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyConfig:
        return super().from_dict({**d, "radiomics": d.get("radiomics") or None})


@dataclass(frozen=True)
class SummaryRow(Record):
    """One row of the cohort's summary table (responders against non-responders)."""

    variable: str
    level: str
    responders: str
    non_responders: str
    test: str
    p_value: float | None


@dataclass(frozen=True)
class Provenance(Record):
    """Versions of the software, the seed, and the cohort's card (cohort.json beside the table,
    free-form: a synthetic cohort's generator settings or a real cohort's source and licence)."""

    versions: dict[str, str]
    seed: int
    cohort_card: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SrMethodQuality(Record):
    """One upscale method on the demo's phantom against the true high resolution."""

    method: str
    psnr_db: float
    ssim: float
    psnr_tumour_db: float
    seconds: float


@dataclass(frozen=True)
class SrQuality(Record):
    """The demo's phantom: SR quality of each method against the true high resolution."""

    method: str
    note: str
    hr_shape: tuple[int, ...]
    hr_spacing_mm: tuple[float, ...]
    results: tuple[SrMethodQuality, ...]


@dataclass(frozen=True)
class StudyResult(Record):
    """Everything `srgan3d evaluate` found; results.json is its `to_dict()`."""

    schema_version: int
    created: str
    cohort: CohortRecord
    config: StudyConfig
    radiomics: RadiomicsRecord
    split: Split
    roster: Roster
    metrics: dict[str, SetMetrics]  # set -> every roster model on it
    fitted: FittedSummary
    predictions: dict[str, list[str | int | float]]  # patient_id, set, label, one column per model
    cohort_summary: tuple[SummaryRow, ...]
    provenance: Provenance
    panel: PanelResult | None = None
    regions: tuple[RegionResult, ...] | None = None
    comparators: tuple[ComparatorResult, ...] = ()
    nomogram: Nomogram | None = None
    deep: DeepResult | None = None
    survival: SurvivalResult | None = None
    readers: ReaderResult | None = None
    examples: tuple[Example, ...] = ()
    sr_quality: SrQuality | None = None
    agreement: ReaderAgreement | None = None  # several readers' mRECIST (response_1 ... response_k)
    excluded: tuple[ExcludedPatient, ...] = ()  # patients of the table the study could not use
    # section -> the one line saying why it is absent (no images, no post-SR features ...)
    absent: dict[str, str] = field(default_factory=dict)
    features_source: str = "extracted"  # "extracted", or the feature tables given (--features)
    transforms: tuple[TransformRecord, ...] = ()  # how each clinical variable is modelled
    tables: tuple[str, ...] = ()  # how each table was read: format, delimiter, encoding, sheet, response codes

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyResult:
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


def reported_aucs(tree: JsonValue, path: str = "") -> dict[str, float]:
    """Every AUC a results.json reports (a key that is or ends in ``auc``), by its path in the
    tree: what a stability check compares between two runs."""
    out: dict[str, float] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            p = f"{path}/{k}"
            if (k == "auc" or k.endswith("_auc")) and isinstance(v, int | float) and not isinstance(v, bool):
                out[p] = float(v)
            else:
                out.update(reported_aucs(v, p))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.update(reported_aucs(v, f"{path}[{i}]"))
    return out
