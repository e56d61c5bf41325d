"""The package's imports point one way, and a function's own processes load only what
they run.

The graph is read from the source (every ``import``, also those under TYPE_CHECKING and
inside functions: a circle of type imports is a circle of design too); what a template
loads is read from a real worker's ``sys.modules``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from helpers import FUNCTIONS

from fastinvoke import FunctionConfig, Invoker

PACKAGE = Path(__file__).resolve().parent.parent / "fastinvoke"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return (base.with_suffix(".py").exists() or base.with_suffix(".pyi").exists()  # _core
            or (base / "__init__.py").exists())


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names
                               if alias.name.startswith("fastinvoke"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    module = f"{base}.{node.module}" if node.module else base
                else:
                    module = node.module or ""
                if not module.startswith("fastinvoke"):
                    continue
                for alias in node.names:  # ``from . import wire`` imports a module
                    submodule = f"{module}.{alias.name}"
                    targets.add(submodule if _is_module(submodule) else module)
        targets.discard(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_circle() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _imports_of(graph: dict[str, set[str]], prefix: str) -> set[str]:
    return {target for module, targets in graph.items() if module.startswith(prefix)
            for target in targets if not target.startswith(prefix)}


def test_function_processes_import_nothing_above_them() -> None:
    """``runtime/`` runs in the function's processes: it builds on the wire format, the
    core and Lambda's limits, never on the server."""
    graph = import_graph()
    assert _imports_of(graph, "fastinvoke.runtime") <= {
        "fastinvoke.wire", "fastinvoke._core", "fastinvoke.limits"}


def test_the_pool_does_not_import_the_layers_above_it() -> None:
    graph = import_graph()
    above = {"fastinvoke.dispatch", "fastinvoke.invoker", "fastinvoke.deployment",
             "fastinvoke.admission", "fastinvoke.ledger", "fastinvoke.cli",
             "fastinvoke.client", "fastinvoke.remote"}
    imported = _imports_of(graph, "fastinvoke.pool")
    assert not imported & above
    assert not {m for m in imported if m.startswith(("fastinvoke.http", "fastinvoke.events",
                                                     "fastinvoke.endpoint"))}


def test_a_template_process_loads_no_server_module() -> None:
    """A worker is a fork of its template: its ``sys.modules`` (before the handler imports
    anything) is what the template loaded."""
    with Invoker() as invoker:
        invoker.create_function(FunctionConfig(name="modules", handler="modules.handler",
                                               code=FUNCTIONS))
        loaded = set(invoker.call("modules"))
    assert "fastinvoke.runtime.worker" in loaded  # a template's fork (its __main__)
    server = {"fastinvoke.invoker", "fastinvoke.dispatch", "fastinvoke.deployment",
              "fastinvoke.pool.supervisor", "fastinvoke.events.queue", "fastinvoke.logstore",
              "fastinvoke.http.server", "fastinvoke.config", "sqlite3", "zmq", "asyncio",
              "http.client", "uvloop"}
    assert not loaded & server
