"""The owner's DDL gate (ple/governance.py) for the reorganization's steps: which names each step
registers before its DDL, which registered tables it would alter that the registry freezes or does
not list (blocking: the gate would refuse the step half way, or the tool would alter what the
owner froze), and the registry's drift from the catalog. Read-only except `admit`."""

from __future__ import annotations

import psycopg

from ple import governance
from ple.catalog import Catalog
from ple.governance import Registration
from ple.reorg.plan import Plan, Step
from ple.sqlutil import split_qualified


def _destination(plan: Plan, step: Step, action) -> str | None:
    if step.kind in ("ARCHIVE", "MOVE"):
        return action.target
    if step.kind in ("MERGE", "FOLD"):
        return plan.archive_name(action.source)
    return None


def registrations(conn: psycopg.Connection, plan: Plan, step: Step, asides=()) -> list[Registration]:
    """Every name the step gives a table, with the leaf type it is registered as: ARCHIVE in the
    archive schema, otherwise the leaf type the source is registered with (a MOVE keeps its kind)."""
    moves = [(item.occupant, item.name, f"{item.occupant} set aside") for item in asides]
    moves += [
        (a.source, dest, f"{step.kind.lower()} of {a.source}")
        for a in step.actions
        if (dest := _destination(plan, step, a)) is not None
    ]
    known = governance.entries(conn, [source for source, _, _ in moves])
    result = []
    for source, dest, why in moves:
        leaf = "ARCHIVE" if split_qualified(dest)[0] == plan.archive_schema else known.get(source, ("CANONICAL",))[0]
        result += [Registration(name, leaf, why) for name in governance.relocation_names(source, dest)]
    return result


def altered(plan: Plan, step: Step) -> list[str]:
    """Tables the step's DDL alters in place or renames (the gate judges a rename under its new
    name, but the table renamed is the owner's): sources it relocates, the merge target (its
    discriminator and provenance columns), the fold target (its new columns), an ADD_PK table."""
    tables = [a.source for a in step.actions if _destination(plan, step, a) is not None]
    if step.kind in ("MERGE", "FOLD"):
        tables.append(step.target)
    if step.kind == "ADD_PK":
        tables.append(step.action.source)
    return list(dict.fromkeys(tables))


def problems(conn: psycopg.Connection, plan: Plan, catalog: Catalog, step: Step) -> list[str]:
    """Why the owner's gate would refuse the step, or the step would alter what the owner froze."""
    tables = [t for t in altered(plan, step) if catalog.exists(t)]
    known = governance.entries(conn, tables)
    result = []
    for table in tables:
        if table not in known:
            result.append(
                f"{table} is not in the owner's registry (ctb.table_registry): the DDL gate refuses the step's "
                "ALTER of it. Register it there (the owner's leaf type), or skip the action"
            )
        elif known[table][1]:
            result.append(
                f"{table} is frozen in the owner's registry (ctb.table_registry.is_frozen): the step would alter "
                "it, and the tool never unfreezes what the owner froze. Unfreeze it there for this phase (and "
                "freeze it again after), or skip the action"
            )
    return result


def admit(conn: psycopg.Connection, plan: Plan, step: Step, asides, run_id: str) -> list[Registration]:
    """Before the step's DDL, in its transaction: where the owner's gate exists, the names the
    step will give tables, registered (nothing where it does not)."""
    owner_gate = governance.detect(conn)
    if owner_gate is None:
        return []
    return governance.register(conn, owner_gate, registrations(conn, plan, step, asides), step.step_id, run_id)
