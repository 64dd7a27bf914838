"""The rules of docs/ARCHITECTURE.md, checked on the code: two wings, no cycles, the study wing
enters the SR wing only through the engine, no torch where none belongs, typed results, one
source for every default, and the design document itself complete (every module, every rule a test)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "srgan3d"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the srgan3d modules it imports (at any depth of the file, lazy imports included)."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith("srgan3d") and t in modules and t != name:
                    deps.add(t)
        graph[name] = {d for d in deps if d not in ("srgan3d", "srgan3d.sr", "srgan3d.study")}
    return graph


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in graph[n]:
            if state.get(d) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, n, d])}")
            if d not in state:
                visit(d, [*stack, n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


def test_the_wings_keep_their_doors():
    """The study enters the SR wing by the engine (and the choice of method and weights it runs);
    the SR wing never imports the study; nothing imports the CLI; the hall imports no wing."""
    graph = import_graph()
    assert any(n.startswith("srgan3d.sr.") for n in graph) and any(n.startswith("srgan3d.study.") for n in graph)
    for mod, deps in graph.items():
        if mod != "srgan3d.__main__" and not mod.startswith("srgan3d.cli"):  # `python -m srgan3d`: its other entry
            assert not [d for d in deps if d.startswith("srgan3d.cli")], f"{mod} imports the CLI"
        if mod.startswith("srgan3d.sr"):
            assert not [d for d in deps if d.startswith("srgan3d.study")], f"{mod} (SR wing) imports the study wing"
        if mod.startswith("srgan3d.study"):
            into_sr = {d for d in deps if d.startswith("srgan3d.sr")}
            # the synthetic cohort renders its patients with the SR wing's phantom and acquisition model
            doors = {"srgan3d.sr.engine", "srgan3d.sr.method_choice"} | ({"srgan3d.sr.synthetic", "srgan3d.sr.degrade"}
                                             if mod == "srgan3d.study.synthetic" else set())  # fmt: skip
            assert into_sr <= doors, f"{mod} enters the SR wing other than by the engine: {into_sr}"
        if mod in _HALLS_OWN or mod.startswith("srgan3d.io"):
            assert not [d for d in deps if d.startswith(("srgan3d.sr", "srgan3d.study"))], f"{mod} (hall) imports a wing"


#: The hall's own modules (the entry points, CLI and demo, use both wings).
_HALLS_OWN = ("srgan3d.volume", "srgan3d.provenance", "srgan3d.atomic", "srgan3d.discovery", "srgan3d.serialisation")


#: Modules that must import no torch (the CLI starts, and the statistics run, without it).
NO_TORCH = [
    "srgan3d.volume", "srgan3d.io", "srgan3d.discovery", "srgan3d.serialisation", "srgan3d.study.stats", "srgan3d.study.modeling",
    "srgan3d.study.cohort", "srgan3d.study.panel", "srgan3d.study.survival", "srgan3d.study.reader_study",
    "srgan3d.study.report", "srgan3d.study.config", "srgan3d.sr.config", "srgan3d.cli", "srgan3d.cli.sr", "srgan3d.cli.study",
]  # fmt: skip


def test_no_torch_where_none_belongs():
    """Each module imported in turn in one fresh interpreter: the first whose import brings torch
    in is named (the ones before it are clear)."""
    code = (
        "import importlib, sys\n"
        f"for m in {NO_TORCH!r}:\n"
        "    importlib.import_module(m)\n"
        "    if 'torch' in sys.modules:\n"
        "        print(m); sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, f"importing {run.stdout.strip()} imports torch{run.stderr}"


def test_public_api():
    import srgan3d

    for name in ("upscale_files", "evaluate_cohort", "train", "roc_auc_ci", "delong_test", "decision_curve",
                 "UpscaleConfig", "GeneratorEngine", "read_volume", "write_volume"):  # fmt: skip
        assert name in srgan3d.__all__ and callable(getattr(srgan3d, name)), name
    # every exported name resolves in the module it is said to live in (a moved one would not)
    assert [n for n in srgan3d.__all__ if not hasattr(srgan3d, n)] == []
    assert srgan3d.__version__


def test_survival_and_the_panel_run_without_torch():
    """Not only their imports: fitting a Cox model (lifelines) and the panel (sklearn, xgboost)."""
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from srgan3d.study.survival import cox\n"
        "from srgan3d.study.panel import fit_classifier\n"
        "rng = np.random.default_rng(0)\n"
        "df = pd.DataFrame({'t': rng.exponential(10, 40), 'e': rng.integers(0, 2, 40), 'x': rng.normal(size=40)})\n"
        "cox(df, 't', 'e', ['x'])\n"
        "fit_classifier('xgboost', 'post', df, (df.x > 0).astype(int).to_numpy(), ['x', 't'], seed=0, folds=3)\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, f"torch was imported{run.stderr}"


#: Annotations that say nothing of what a value holds (`object` as much as `Any`).
_UNTYPED = re.compile(r"\bAny\b|\bobject\b|\bdict\b(?!\[)|\blist\b(?!\[)|\btuple\b(?!\[)")
#: Fields of the SR wing and the hall that still hold free-form values, and why (every other field
#: of a class anywhere in the package is typed to its leaves).
_FREE_FORM_FIELDS = {
    "Volume.meta",  # the source format's own header details (NIfTI codes, DICOM identity, NRRD keys)
}
#: Study functions whose values are genuinely free-form, and why.
_FREE_FORM_FUNCTIONS = {
    # a table cell or any value to show: read or formatted whatever its type
    "parse_read", "_truthy", "_cell", "_shown", "esc", "fmt_num", "fmt_coef", "_digest", "_json_default",
    # a cohort table's row (pandas records: strings, numbers, paths)
    "sr_images", "_process", "process_patient", "_crop", "_sr_crop", "_ring_features", "_atomic_json",
    "draw_cohort_table", "_patient_row", "_render_patient", "_all_rows", "_render_all", "_write_table", "record",
    # scikit-learn's cv_results_ (arrays and lists of settings under string keys)
    "_simplest_near_best", "pick",
}  # fmt: skip
#: The only free-form (JsonValue) fields of the result tree: metadata whose keys the study does not read.
_FREE_FORM = {"Provenance.cohort_card", "ClassifierResult.params", "PatientFeatures.info", "RingFeatures.info"}


def _study_modules() -> list[Path]:
    return sorted((PKG / "study").glob("*.py"))


def test_the_result_tree_has_typed_leaves():
    """Every field of the study's results and options is a type the reader can follow to its
    leaves: no `Any`, no bare `dict`/`list`/`tuple`, and `JsonValue` only where listed."""
    offenders = []
    for path in _study_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    text = ast.unparse(item.annotation)
                    name = f"{node.name}.{item.target.id}"
                    if text.startswith("ClassVar"):
                        continue
                    if _UNTYPED.search(text) or ("JsonValue" in text and name not in _FREE_FORM):
                        offenders.append(f"{path.name}:{item.lineno} {name}: {text}")
    assert not offenders, "untyped fields:\n" + "\n".join(offenders)


#: Functions of the SR wing, `io/` and the hall whose values are genuinely free-form, and why.
_FREE_FORM_FUNCTIONS_SR = {
    "__init__.__getattr__",  # the package's lazy attributes (Python's module protocol)
    "atomic.write_csv_atomic",  # a CSV cell: the csv module writes any value's str
    "dicom._float_or_none",  # a DICOM element's value as pydicom gives it
    # the manifest's own type check: takes any value and checks it against its column
    "ledger.ManifestRow.update", "ledger._coerce", "ledger._is_a", "ledger._format", "ledger._parse",
    # a model card's JSON as written and read (its typed view is `WeightsCard`)
    "export._inherited_training_data", "export._card_markdown", "export._site_heldout", "export._validation_lines",
    "export._data_lines", "licences.data_entry", "licences.data_entries", "licences.weights_licence",
    "licences._opt_bool", "licences.card_licence", "licences._as_list", "licences.announce_licence",
    "licences.notice_text", "protocol.save_plane_net", "protocol.plane_card_markdown", "weights.save_weights",
    "weights.WeightsCard.__init__", "weights.WeightsCard.__getitem__",
    # a volume's source metadata (`Volume.meta`, free-form by field)
    "slice_profile.slice_geometry", "slice_profile._inplane_factor",
}  # fmt: skip


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function of a module with its qualified name (``Class.method``, ``outer.inner``)."""
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append((prefix + child.name, child))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


