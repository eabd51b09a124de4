"""The package's layout rules, checked on the source: no import circle, layers, module size,
one error family.

Every ``import`` of a sedc module counts: at module level, inside a function (a lazy import hides
a loop, it does not remove it) and under ``if TYPE_CHECKING:`` (a typing-only import is still an
arrow a reader must follow). ``docs/architecture.md`` draws the same layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sedc"
MAX_LINES = 400

# Each folder of src/sedc is a layer; a layer may import itself, the base layer and the layers
# listed for it, all of them below it. Every folder must be listed (a new one is a decision).
LAYERS = {
    "sedc.base": set(),
    "sedc.imaging": set(),
    "sedc.models": set(),
    "sedc.display": {"sedc.models"},
    "sedc.core": {"sedc.imaging", "sedc.display"},
    "sedc.reference": {"sedc.imaging"},
    "sedc.report": set(),
    "sedc.scale": {"sedc.core", "sedc.imaging", "sedc.models", "sedc.display"},
    "sedc.benchmark": {"sedc.core", "sedc.imaging", "sedc.models", "sedc.display", "sedc.reference",
                       "sedc.scale"},
    "sedc.cli": {"sedc.core", "sedc.imaging", "sedc.models", "sedc.display", "sedc.report",
                 "sedc.scale", "sedc.benchmark"},
}
# The package's face (sedc/__init__.py) may reach every layer; nothing below may import it,
# except for the version string.
TOP = "sedc"


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


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
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


def layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_every_folder_is_a_layer_and_no_module_lies_loose():
    folders = {f"sedc.{p.name}" for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), f"unlisted or missing layers: {folders ^ set(LAYERS)}"
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})
    assert not loose, f"modules beside the layers, outside any folder: {loose}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_what_is_below_them(layer):
    allowed = LAYERS[layer] | {layer, "sedc.base"}
    wrong = []
    for name, targets in import_graph().items():
        if layer_of(name) != layer:
            continue
        for target in targets:
            if target == TOP:
                continue  # `from .. import __version__` (checked below)
            if layer_of(target) not in allowed:
                wrong.append(f"{name} -> {target}")
    assert not wrong, f"{layer} reaches above its layer: {wrong}"


def test_nothing_imports_the_package_face_but_for_its_version():
    wrong = []
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    for path in SRC.rglob("*.py"):
        name = module_name(path)
        if name == TOP or name == "sedc.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and TOP in resolve(name, path.name == "__init__.py", node)[:1]:
                face = [a.name for a in node.names
                        if a.name != "__version__" and f"{TOP}.{a.name}" not in modules]
                if face:
                    wrong.append(f"{name}: from {'.' * node.level} import {face}")
    assert not wrong, wrong


def test_import_sedc_loads_no_model_zoo_plotting_or_scale_code():
    import subprocess
    import sys

    code = ("import sys, sedc; print(sorted(m for m in sys.modules if m.startswith("
            "('sedc.models', 'sedc.display', 'sedc.scale', 'sedc.cli', 'sedc.report', 'matplotlib', "
            "'torchvision', 'timm', 'transformers', 'onnxruntime', 'ray'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_base_layer_imports_nothing_above_it():
    graph = import_graph()
    for name, targets in graph.items():
        if layer_of(name) == "sedc.base":
            assert all(layer_of(t) == "sedc.base" for t in targets), (name, targets)


BUILTIN_RAISES = re.compile(r"raise (ValueError|TypeError|RuntimeError|KeyError|IndexError|"
                            r"ImportError|OSError|FileNotFoundError|MemoryError|Exception)\(")


def test_every_deliberate_error_is_a_sedc_error():
    """``raise ValueError(...)`` and its kin are not raised directly: a caller catches sedc's own
    errors with one ``except sedc.SedcError`` (protocol hooks marked ``# protocol`` excepted)."""
    wrong = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if BUILTIN_RAISES.search(line) and "# protocol" not in line]
    assert not wrong, f"raise a sedc.base.errors class instead: {wrong}"


def test_every_error_class_derives_from_sedc_error():
    import inspect

    from sedc.base import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]
    assert len(classes) > 10
    assert all(issubclass(c, errors.SedcError) for c in classes)
    defined = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if p.name != "errors.py"
               for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
               if re.match(r"class \w+\((\w+\.)?\w*(Error|Exception)\b", line)]
    assert not defined, f"exception classes belong in sedc/base/errors.py: {defined}"


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
