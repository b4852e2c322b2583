"""The package's layout holds: no import cycle inside it, and the runtime never imports the tooling.

The import graph is read from the source (module-level imports, ``TYPE_CHECKING`` blocks excluded), so a
cycle is caught even where a function-level import would hide it at run time; then a fresh interpreter
proves that importing the runtime, every integration included, loads nothing from ``_tools``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "graffer_secevents"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
TOOLING = f"{PACKAGE}._tools"
# Public faces of the tooling (like ``testing`` for tests): modules the runtime does not import either.
TOOLING_FACES = frozenset({f"{PACKAGE}.detect"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: the module body and its ``try``/``if`` blocks."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                stack.extend(handler.body)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _all_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, also inside functions (a function-level import that closes a cycle only hides it)."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped:
            yield node


def _edges(module: str, *, lazy: bool = False) -> set[str]:
    """The package's modules that ``module`` imports when it is imported (``lazy``: or at any time)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: set[str] = set()
    for node in _all_imports(tree) if lazy else _top_level_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            source = _resolve(module, node)
            # `from pkg import name`: name is a submodule or an attribute of pkg.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
            ]
        found.update(t for t in targets if t in MODULES and t != module)
    return found


GRAPH: dict[str, set[str]] = {name: _edges(name) for name in MODULES}
LAZY_GRAPH: dict[str, set[str]] = {name: _edges(name, lazy=True) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle to report."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_tooling(name: str) -> bool:
    return name == TOOLING or name.startswith(TOOLING + ".") or name in TOOLING_FACES


def test_the_graph_reader_sees_the_imports_it_must_see() -> None:
    """A guard on the guard: known edges are found (so an empty cycle list means something)."""
    assert f"{PACKAGE}._pipeline" in GRAPH[f"{PACKAGE}._api"]
    assert f"{PACKAGE}._config" in GRAPH[f"{PACKAGE}._pipeline"]
    assert f"{PACKAGE}._catalog" in GRAPH[PACKAGE]
    assert f"{PACKAGE}._metrics" in GRAPH[f"{TOOLING}.catalog_doc"]
    assert f"{TOOLING}.schema" in LAZY_GRAPH[f"{TOOLING}.cli"]
    assert f"{TOOLING}.schema" not in GRAPH[f"{TOOLING}.cli"]


def test_the_package_has_no_import_cycle() -> None:
    """Function-level imports count too. The package ``__init__`` is left out: it imports the public face
    of everything, and ``from graffer_secevents import X`` inside the package is the same as importing X's
    module."""
    graph = {name: {t for t in targets if t != PACKAGE} for name, targets in LAZY_GRAPH.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_runtime_module_imports_the_tooling_at_import_time() -> None:
    offenders = {
        name: sorted(t for t in targets if _is_tooling(t))
        for name, targets in GRAPH.items()
        if not _is_tooling(name) and any(_is_tooling(t) for t in targets)
    }
    assert offenders == {}


def _runtime_modules() -> list[str]:
    return sorted(name for name in MODULES if not _is_tooling(name) and name != f"{PACKAGE}._pytest_plugin")


@pytest.mark.parametrize("module", _runtime_modules())
def test_importing_a_runtime_module_loads_no_tooling(module: str) -> None:
    """In a fresh interpreter, every runtime module (integrations too, their framework permitting)."""
    code = (
        "import importlib, sys\n"
        "try:\n"
        f"    importlib.import_module({module!r})\n"
        "except ImportError as exc:\n"  # an integration whose optional framework is not installed
        "    print('skip', exc)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({TOOLING!r}) or m in {sorted(TOOLING_FACES)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_the_architecture_page_names_every_module_once() -> None:
    """``docs/architecture.md`` has one line per module: a module added or removed without it fails here."""
    page = (ROOT.parents[1] / "docs" / "architecture.md").read_text()
    listed = re.findall(r"^\| `([\w/.]+\.py)` \|", page, flags=re.MULTILINE)
    on_disk = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py"))
    assert sorted(listed) == on_disk