class _NoText(ast.NodeTransformer):
    """An annotation without its strings (typer's help texts are not types)."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def test_functions_take_and_return_typed_values():
    """No function anywhere takes or returns `Any`, `object` or a bare `dict`/`list`/`tuple`: the
    study's steps pass the frozen results of `srgan3d.study.results` (or arrays and data frames),
    the SR wing its configs, records and tensors. The JSON conversion itself (`to_dict`,
    `from_dict`, `serialisation.plain`/`build`/`check_keys`) and the free-form values listed with
    their reasons are the exceptions."""
    exempt = {"to_dict", "from_dict", "plain", "build", "check_keys"}
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        study = path.parent.name == "study"
        for qualname, node in _functions(ast.parse(path.read_text())):
            if node.name in exempt or (node.name in _FREE_FORM_FUNCTIONS if study
                                       else f"{path.stem}.{qualname}" in _FREE_FORM_FUNCTIONS_SR):  # fmt: skip
                continue
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p)]
            for name, ann in [(p.arg, p.annotation) for p in params] + [("return", node.returns)]:
                if ann is not None and _UNTYPED.search(ast.unparse(_NoText().visit(ann))):
                    offenders.append(f"{path.relative_to(PKG)}:{node.lineno} {qualname}({name}: {ast.unparse(ann)})")
    assert not offenders, "untyped parameters or returns:\n" + "\n".join(offenders)
    known = {f"{p.stem}.{q}" for p in PKG.rglob("*.py") for q, _ in _functions(ast.parse(p.read_text()))}
    unused = _FREE_FORM_FUNCTIONS_SR - known
    assert not unused, f"listed as free-form but not in the package: {unused}"


def test_every_wings_and_the_halls_fields_are_typed():
    """Beyond the study: no field of a class in the SR wing, `io/` or the hall holds `Any`,
    `object` or a bare container, but for the free-form values listed with their reasons."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path.parent.name == "study":
            continue  # the study's own rule, above
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    text, name = ast.unparse(item.annotation), f"{node.name}.{item.target.id}"
                    if not text.startswith("ClassVar") and _UNTYPED.search(text) and name not in _FREE_FORM_FIELDS:
                        offenders.append(f"{path.relative_to(PKG)}:{item.lineno} {name}: {text}")
    assert not offenders, "untyped fields:\n" + "\n".join(offenders)


