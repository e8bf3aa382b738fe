"""How the package is layered: decision code imports no Beam, media or ML library, and no
module of the package imports itself back through another."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("enforcement", "pipelines", "transforms", "models", "schemas", "warehouse")
HEAVY = ("apache_beam", "av", "cv2", "c2pa", "tensorflow")
DECISION_MODULES = (
    "enforcement.policy",
    "enforcement.strikes",
    "enforcement.appeals",
    "enforcement.events",
    "enforcement.statements",
    "enforcement.transparency",
    "enforcement.bank",
    "schemas.vocabulary",
)


@pytest.mark.parametrize("module", DECISION_MODULES)
def test_decision_code_loads_no_beam_media_or_ml_library(module):
    # A fresh interpreter: what this process already imported must not hide an import.
    probe = f"import sys, json, {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_checking_a_policy_file_needs_only_the_decision_code():
    probe = (
        "import sys, json\n"
        "from enforcement.policy import load_policy\n"
        "policy = load_policy('policies/synthetic_media_v1.yaml')\n"
        f"print(json.dumps([policy.version, sorted(m for m in {HEAVY!r} if m in sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    version, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert version and loaded == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, at any depth in the file (a function-level
    import is still an edge: it only hides a cycle)."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"enforcement.policy", "transforms.policy", "schemas.records"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def jobs_closure() -> set[str]:
    """Every package module the jobs import, at any depth."""
    graph = import_graph()
    seen, todo = set(), ["pipelines.batch", "pipelines.streaming", "pipelines.transparency"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_what_workers_run_never_imports_the_tools_or_the_training_code():
    seen = jobs_closure()
    assert "pipelines.graph" in seen and "models.handlers" in seen
    assert not {m for m in seen if m.split(".")[0] in ("tools", "training")}


def test_the_workers_package_holds_what_the_jobs_import_and_nothing_offline(tmp_path):
    """The serving build of setup.py (DEEPFAKE_PACKAGE=serving: what the launcher stages with
    --setup_file and the worker images install), built as Dataflow builds it."""
    environment = {**os.environ, "DEEPFAKE_PACKAGE": "serving"}
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)], cwd=ROOT, check=True,
                   env=environment, capture_output=True)  # fmt: skip
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as sdist:
        files = {"/".join(Path(name).parts[1:]) for name in sdist.getnames()}
    modules = {name.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for name in files
               if name.endswith(".py") and name != "setup.py"}  # fmt: skip
    assert jobs_closure() <= modules
    assert not {m for m in modules if m.split(".")[0] in ("tools", "training")}
    assert any(name.startswith("models/served/") for name in files)


def _package_sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text())


def test_each_shared_flag_is_declared_once():
    """--warehouse, --bigquery_endpoint, --min_cell_count and --policy (the live one) come from `pipelines.options.FLAGS`
    wherever a command takes them (`add_flags`), never from a parser of their own."""
    shared = {"--warehouse", "--bigquery_endpoint", "--min_cell_count", "--policy"}
    declared = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.args[0].value}"
        for path, tree in _package_sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args
        and isinstance(node.args[0], ast.Constant) and node.args[0].value in shared
    ]  # fmt: skip
    assert declared == []


def test_only_the_warehouse_package_parses_a_bigquery_uri():
    """The `bq://` scheme as a value (what a parser compares, strips or splits on) appears in
    `warehouse/` only; everyone else asks `warehouse.bigquery`."""
    parsing = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _package_sources()
        if path.relative_to(ROOT).parts[0] != "warehouse"
        for node in ast.walk(tree)
        if (isinstance(node, ast.Constant) and node.value in ("bq://", "bq:"))
        or (isinstance(node, ast.Name | ast.alias) and getattr(node, "id", getattr(node, "name", "")) == "URI_SCHEME")
    ]  # fmt: skip
    assert parsing == []
