"""pscs's layers, read from its import graph (docs/design/architecture.md).

Every ``import`` and ``from ... import`` in every module under ``pscs/`` counts: at module
level, inside functions, and under ``TYPE_CHECKING`` alike, because each is a dependency
of the importing code whether or not it runs at import time.

The package graph has one node per part of pscs:

* a sub-package ``pscs/X/`` is the node ``pscs.X``, all its modules together;
* a top-level module ``pscs/X.py`` is a node ``pscs.X`` of its own: ``errors``, ``config``,
  ``signing``, ``secretbox`` and ``csvsafe`` are foundations (they import nothing of pscs), ``runtime``
  wires the shared parts of a process (database, audit trail, profile) and sits just
  above audit, ``metrics``, ``install`` and ``startup`` sit above the domain packages they
  gather; each is checked like any package;
* ``pscs/__init__.py`` (the version) is the node ``pscs``;
* the service process (``pscs serve``: web app, recorders, sweeper) is composed in
  ``pscs.cli.serve``, an edge, since it starts the web app.

The rules (each one test below):

* ``pscs.media`` imports nothing of pscs but itself;
* ``pscs.policy`` imports nothing of pscs but itself (the decisions take the profile);
* ``pscs.storage`` does not import ``pscs.retention`` (retention registers its protection
  sources with storage);
* nothing but the edges ``pscs.web`` and ``pscs.cli`` imports ``pscs.web`` or ``pscs.cli``;
* the simulator ``pscs.sim`` imports nothing of pscs but itself and ``pscs.media``;
* the foundations ``pscs.errors``, ``pscs.config``, ``pscs.signing``, ``pscs.secretbox`` and
  ``pscs.csvsafe`` import nothing of pscs;
* pictures leave only through the egress service: nothing outside ``pscs.video`` imports
  what makes pictures for a viewer (``pscs.video.playback``, ``pscs.video.masking``);
* the package graph has no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pscs"
EDGES = ("pscs.web", "pscs.cli")
FOUNDATIONS = ("pscs.errors", "pscs.config", "pscs.signing", "pscs.secretbox", "pscs.csvsafe")
# What makes pictures for a viewer; outside pscs.video only pscs.video.egress is used.
PICTURE_MAKERS = ("pscs.video.playback", "pscs.video.masking")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "pscs.storage.deletion"
    target: str  # the module imported, e.g. "pscs.storage.protection"
    path: str  # the importing file, relative to the repository
    line: int

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} ({self.path}:{self.line})"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, *, is_package: bool, known: set[str], path: str = "") -> list[Import]:
    """Every import of pscs in ``source`` (the text of ``module``), wherever it stands."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, path, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                # `from pscs.policy import decisions` imports the module pscs.policy.decisions
                submodule = f"{origin}.{alias.name}"
                found.append(Import(module, submodule if submodule in known else origin, path, node.lineno))
    return [i for i in found if i.target == "pscs" or i.target.startswith("pscs.")]


def read_graph(root: Path = PACKAGE) -> list[Import]:
    files = sorted(root.rglob("*.py"))
    known = {module_name(f, root) for f in files}
    graph: list[Import] = []
    for f in files:
        graph.extend(
            imports_in(
                f.read_text(encoding="utf-8"),
                module_name(f, root),
                is_package=f.name == "__init__.py",
                known=known,
                path=str(f.relative_to(root.parent)),
            )
        )
    return graph


def node_of(module: str) -> str:
    """The package-graph node of a module: ``pscs.X`` for ``pscs.X`` and all below it."""
    return ".".join(module.split(".")[:2])


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


GRAPH = read_graph()


# The reader itself ------------------------------------------------------------------------------
def test_the_reader_finds_imports_wherever_they_stand() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import pscs.errors\n"
        "from . import layout\n"
        "from ..db.base import utcnow\n"
        "from pscs.policy import decisions\n"
        "if TYPE_CHECKING:\n"
        "    from pscs.runtime import Runtime\n"
        "def f():\n"
        "    from pscs.retention import sources\n"
    )
    known = {"pscs.storage.layout", "pscs.policy.decisions", "pscs.retention.sources"}
    found = {(i.target, i.line) for i in imports_in(source, "pscs.storage.x", is_package=False, known=known)}
    assert found == {
        ("pscs.errors", 2),
        ("pscs.storage.layout", 3),
        ("pscs.db.base", 4),
        ("pscs.policy.decisions", 5),
        ("pscs.runtime", 7),
        ("pscs.retention.sources", 9),
    }


