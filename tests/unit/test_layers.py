"""The import contract of the shipped package (issue 24, item 2): layers that may only import
downwards, and no import circle. Read from the source (every import statement, at the top of a
module or inside a function; `if TYPE_CHECKING:` imports name types only and are left out), so it
runs in a second without a database. docs/architecture.md draws the same layers. (No circle is
left even counting those type-only imports: the executor's stages take a `session.Session`.)
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from ple.config import REPO_ROOT

PACKAGE = REPO_ROOT / "plugins" / "ple"

# Lowest first. A module may import its own layer and the layers below, never above. Modules of
# one layer may import each other, without circles.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "ple.config",
            "ple.errors",
            "ple.sqlutil",
            "ple.reporting",
            "ple.db",
            "ple.server",
            "ple.catalog",
            "ple.governance",
            "ple.ops",
            "ple.approval",
            "ple.expectations",
        ),
    ),
    (
        "reorganization: records and state",
        (
            "ple.reorg.plan",
            "ple.reorg.findings",
            "ple.reorg.proof",
            "ple.reorg.ledger",
            "ple.reorg.tool_changes",
            "ple.reorg.decision_store",
            "ple.reorg.usage",
            "ple.reorg.merge_mapping",
            "ple.reorg.pending",
            "ple.reorg.decisions",
            "ple.reorg.reconcile",
            "ple.reorg.gate",
            "ple.reorg.context",
            "ple.reorg.session",
        ),
    ),
    ("reorganization: actions", ("ple.reorg.actions", "ple.reorg.compat")),
    ("reorganization: checks", ("ple.reorg.guards", "ple.reorg.lint")),
    (
        "reorganization: runs",
        (
            "ple.reorg.executor",
            "ple.reorg.verify",
            "ple.reorg.freeze",
            "ple.reorg.revert",
            "ple.reorg.rehearse",
            "ple.reorg.leaf_lock",
            "ple.reorg.contract",
            "ple.reorg.progress",
            "ple.reorg.proposals",
        ),
    ),
    ("the other domains", ("ple.dol", "ple.audit", "ple.cleanup")),
    ("interfaces", ("ple.orchestration", "ple.ui", "ple.cli")),
)

# Domains beside each other, not above: none imports another.
SIBLINGS = ("ple.reorg", "ple.dol", "ple.audit", "ple.cleanup")

# Circles allowed (none; the list is there so that a circle someone must keep is named, not hidden).
KNOWN_CIRCLES: list[frozenset[str]] = []


def _module(path: Path, root: Path) -> str:
    name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (a name imported from a package counts as the
    submodule when one has that name)."""
    paths = {_module(p, root): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        type_only = {
            id(node)
            for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and getattr(branch.test, "id", None) == "TYPE_CHECKING"
            for node in ast.walk(branch)
        }
        found = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in paths else base)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {target for target in found if target in paths and target != name}
    return graph


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{module} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
            domains = [d for d in SIBLINGS if module.startswith(d + ".") or module == d]
            others = [d for d in SIBLINGS if (target.startswith(d + ".") or target == d) and d not in domains]
            if domains and others:
                found.append(f"{module} imports {target}: the domains {domains[0]} and {others[0]} stand side by side")
    return found


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for start, targets in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(targets)))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(frozenset(component))
    return result


def test_every_module_of_the_package_has_a_layer():
    assert [m for m in import_graph() if m != "ple" and layer_of(m) is None and m != "ple.reorg"] == []


def test_no_module_imports_a_layer_above_its_own():
    assert violations(import_graph()) == []


def test_no_import_circle():
    assert [sorted(c) for c in circles(import_graph()) if c not in KNOWN_CIRCLES] == []


def test_a_deliberate_upward_import_and_a_new_circle_are_caught(tmp_path):
    """The contract fails when broken: on a copy of the package, the plan imports the DAG layer,
    and the ledger imports the executor (which imports the ledger)."""
    copy = tmp_path / "ple"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "reorg" / "plan.py").open("a") as plan:
        plan.write("\n\ndef _upward():\n    from ple.orchestration import common  # noqa\n")
    with (copy / "reorg" / "ledger.py").open("a") as ledger:
        ledger.write("\nfrom ple.reorg.executor import Executor  # noqa\n")
    graph = import_graph(copy)
    assert any(v.startswith("ple.reorg.plan (") and "ple.orchestration.common" in v for v in violations(graph))
    assert any({"ple.reorg.ledger", "ple.reorg.executor"} <= c for c in circles(graph))
