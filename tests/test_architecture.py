"""The house rules of ../shared/ARCHITECTURE.md, checked on the code: two wings, no cycles, the
study wing enters the SR wing only through the engine, and no torch where none belongs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

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
        if mod != "srgan3d.__main__":  # `python -m srgan3d` is the CLI's other entry point
            assert "srgan3d.cli" not in deps, f"{mod} imports the CLI"
        if mod.startswith("srgan3d.sr"):
            assert not [d for d in deps if d.startswith("srgan3d.study")], f"{mod} (SR wing) imports the study wing"
        if mod.startswith("srgan3d.study"):
            into_sr = {d for d in deps if d.startswith("srgan3d.sr")}
            # the synthetic cohort renders its patients with the SR wing's phantom and acquisition model
            doors = {"srgan3d.sr.engine", "srgan3d.sr.methods"} | ({"srgan3d.sr.synthetic", "srgan3d.sr.degrade"}
                                             if mod == "srgan3d.study.synthetic" else set())  # fmt: skip
            assert into_sr <= doors, f"{mod} enters the SR wing other than by the engine: {into_sr}"
        if mod in ("srgan3d.volume", "srgan3d.provenance", "srgan3d.atomic", "srgan3d.discovery") or mod.startswith("srgan3d.io"):
            assert not [d for d in deps if d.startswith(("srgan3d.sr", "srgan3d.study"))], f"{mod} (hall) imports a wing"


#: Modules that must import no torch (the CLI starts, and the statistics run, without it).
NO_TORCH = [
    "srgan3d.volume", "srgan3d.io", "srgan3d.discovery", "srgan3d.study.stats", "srgan3d.study.modeling",
    "srgan3d.study.cohort", "srgan3d.study.panel", "srgan3d.study.survival", "srgan3d.study.readers",
    "srgan3d.study.report", "srgan3d.study.config", "srgan3d.sr.config", "srgan3d.cli",
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


#: Annotations that say nothing of what a value holds.
_UNTYPED = re.compile(r"\bAny\b|\bdict\b(?!\[)|\blist\b(?!\[)|\btuple\b(?!\[)")
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


def test_study_functions_take_and_return_typed_values():
    """No function of the study wing takes or returns `Any` or a bare `dict`/`list`/`tuple`: the
    steps pass the frozen results of `srgan3d.study.results` (or arrays and data frames). The
    JSON conversion itself (`to_dict`, `from_dict`, `result_base.plain`/`build`) is the exception."""
    exempt = {"to_dict", "from_dict", "plain", "build"}
    offenders = []
    for path in _study_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name in exempt:
                continue
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p)]
            annotations = [(p.arg, p.annotation) for p in params] + [("return", node.returns)]
            for name, ann in annotations:
                if ann is not None and _UNTYPED.search(ast.unparse(ann)):
                    offenders.append(f"{path.name}:{node.lineno} {node.name}({name}: {ast.unparse(ann)})")
    assert not offenders, "untyped parameters or returns:\n" + "\n".join(offenders)


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
               "srgan3d.study.radscore", "srgan3d.study.logistic", "srgan3d.study.validation", "srgan3d.study.readers",
               "srgan3d.study.agreement", "srgan3d.study.cohort", "srgan3d.study.feature_tables"}
    report = [m for m in graph if m.startswith("srgan3d.study.report")]
    assert len(report) >= 4, report
    for mod in report:
        assert not graph[mod] & fitting, f"{mod} imports {sorted(graph[mod] & fitting)}"
