"""No module of the package imports, directly or through others, a module that imports it.

The feature packages may read one another (a service reads another feature's queries, a page
view renders the composed page), within the layers that import-linter checks in `make lint`;
but no two modules depend on each other, so any one can be read, tested and moved on its own.
The app factory and its command line are the one pair allowed: the factory registers the
commands, and the commands build the app.
"""

from __future__ import annotations

import grimp

ALLOWED = {frozenset({"tracker", "tracker.cli"})}


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_two_modules_import_each_other() -> None:
    graph = grimp.build_graph("tracker")
    assert len(graph.modules) > 100
    cycles = [group for group in _cycles(graph) if frozenset(group) not in ALLOWED]
    assert not cycles, cycles


def test_the_check_finds_a_cycle() -> None:
    graph = grimp.build_graph("tracker")
    graph.add_import(importer="tracker.protocol.records", imported="tracker.participants.models")
    assert {"tracker.protocol.records", "tracker.participants.models"} <= set().union(
        *_cycles(graph)
    )
