"""The import graph, imports inside functions counted: no cycle, metrics low, observe high."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "pkl5shim"
MODULES = {path.stem for path in PACKAGE.glob("*.py")}


def imported(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pkl5shim."):
            found.add(node.module.split(".")[1])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pkl5shim."))
    return (found & MODULES) - {path.stem}


GRAPH = {path.stem: imported(path) for path in PACKAGE.glob("*.py")}


def reachable(start: str) -> set[str]:
    """Every module ``start`` imports, directly or not."""
    seen: set[str] = set()
    todo = list(GRAPH[start])
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += GRAPH[module]
    return seen


def test_no_import_cycle() -> None:
    cycles = sorted(module for module in GRAPH if module in reachable(module))
    assert not cycles, {module: sorted(GRAPH[module]) for module in cycles}


def test_metrics_sits_low() -> None:
    assert GRAPH["metrics"] == {"config"}
    assert GRAPH["config"] == set()


def test_nothing_of_the_engine_imports_observe() -> None:
    importers = {module for module, imports in GRAPH.items() if "observe" in imports}
    assert importers <= {"patch", "pertest", "__init__"}, importers
