"""SET_ASIDE (a decision, not a plan action): rename the table that holds a name the plan needs.

A hand run of the plan left copies under the archive names (`archive.company_company_master_ctb`,
stale, beside its live source). The decision `set_aside: <new name>` renames that occupant to a
dated name first, in the same transaction as the step that needs the name; then the step runs as
the plan says. A rename, like ARCHIVE: the occupant keeps its OID, data file and every row.
"""

from __future__ import annotations

from dataclasses import dataclass

from ple.errors import PlanRejected
from ple.reorg.actions import relocate
from ple.reorg.context import Context, Outcome, State


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


def preview(ctx: Context, item: SetAside) -> dict:
    from ple.reorg.proof import count

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


def revert(ctx: Context, item: SetAside) -> Outcome | str:
    if ctx.catalog.exists(item.occupant) or not ctx.catalog.exists(item.name):
        return "already_done"
    relocate.apply(ctx.conn, ctx.catalog, item.name, item.occupant)
    return "reverted"
