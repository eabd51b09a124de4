"""The package's layout rules, checked on the source: no import circle, layers, module size.

Every ``import`` of a sedc module counts, at module level or inside a function (a lazy import
hides a loop, it does not remove it); only imports under ``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sedc"
MAX_LINES = 600

# A layer may import only the layers listed for it (besides itself and the shared base modules).
BASE = {"sedc", "sedc._validate", "sedc.options", "sedc.result", "sedc.models.outputs"}
LAYERS = {
    "sedc.imaging": set(),
    "sedc.core": {"sedc.imaging"},
    "sedc.models": set(),
    "sedc.scale": {"sedc.core", "sedc.imaging", "sedc.models"},
    "sedc.report": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the sedc modules an ``ImportFrom`` reaches (module and submodules)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    names = [target] + [f"{target}.{alias.name}" for alias in node.names]
    return [name for name in names if name.startswith("sedc")]


def type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                targets = resolve(name, path.name == "__init__.py", node)
                if any(t in files for t in targets[1:]):  # `from . import sub`: the submodule
                    targets = targets[1:]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("sedc")]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    graph = import_graph()
    # Package __init__ files re-export their own submodules; a submodule importing a sibling
    # through the package face would be a circle, so __init__ edges count like any other.
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_what_is_below_them(layer):
    allowed = LAYERS[layer] | {layer}
    wrong = []
    for name, targets in import_graph().items():
        if name != layer and not name.startswith(layer + "."):
            continue
        for target in targets:
            if target in BASE or any(target == a or target.startswith(a + ".") for a in allowed):
                continue
            if target.split(".")[1] in {"_validate", "options", "result"}:
                continue
            wrong.append(f"{name} -> {target}")
    assert not wrong, f"{layer} reaches above its layer: {wrong}"


def test_base_modules_import_nothing_above_them():
    graph = import_graph()
    assert graph["sedc.options"] <= {"sedc._validate"}
    assert graph["sedc._validate"] == set()
    assert graph["sedc.result"] <= {"sedc.visualize"}  # only Explanation.plot, when called
    assert graph["sedc.visualize"] == set()


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