#: Classes that write a dict of their own without the serialiser, and why: summaries a model card
#: holds rounded as the card shows them, and the card itself (a mapping as written).
_OWN_DICTS = {"PlaneFit", "AxisDetail", "WeightsCard"}


def test_one_serialiser_and_one_unknown_key_check():
    """Configs and results alike become JSON and come back through `srgan3d.serialisation.Record`;
    a class that writes or reads its own dict is a Record (a layout of its own on top of it) or
    listed; the unknown-key check is written once."""
    own = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and path.name != "serialisation.py":
                methods = {m.name for m in node.body if isinstance(m, ast.FunctionDef)}
                record = any(ast.unparse(b) == "Record" for b in node.bases)
                if methods & {"to_dict", "from_dict"} and not record and node.name not in _OWN_DICTS:
                    own.append(f"{path.relative_to(PKG)}:{node.name}")
        if path.name != "serialisation.py":
            text = path.read_text(encoding="utf-8")
            # a mapping's keys against a dataclass's fields, other than in `check_keys`
            assert not re.search(r"-\s*(set\(|\{)\s*f\.name for f in", text), f"{path}: a second unknown-key check"
    assert own == [], f"classes with a serialiser of their own: {own}"
    from srgan3d.sr.config import TrainConfig

    with pytest.raises(ValueError, match="TrainConfig: unknown key"):
        TrainConfig.from_dict({"lr": 1})


