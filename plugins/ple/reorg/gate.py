"""The owner's DDL gate (ple/governance.py) for the reorganization's steps: which names each step
registers before its DDL (and a revert before its own), which tables it alters that the registry
freezes or does not list (blocking guards unless a person accepted them: the gate would refuse the
step half way, or the tool would alter what the owner froze), and what it may unfreeze. Read-only
except `admit` and `admit_revert`."""

from __future__ import annotations

import psycopg

from ple import governance
from ple.catalog import Catalog
from ple.governance import Registration
from ple.reorg import reconcile
from ple.reorg.plan import Phase, Plan, Step
from ple.sqlutil import split_qualified


def registrations(
    conn: psycopg.Connection, plan: Plan, step: Step, asides=(), *, own: bool = True
) -> list[Registration]:
    """Every name the step gives a table, with the leaf type it is registered as: ARCHIVE in the
    archive schema, otherwise the leaf type the source is registered with (a MOVE keeps its kind)."""
    moves = [(item.occupant, item.name, f"{item.occupant} set aside") for item in asides]
    moves += [
        (a.source, dest, f"{step.kind.lower()} of {a.source}")
        for a in step.actions
        if own and (dest := reconcile.destination(plan, a)) is not None
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
    tables = [a.source for a in step.actions if reconcile.destination(plan, a) is not None]
    if step.kind in ("MERGE", "FOLD"):
        tables.append(step.target)
    if step.kind == "ADD_PK":
        tables.append(step.action.source)
    return list(dict.fromkeys(tables))


def guards(conn: psycopg.Connection, plan: Plan, catalog: Catalog, step: Step, accepted: dict) -> list[tuple]:
    """(key, table, message, handling, blocks, proposal) for each table the step alters that the
    owner's registry freezes or does not list: the gate would refuse the step half way, or the tool
    would alter what the owner froze. A person's acceptance (guards.accept.<key>) lets the step
    unfreeze it inside its own transactions (frozen again before each commits), or register it."""
    tables = [t for t in altered(plan, step) if catalog.exists(t)]
    known = governance.entries(conn, tables)
    result = []
    names = [r.table for r in registrations(conn, plan, step)]
    registered = governance.entries(conn, names)
    new_names = [n for n in names if n not in registered]
    needs = [
        p
        for p, wanted in (("INSERT", new_names), ("UPDATE", [t for t in tables if known.get(t, ("", False))[1]]))
        if wanted
    ]
    missing = [
        p for p in needs if not conn.execute("SELECT has_table_privilege('ctb.table_registry', %s)", (p,)).fetchone()[0]
    ]
    if missing:
        role = conn.execute("SELECT current_user").fetchone()[0]
        result.append(
            (
                "ctb.table_registry.privileges",
                "ctb.table_registry",
                f"the step registers {', '.join(new_names) or 'no name'} and the role {role} lacks {' and '.join(missing)} "
                "on the owner's registry",
                f"the step would fail before its DDL. Fix: GRANT {', '.join(missing)} ON ctb.table_registry TO {role}, "
                "or have the owner register the names first",
                True,
                None,
            )
        )
    for table in tables:
        if table not in known:
            key = f"{table}.register"
            message = f"{table} is not in the owner's registry (ctb.table_registry): the DDL gate refuses the step's ALTER of it"
            handling = "accepted: the step registers it first (recorded, removed by revert)"
            fix = "the step would fail. Fix: accept registering it (as CANONICAL), or register it yourself, or skip the action"
            reason = f"{step.step_id} alters {table}; register it in the owner's registry first, as the owner does"
        elif known[table][1]:
            key = f"{table}.frozen"
            message = f"{table} is frozen in the owner's registry (ctb.table_registry.is_frozen) and the step alters it"
            handling = "accepted: unfrozen inside each of the step's transactions, frozen again before each commits"
            fix = (
                "the tool never alters a frozen table on its own. Fix: accept unfreezing it for the step's own "
                "transactions (frozen again before each commits), or unfreeze it yourself, or skip the action"
            )
            reason = f"{step.step_id} alters {table} as the plan says; frozen again in the same transaction"
        else:
            continue
        if key in accepted:
            result.append((key, table, message, f"{handling} ({accepted[key]})", False, None))
        else:
            result.append((key, table, message, fix, True, ("accept", key, reason)))
    return result


def admit(
    conn: psycopg.Connection, plan: Plan, step: Step, asides, run_id: str, accepted: dict, *, own: bool = True
) -> list[Registration]:
    """Before DDL, in the step's transaction, where the owner's gate exists (nothing where it does
    not): the names the set-asides give tables, and with `own` (once the step will run: a step
    already done registers nothing) the names the step gives them and the unregistered tables it
    alters that a person accepted to register."""
    owner_gate = governance.detect(conn)
    if owner_gate is None:
        return []
    names = registrations(conn, plan, step, asides, own=own)
    names += [
        Registration(t, "CANONICAL", f"altered by {step.step_id} (accepted)")
        for t in altered(plan, step)
        if own and f"{t}.register" in accepted
    ]
    return governance.register(conn, owner_gate, names, step.step_id, run_id)


def frozen_names(plan: Plan, step: Step, accepted: dict) -> tuple[list[str], list[str]]:
    """(frozen tables a person let the step alter, the names the step gives them: frozen like
    them once the step is done)."""
    unfreeze = [t for t in altered(plan, step) if f"{t}.frozen" in accepted]
    carried = [d for a in step.actions if a.source in unfreeze and (d := reconcile.destination(plan, a))]
    return unfreeze, carried


def admit_revert(conn: psycopg.Connection, plan: Plan, step: Step, run_id: str, accepted: dict) -> list[str]:
    """Before a revert's DDL, in its transaction, where the owner's gate exists: the names the
    revert gives tables back (and their intermediates) registered if the registry lost them; returns
    the frozen tables a person let the step alter and the names they carry now (the revert renames
    them back and drops what the step added: unfrozen for its transaction, frozen again)."""
    owner_gate = governance.detect(conn)
    if owner_gate is None:
        return []
    moves = [(dest, a.source) for a in step.actions if (dest := reconcile.destination(plan, a)) is not None]
    known = governance.entries(conn, [source for _, source in moves])
    names = [
        Registration(name, known.get(source, ("CANONICAL",))[0], f"given back by the revert of {step.step_id}")
        for dest, source in moves
        for name in governance.relocation_names(dest, source)
    ]
    governance.register(conn, owner_gate, names, step.step_id, run_id)
    unfreeze, carried = frozen_names(plan, step, accepted)
    return [*unfreeze, *carried]


def frozen_merge_targets(phase: Phase, accepted: dict) -> list[str]:
    """The phase's merge targets a person let it alter although the owner froze them: the
    preflight's discriminator and provenance columns unfreeze them for their statement only."""
    return sorted(
        {s.action.target for s in phase.steps if s.kind == "MERGE" and f"{s.action.target}.frozen" in accepted}
    )
