"""Draw docs/architecture.png: pkl5shim's modules in layers, from their real imports.

    python docs/architecture.py

Every ``import`` of one pkl5shim module by another counts, also inside functions.
A module's layer is one above the highest layer it imports, so every arrow points
down; the script fails if the imports have a cycle (then there are no layers).
"""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent
PACKAGE = HERE.parent / "pkl5shim"

ROLES = {
    "format and settings": ("config", "errors", "codec", "wire", "transport", "metrics"),
    "engine": ("progress", "ops", "transfer", "receive", "check"),
    "calls": ("p2p", "requests", "collectives", "reductions", "neighbors"),
    "classes": ("comm", "surrogates"),
    "switching on, reporting": (
        "patch", "startup", "launch", "observe", "report", "pending", "stats_output",
        "__init__", "__main__",
    ),
    "test tools": ("pertest", "pytest_plugin"),
}  # fmt: skip
COLORS = ("#dbe9f6", "#fde2c8", "#d9f2d9", "#eadcf4", "#f6f0c4", "#e6e6e6")


def imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (anywhere in it)."""
    names = {path.stem for path in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else
                             [alias.name for alias in node.names])  # fmt: skip
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pkl5shim"):
                parts = (node.module or "").split(".")
                found.update(parts[1:2] or [alias.name for alias in node.names])
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.split(".")[1] for a in node.names if a.name.startswith("pkl5shim.")
                )
        graph[path.stem] = {name for name in found if name in names and name != path.stem}
    return graph


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: 0 for one that imports nothing of the package."""
    level: dict[str, int] = {}
    visiting: set[str] = set()

    def place(module: str) -> int:
        if module in level:
            return level[module]
        if module in visiting:
            raise SystemExit(f"import cycle through {module}: the modules have no layers")
        visiting.add(module)
        level[module] = 1 + max((place(dep) for dep in graph[module]), default=-1)
        visiting.discard(module)
        return level[module]

    for module in graph:
        place(module)
    return level


def role(module: str) -> int:
    for index, members in enumerate(ROLES.values()):
        if module in members:
            return index
    return len(ROLES) - 1


def draw(path: Path) -> None:
    """Write the picture to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    graph = imports()
    level = layers(graph)
    rows: dict[int, list[str]] = {}
    for module in sorted(graph, key=lambda m: (role(m), m)):
        rows.setdefault(level[module], []).append(module)
    width = max(len(row) for row in rows.values())
    place = {}
    for y, row in rows.items():
        for x, module in enumerate(row):
            place[module] = (x + (width - len(row)) / 2, y)
    fig, ax = plt.subplots(figsize=(1.45 * width + 1, 0.95 * len(rows) + 1.2))
    for module, deps in graph.items():
        x0, y0 = place[module]
        for dep in deps:
            x1, y1 = place[dep]
            ax.annotate("", (x1, y1 + 0.18), (x0, y0 - 0.18), arrowprops={
                "arrowstyle": "-|>", "color": "#8a8a8a", "lw": 0.5, "alpha": 0.55})  # fmt: skip
    for module, (x, y) in place.items():
        ax.text(x, y, module, ha="center", va="center", fontsize=8.5, bbox={
            "boxstyle": "round,pad=0.35", "fc": COLORS[role(module)], "ec": "#555555"})  # fmt: skip
    ax.set_xlim(-0.8, width - 0.2)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [f"layer {y}" for y in range(len(rows))], fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [Patch(fc=COLORS[i], ec="#555555", label=name) for i, name in enumerate(ROLES)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3,
              fontsize=8, frameon=False)  # fmt: skip
    ax.set_title("pkl5shim's modules; an arrow is an import (every one points down)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    draw(HERE / "architecture.png")
    print(f"wrote {HERE / 'architecture.png'}")