#: Modules without a test file of their own, and where they are tested.
_TESTED_ELSEWHERE = {
    "__init__.py": "test_public_api here", "__main__.py": "the CLI's tests (python -m srgan3d)",
    "cli/common.py": "test_cli.py", "cli/sr.py": "test_cli.py and sr/", "cli/study.py": "test_cli.py and study/",
    "demo.py": "test_cli.py (the demo end to end)", "provenance.py": "every manifest and card test",
    "io/__init__.py": "io/ (read_volume and write_volume dispatch to each format)",
    "sr/__init__.py": "sr/test_weights.py (the default weights' name)",
    "sr/bench.py": "test_cli.py (benchmark --quick, its JSON layout)", "sr/export.py": "sr/test_train.py, test_bf16.py",
    "sr/protocol.py": "sr/test_through_plane.py (protocol weights trained, applied, refused)",
    "study/__init__.py": "-", "study/logistic.py": "study/test_firth.py (Logistic and its Firth fallback)",
    "study/regions.py": "study/test_rings.py, test_evaluation.py", "study/results.py": "study/test_report.py",
    "study/report_figures.py": "study/test_report.py", "study/report_format.py": "study/test_report.py",
    "study/report_sections.py": "study/test_report.py",
}  # fmt: skip


def test_every_module_has_a_test_file_of_its_own_or_says_where_it_is_tested():
    """`tests/` mirrors `srgan3d/`: `srgan3d/sr/x.py` is tested in `tests/**/test_x.py`, or the
    module is listed with the tests that cover it."""
    tests = {p.stem for p in (PKG.parent / "tests").rglob("test_*.py")}
    def own(m: Path) -> str:  # a package's __init__.py is tested as the package
        return f"test_{m.parent.name if m.stem == '__init__' else m.stem}"

    missing = [str(m.relative_to(PKG)) for m in sorted(PKG.rglob("*.py")) if own(m) not in tests
               and str(m.relative_to(PKG)) not in _TESTED_ELSEWHERE]  # fmt: skip
    assert not missing, f"modules with no test file of their own and not listed: {missing}"
    stale = [k for k in _TESTED_ELSEWHERE if not (PKG / k).is_file()]
    assert not stale, f"listed modules that no longer exist: {stale}"


def test_no_study_function_is_longer_than_60_lines():
    """A function of the study wing reads as one job: at most 60 lines of code (its docstring
    and signature not counted)."""
    offenders = []
    for path in _study_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if body and body[-1].end_lineno - body[0].lineno + 1 > 60:
                    offenders.append(f"{path.name}:{node.lineno} {node.name}: {body[-1].end_lineno - body[0].lineno + 1}")
    assert not offenders, "functions over 60 lines:\n" + "\n".join(offenders)


def test_the_report_renders_results_and_imports_no_fitting_module():
    """report.py and report_figures.py read the result tree (and stats' formatters) only: the
    model descriptors live in `srgan3d.study.results`, so the report needs nothing that fits."""
    graph = import_graph()
    fitting = {"srgan3d.study.modeling", "srgan3d.study.panel", "srgan3d.study.survival", "srgan3d.study.deep",
               "srgan3d.study.regions", "srgan3d.study.comparators", "srgan3d.study.nomogram", "srgan3d.study.evaluation", "srgan3d.study.radiomics", "srgan3d.study.firth",
               "srgan3d.study.radscore", "srgan3d.study.logistic", "srgan3d.study.resampling", "srgan3d.study.reader_study",
               "srgan3d.study.agreement", "srgan3d.study.cohort", "srgan3d.study.feature_tables"}
    report = [m for m in graph if m.startswith("srgan3d.study.report")]
    assert len(report) >= 4, report
    for mod in report:
        assert not graph[mod] & fitting, f"{mod} imports {sorted(graph[mod] & fitting)}"


