"""The layers (docs/architecture.md), read from the source: imports only point down, and only tracking imports mlflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "healthscore"

#: lowest first; a module may import only modules of its own layer or below (never one above)
LAYERS: list[tuple[str, ...]] = [
    ("healthscore", "healthscore.errors", "healthscore.config"),
    ("healthscore.io",),
    ("healthscore.timeline", "healthscore.summary", "healthscore.simulate"),
    ("healthscore.features",),
    ("healthscore.drift", "healthscore.model"),
    ("healthscore.explain",),
    ("healthscore.gates", "healthscore.scoring", "healthscore.backtest"),
    ("healthscore.tracking", "healthscore.reports"),
    ("healthscore.jobs", "healthscore.spark"),
    ("healthscore.cli", "healthscore.__main__"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Project modules ``name`` imports (anywhere in the file, functions included) → first line number.

    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module, else ``pkg``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        for target in targets:
            if target in modules and target != name:
                found.setdefault(target, node.lineno)
            elif target.split(".")[0] == "mlflow":
                found.setdefault("mlflow", node.lineno)
    return found


def _layer(module: str) -> int:
    best, depth = None, -1
    for k, members in enumerate(LAYERS):
        for m in members:
            if (module == m or module.startswith(m + ".")) and len(m) > depth:
                best, depth = k, len(m)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in sorted(modules.items())}


def _cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a path of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, {})):
            if w not in graph:
                continue
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycles(graph):
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_imports_only_point_down(graph):
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)}) on line {line}"
              for m, targets in graph.items() for t, line in targets.items()
              if t != "mlflow" and _layer(t) > _layer(m)]
    assert upward == []


def test_only_tracking_imports_mlflow(graph):
    assert sorted(m for m, targets in graph.items() if "mlflow" in targets) == ["healthscore.tracking"]


def test_no_module_imports_another_packages_private_names():
    offenders = []
    for name, path in _modules().items():
        own = name.rpartition(".")[0] if path.name != "__init__.py" else name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
                target_package = node.module.rpartition(".")[0] if node.module.rpartition(".")[2].startswith("_") \
                    else node.module
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if node.module.rpartition(".")[2].startswith("_") and not own.startswith(target_package):
                    offenders.append(f"{name} imports module {node.module}")
                elif private and not (own == node.module.rpartition(".")[0] or own == node.module
                                      or own.startswith(node.module.rpartition(".")[0] + ".")):
                    offenders.append(f"{name} imports {', '.join(private)} from {node.module}")
    assert offenders == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in (SRC / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n >= 80:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []
