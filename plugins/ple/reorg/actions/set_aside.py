"""SET_ASIDE (a decision, not a plan action): rename the table that holds a name the plan needs.

A hand run of the plan left copies under the archive names (`archive.company_company_master_ctb`,
stale, beside its live source). The decision `set_aside: <new name>` renames that occupant to a
dated name first, in the same transaction as the step that needs the name; then the step runs as
the plan says. A rename, like ARCHIVE: the occupant keeps its OID, data file and every row.

Its evidence is a ledger row of its own (action SET_ASIDE: occupant, new name, OID, data file,
rows), in the transaction of the rename, whatever path the step takes after it (a fold or a
low-lock ADD_PK commits the set-aside before its own transactions). Revert reads that row: once
the step's own revert has freed the name, the occupant (the same OID) gets its name back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ple.catalog import Catalog
from ple.errors import PlanRejected
from ple.reorg.actions import relocate
from ple.reorg.context import Context, State
from ple.reorg.proof import count

ACTION = "SET_ASIDE"


@dataclass(frozen=True)
class SetAside:
    occupant: str  # the name the plan needs
    name: str  # where the occupant goes
    step_id: str


def check(ctx: Context, item: SetAside) -> State:
    here, there = ctx.catalog.exists(item.occupant), ctx.catalog.exists(item.name)
    if here and there:
        raise PlanRejected(
            f"set aside {item.occupant}: {item.name} exists already; choose another name in the decisions file"
        )
    return State.PENDING if here else State.DONE


def statements(ctx: Context, item: SetAside):
    return relocate.statements(ctx.conn, ctx.catalog, item.occupant, item.name)


def as_after(catalog: Catalog, items: list[SetAside]) -> Catalog:
    """The catalog as these set-asides leave it (each occupant under its new name), for plan mode
    to render what the step does after them without renaming anything."""
    tables = dict(catalog.tables)
    for item in items:
        occupant = tables.pop(item.occupant, None)
        if occupant is not None:
            tables[item.name] = replace(occupant, name=item.name)
    schemas = catalog.schemas | {item.name.split(".", 1)[0] for item in items}
    return replace(catalog, tables=tables, schemas=schemas)


def preview(ctx: Context, item: SetAside) -> dict:
    return {"rows": count(ctx.conn, item.occupant)} if ctx.catalog.exists(item.occupant) else {"rows": 0}


def apply(ctx: Context, item: SetAside) -> dict:
    """In the caller's transaction; proves the same OID and data file now answer to the new name."""
    identity = relocate.apply(ctx.conn, ctx.catalog, item.occupant, item.name)
    return {"set_aside": {"from": item.occupant, "to": item.name, **identity}}


def verify(ctx: Context, item: SetAside, oid: int) -> list[str]:
    table = ctx.catalog.get(item.name)
    if table is None or table.oid != oid:
        return [f"{item.name} should be the set-aside {item.occupant} (oid {oid})"]
    return []


def ledger_key(item: SetAside) -> str:
    return f"{item.step_id}.set_aside.{item.occupant}"


def carry_out(ex, ctx: Context, item: SetAside, step) -> dict:
    """apply, and its ledger row, in the caller's (the step's first) transaction."""
    started = datetime.now(UTC)
    rows = preview(ctx, item)["rows"]
    done = apply(ctx, item)
    ex.write_ledger(
        step.phase,
        ledger_key(item),
        ACTION,
        started,
        "applied",
        sources=[item.occupant],
        target=item.name,
        rows_before={item.occupant: rows},
        rows_after={item.name: rows},
        details=done,
    )
    return done


def _latest(conn, step_id: str) -> list[tuple[str, str, str, int]]:
    """(outcome, occupant, name, oid) of each set-aside of a step, as its latest ledger row says."""
    if not conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]:
        return []
    rows = conn.execute(
        "SELECT DISTINCT ON (step_id) outcome, details -> 'set_aside' FROM ple_ops.action_ledger "
        "WHERE action = %s AND starts_with(step_id, %s) AND outcome IN ('applied', 'reverted') "
        "ORDER BY step_id, attempt_id DESC",
        (ACTION, f"{step_id}.set_aside."),
    ).fetchall()
    # an applied row moved the occupant `from` its name; a reverted row moved it back `to` it
    return [
        (
            outcome,
            *((done["from"], done["to"]) if outcome == "applied" else (done["to"], done["from"])),
            int(done["oid"]),
        )
        for outcome, done in rows
    ]


def recorded(conn, step_id: str) -> list[tuple[str, str, int]]:
    """(occupant, name, oid) of the set-asides of a step the ledger holds and no revert undid."""
    return [(occupant, name, oid) for outcome, occupant, name, oid in _latest(conn, step_id) if outcome == "applied"]


def restored(conn, catalog, step_id: str) -> list[str]:
    """Occupant names a revert of the step gave back to their set-aside table (the same OID holds
    the name now). A revert restores a set-aside only in the transaction where the step's own
    revert freed the name, so such a name is the proof that the step is undone: the table under
    the step's archive name is the hand copy, not the step's work, and is never moved again."""
    return [
        occupant
        for outcome, occupant, _name, oid in _latest(conn, step_id)
        if outcome == "reverted" and (table := catalog.get(occupant)) is not None and table.oid == oid
    ]


def revert(ctx: Context, item: SetAside, oid: int) -> str:
    """In the caller's transaction, after the step's own revert freed the name: the same table
    (by OID) back under it; anything else is left as it is and reported."""
    there = ctx.catalog.get(item.name)
    if there is None or there.oid != oid:
        here = ctx.catalog.get(item.occupant)
        if here is not None and here.oid == oid:
            return "already_done"
        return f"{item.name} is not the set-aside table (oid {oid}) any more; left as it is"
    if ctx.catalog.exists(item.occupant):
        return f"{item.occupant} is taken (the step's revert did not free it); {item.name} stays set aside"
    relocate.apply(ctx.conn, ctx.catalog, item.name, item.occupant)
    return "reverted"