DESIGN = PKG.parent / "docs" / "ARCHITECTURE.md"


def test_every_module_is_in_the_design_document():
    """docs/ARCHITECTURE.md lists every module of the package by its path (`sr/engine.py`)."""
    text = DESIGN.read_text()
    missing = [str(p.relative_to(PKG)) for p in sorted(PKG.rglob("*.py")) if f"`{p.relative_to(PKG)}`" not in text]
    assert not missing, f"modules not in docs/ARCHITECTURE.md: {missing}"


def test_every_rule_names_a_test():
    """Each row of the design document's rules table names the test(s) of this file that check it,
    and every test of this file is named there."""
    text = DESIGN.read_text()
    rules = text.split("## Rules", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in rules.splitlines() if r.startswith("| ") and not r.startswith(("| rule", "|---"))]
    assert len(rows) >= 8
    here = {n.name for n in ast.parse(Path(__file__).read_text()).body if isinstance(n, ast.FunctionDef)}
    tests = {n for n in here if n.startswith("test_")}
    named = set()
    for row in rows:
        found = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[-2])
        assert found, f"a rule names no test: {row}"
        named.update(found)
    assert named <= tests, f"rules name tests that do not exist: {sorted(named - tests)}"
    assert tests <= named, f"tests that check no stated rule: {sorted(tests - named)}"


#: CLI options that set no config field, and why.
CLI_ONLY = {
    ("upscale", "inputs"), ("upscale", "output"), ("upscale", "shard"),  # what to run on / a part of it
    ("upscale", "scale"),  # '2' or 'through-plane' or '1,1,2': parsed into scale and through_plane
    ("benchmark", "output"), ("benchmark", "quick"),
    ("merge-manifests", "output"), ("report", "output"), ("synth-cohort", "output"), ("demo", "output"),
    ("demo", "workers"), ("synth-cohort", "workers"), ("evaluate", "workers"),  # 0: as many as CPU cores
    ("synth-cohort", "seed"),
    ("evaluate", "cohort"), ("evaluate", "output"), ("evaluate", "scale"), ("evaluate", "dl"), ("evaluate", "features"),
    ("evaluate", "features_sr"), ("evaluate", "response_ties"), ("evaluate", "stage_order"),
    ("evaluate", "response_codes"), ("evaluate", "extract_only"), ("evaluate", "shard"),
    ("train", "data"), ("train", "output"), ("train", "val"), ("train", "config"), ("train", "resume"), ("train", "init"),
    ("train", "through_plane"), ("train", "slice_thickness"),
    # None: the recipe's (TrainConfig's) value stands unless the option is given
    ("train", "pretrain_steps"), ("train", "gan_steps"), ("train", "patch_size"), ("train", "batch_size"),
    ("train", "phantoms"), ("train", "seed"), ("train", "device"), ("train", "minutes"), ("train", "amp"),
    ("export", "run_dir"), ("export", "output"), ("export", "raw"), ("export", "description"), ("export", "checkpoint"),
}  # fmt: skip


