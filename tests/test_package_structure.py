"""The package's shape: no import circle between its modules, and no module too long to read in one sitting.

Why tested: a circle (``heads`` needing ``presets`` needing ``heads``) forces function-level imports and makes
every module in it a dependency of every other, and a long module is a sign of several jobs in one file. Both
crept in once; these checks keep them out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import qrhead_integrations

PACKAGE = Path(qrhead_integrations.__file__).resolve().parent
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name an ``import from`` statement names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports: at import time or later, inside a function.

    A deferred import inside a function still needs the other module at run time: the old heads <-> presets
    circle hid that way. Imports under ``if TYPE_CHECKING:`` are for annotations only and are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for_types = {id(inner) for node in ast.walk(tree) if _is_type_checking(node) for inner in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in for_types:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            names = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in MODULES and not _encloses(name, module))
    return found


def _encloses(name: str, module: str) -> bool:
    """``name`` is ``module`` or a package above it: always mid-import already when ``module`` runs."""
    return module == name or module.startswith(f"{name}.")


def _graph() -> dict[str, set[str]]:
    return {module: _imports(module, path) for module, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in import order, the first repeated at the end), if any."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_package_has_no_import_cycles() -> None:
    graph = _graph()
    assert "qrhead_integrations.presets" in graph["qrhead_integrations.heads"]  # the walk sees real imports
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_circle() -> None:
    """The check itself: a planted circle is reported, a tree is not."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_presets_are_a_plain_catalogue() -> None:
    """The shipped sets know nothing of head specifications or fusion: those modules read the catalogue."""
    imports = _graph()["qrhead_integrations.presets"]
    assert imports <= {"qrhead_integrations.headset"}, imports


def test_no_module_is_longer_than_600_lines() -> None:
    lengths = {module: len(path.read_text(encoding="utf-8").splitlines()) for module, path in MODULES.items()}
    too_long = {module: count for module, count in lengths.items() if count > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