def test_the_reader_sees_the_real_graph() -> None:
    edges = {(i.module, i.target) for i in GRAPH}
    assert ("pscs.runtime", "pscs.audit.log") in edges
    assert ("pscs.storage.deletion", "pscs.storage.protection") in edges
    assert len({node_of(i.module) for i in GRAPH}) > 15


# The rules --------------------------------------------------------------------------------------
def _may_import_only(package: str, allowed: tuple[str, ...]) -> list[Import]:
    return [i for i in GRAPH if within(i.module, package) and not any(within(i.target, a) for a in allowed)]


RULES = {
    "media imports nothing of pscs": lambda: _may_import_only("pscs.media", ("pscs.media",)),
    "policy imports nothing of pscs": lambda: _may_import_only("pscs.policy", ("pscs.policy",)),
    "storage does not import retention": lambda: [
        i for i in GRAPH if within(i.module, "pscs.storage") and within(i.target, "pscs.retention")
    ],
    "only the edges import the edges": lambda: [
        i for i in GRAPH if not any(within(i.module, e) for e in EDGES) and any(within(i.target, e) for e in EDGES)
    ],
    "the simulator imports only media": lambda: _may_import_only("pscs.sim", ("pscs.sim", "pscs.media")),
    "the foundations import nothing of pscs": lambda: [i for f in FOUNDATIONS for i in _may_import_only(f, (f,))],
    "pictures leave only through the egress service": lambda: [
        i for i in GRAPH if not within(i.module, "pscs.video") and i.target in PICTURE_MAKERS
    ],
}


@pytest.mark.parametrize("rule", list(RULES))
def test_layer_rule(rule: str) -> None:
    offending = RULES[rule]()
    assert not offending, f"{rule}:\n" + "\n".join(f"  {i}" for i in offending)


# Cycles -----------------------------------------------------------------------------------------
def package_edges(graph: Iterable[Import]) -> dict[str, dict[str, Import]]:
    """node -> {node it imports: the first import that makes it so}."""
    edges: dict[str, dict[str, Import]] = {}
    for i in graph:
        a, b = node_of(i.module), node_of(i.target)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, i)
    return edges


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[Import]]:
    """One cycle through each strongly connected group of nodes, as the imports that make it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    found: list[list[Import]] = []
    seen: set[frozenset[Import]] = set()
    for group in groups:
        for start in sorted(group):
            chain = _shortest_cycle(edges, group, start)
            if frozenset(chain) not in seen:
                seen.add(frozenset(chain))
                found.append(chain)
    return found


def _shortest_cycle(edges: dict[str, dict[str, Import]], group: set[str], start: str) -> list[Import]:
    """The fewest imports that lead from ``start`` back to it, within its group."""
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w, imp in sorted(edges.get(v, {}).items()):
            if w == start:
                return [*paths[v], imp]
            if w in group and w not in paths:
                paths[w] = [*paths[v], imp]
                queue.append(w)
    raise AssertionError(f"{start} is in a cycle with no way back")  # not for a strongly connected group


def test_the_cycle_finder_names_the_imports() -> None:
    graph = [
        Import("pscs.a.x", "pscs.b.y", "a/x.py", 1),
        Import("pscs.b.z", "pscs.c", "b/z.py", 2),
        Import("pscs.c", "pscs.a.w", "c.py", 3),
        Import("pscs.c", "pscs.d", "c.py", 4),
    ]
    assert cycles(package_edges(graph)) == [graph[:3]]


def test_no_cycle_between_packages() -> None:
    found = cycles(package_edges(GRAPH))
    assert not found, "cycles between packages:\n" + "\n".join(
        "  "
        + " -> ".join(node_of(i.module) for i in chain)
        + f" -> {node_of(chain[0].module)}\n"
        + "".join(f"    {i}\n" for i in chain)
        for chain in found
    )


# Refusals ---------------------------------------------------------------------------------------
# Where a PolicyDenied may be made: the audit trail's refusal helper, and the access gate
# (which audits "access.denied" itself); anywhere else it would leave pscs unaudited.
REFUSAL_MAKERS = {"pscs/audit/log.py", "pscs/web/access.py", "pscs/errors.py"}


def test_every_refusal_is_audited_through_one_helper() -> None:
    made = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "PolicyDenied"
            ):
                made.append(f"{rel}:{node.lineno}")
    assert made, "the reader found no PolicyDenied at all"
    assert [m for m in made if m.split(":")[0] not in REFUSAL_MAKERS] == [], (
        "PolicyDenied made outside AuditLog.refusal: refuse with rt.audit.refusal(...) instead"
    )