def _cli_sources() -> dict[tuple[str, str], object]:
    """(command, option) -> the default of the config field or function argument it sets."""
    import inspect

    from srgan3d.demo import run_demo
    from srgan3d.sr.bench import BenchmarkConfig
    from srgan3d.sr.config import UpscaleConfig
    from srgan3d.sr.protocol import read_protocol_scans
    from srgan3d.study.config import DEFAULT_TIME_UNIT, DeepConfig, ModelingConfig, RadiomicsConfig
    from srgan3d.study.synthetic import CohortSpec

    up, rad, mod, deep, bench, spec = (UpscaleConfig(), RadiomicsConfig(), ModelingConfig(), DeepConfig(),
                                       BenchmarkConfig(), CohortSpec())  # fmt: skip
    demo = {k: p.default for k, p in inspect.signature(run_demo).parameters.items()}
    joined = ",".join
    out: dict[tuple[str, str], object] = {}
    for opt in ("method", "weights", "device", "window", "sw_batch_size", "overlap", "amp", "dtype", "channels_last",
                "cudnn_benchmark", "overwrite", "compress", "output_format", "dc", "self_supervised_minutes",
                "slice_profile"):  # fmt: skip
        out[("upscale", opt)] = getattr(up, opt)
    out[("upscale", "slice_thickness")], out[("upscale", "adapt")] = up.slice_thickness_mm, up.adapt_steps
    out.update({("evaluate", "spacing"): rad.spacing, ("evaluate", "common_spacing"): rad.common_spacing_mm,
                ("evaluate", "method"): rad.method, ("evaluate", "weights"): rad.weights, ("evaluate", "device"): rad.device,
                ("evaluate", "through_plane_minutes"): rad.through_plane_minutes, ("evaluate", "margin"): rad.margin_vox,
                ("evaluate", "peritumoral"): joined(f"{w:g}" for w in rad.peritumoral),
                ("evaluate", "params"): None,  # None: RadiomicsConfig's own parameter file (resolve_params)
                ("evaluate", "clinical"): joined(mod.clinical), ("evaluate", "transform"): joined(mod.transforms),
                ("evaluate", "test_size"): mod.test_size, ("evaluate", "seed"): mod.seed,
                ("evaluate", "bootstrap"): mod.n_bootstrap, ("evaluate", "classifiers"): joined(mod.classifiers),
                ("evaluate", "panel_bootstrap"): mod.panel_bootstrap, ("evaluate", "comparators"): joined(mod.comparators),
                ("evaluate", "dl_dual"): deep.dual, ("evaluate", "dl_epochs"): deep.epochs,
                ("evaluate", "dl_crop_vox"): deep.crop_vox, ("evaluate", "dl_widen"): deep.widen_factor,
                ("evaluate", "time_unit"): DEFAULT_TIME_UNIT})  # fmt: skip
    out.update({("benchmark", "shape"): joined(map(str, bench.shape)), ("benchmark", "device"): bench.device,
                ("benchmark", "windows"): bench.windows, ("benchmark", "batches"): bench.batches,
                ("benchmark", "repeats"): bench.repeats, ("benchmark", "end_to_end"): bench.end_to_end,
                ("benchmark", "weights"): bench.weights, ("benchmark", "folder"): bench.folder,
                ("benchmark", "folder_shape"): bench.folder_shape, ("benchmark", "memory_gb"): bench.memory_gb})  # fmt: skip
    out.update({("demo", "seed"): demo["seed"], ("demo", "patients"): demo["n_patients"],
                ("demo", "responders"): demo["n_responders"], ("demo", "external"): demo["n_external"],
                ("demo", "external_responders"): demo["external_responders"], ("demo", "bootstrap"): demo["n_bootstrap"],
                ("synth-cohort", "patients"): spec.n_patients, ("synth-cohort", "responders"): spec.n_responders,
                ("synth-cohort", "second_phase"): spec.second_phase, ("synth-cohort", "external"): spec.n_external,
                ("synth-cohort", "external_responders"): spec.external_responders,
                ("train", "slice_profile"): inspect.signature(read_protocol_scans).parameters["profile"].default})  # fmt: skip
    return out


def test_every_cli_default_is_its_configs():
    """One source for every default: each option of each command defaults to the config field (or
    function argument) it sets; an option that sets none is listed in CLI_ONLY with its reason."""
    import inspect

    from srgan3d import cli

    sources = _cli_sources()
    unlisted, different = [], []
    for cmd in cli.app.registered_commands:
        name = cmd.name or cmd.callback.__name__
        for opt, p in inspect.signature(cmd.callback).parameters.items():
            key = (name, opt)
            if key in CLI_ONLY:
                continue
            if key not in sources:
                unlisted.append(key)
            elif p.default != sources[key]:
                different.append(f"{name} --{opt.replace('_', '-')}: CLI {p.default!r}, config {sources[key]!r}")
    assert not unlisted, f"CLI options that set no known config field (add them to _cli_sources or CLI_ONLY): {unlisted}"
    assert not different, "CLI defaults that differ from their configs:\n" + "\n".join(different)
