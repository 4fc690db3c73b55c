"""The package's import graph has no cycle, counting the imports inside function bodies.

A cycle hidden in a function body still ties the modules together: neither
can be read, tested or loaded without the other. The import contract
(``make lint``) says which layer may import which; this test says that no two
modules need each other at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import oar_celery

ROOT = Path(oar_celery.__file__).parent


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (migrations are Alembic's, loaded by path)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules ``path`` imports anywhere in its text, module or submodule named."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            if target in known:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {name: set(imports_of(path, known)) - {name} for name, path in known.items()}
    for name in edges:  # "from pkg import sub" names both pkg and pkg.sub: keep the submodule only
        edges[name] = {t for t in edges[name] if not any(o.startswith(t + ".") for o in edges[name])}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other_even_inside_functions() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_sees_a_cycle_through_three_modules() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_graph_counts_imports_made_inside_function_bodies() -> None:
    edges = graph()
    assert "oar_celery.head.lib.hosts" in edges["oar_celery.head.lib.judas"]  # judas imports it in a function
