"""The package's layering: calls only go downwards, so its import graph has no cycle.

Every ``import`` statement counts, including those inside functions (a lazy import that
breaks a cycle hides a misplaced boundary rather than removing it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import verilock_django

PACKAGE = "verilock_django"
ROOT = Path(verilock_django.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (absolute names), wherever the import stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # ``from . import x`` imports the submodule ``x`` when there is one.
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {target})
    return found & (modules - {name})


def import_graph() -> dict[str, set[str]]:
    """Each module of the package (migrations aside) with the package modules it imports."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.sync" in graph and f"{PACKAGE}.refresh" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_sync_core_is_a_stack() -> None:
    graph = import_graph()
    store, sync, refresh = (f"{PACKAGE}.{m}" for m in ("store", "sync", "refresh"))
    assert sync in graph[refresh] and store in graph[sync]
    assert not {sync, refresh} & graph[store]
    assert refresh not in graph[sync]


def test_the_doors_sit_above_the_core() -> None:
    """The start flow and discovery call the core; nothing in the core calls them."""
    graph = import_graph()
    doors = {f"{PACKAGE}.{m}" for m in ("create", "discover", "views", "urls_verify")}
    core = {f"{PACKAGE}.{m}" for m in ("client", "payloads", "store", "sync", "refresh", "users")}
    for module in core:
        assert not doors & graph[module], module
    assert f"{PACKAGE}.store" in graph[f"{PACKAGE}.create"]
    assert f"{PACKAGE}.sync" in graph[f"{PACKAGE}.discover"]


def test_only_the_store_writes_session_rows() -> None:
    """Outside the store, no module of the sync core writes through a model manager."""
    writes = re.compile(
        r"\b(Session|StepResult)\b[^\n]*\.(update|save|bulk_create|delete|create)\("
        r"|\b(insert_rows|upsert_rows)\("
    )
    for name in ("sync", "refresh", "discover", "create", "users", "views"):
        source = (ROOT / f"{name}.py").read_text()
        assert not writes.search(source), name
    assert writes.search((ROOT / "store.py").read_text())
