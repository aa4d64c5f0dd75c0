"""The package's layers: imports only go down (ground → find → steer → study → report → cli), no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "langneurons"
LAYERS = {"find": 1, "steer": 2, "study": 3, "report": 4, "cli": 5, "__main__": 6}  # others: the ground floor, 0


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    return LAYERS.get(module.split(".")[0], 0)


def imports(path: Path) -> set[str]:
    """The package modules `path` imports, anywhere in it (lazy imports inside functions too)."""
    here = module_name(path).split(".") if module_name(path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = [*base, *(node.module.split(".") if node.module else [])]
            for alias in node.names:  # `from . import methods` names a module
                candidate = ".".join([*target, alias.name])
                found.add(candidate if module_path(candidate) else ".".join(target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("langneurons."):
            found.add(node.module.removeprefix("langneurons."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("langneurons.") for a in node.names if a.name.startswith("langneurons.")}
    return {name for name in found if name and module_path(name)}


def module_path(name: str) -> Path | None:
    base = PACKAGE.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py") if module_name(p)}


def test_the_graph_is_read():
    """A guard on the test itself: the graph has every stage and real edges."""
    assert {"find.run", "steer.intervene", "report.write", "cli.app"} <= set(GRAPH)
    assert "find.store" in GRAPH["find.record"] and "hooks" in GRAPH["find.record"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down(module):
    upward = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports a higher layer: {upward}"


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
