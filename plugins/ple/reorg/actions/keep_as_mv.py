"""KEEP_AS_MV: reclassify a table as a materialized view. Metadata only ("No Data Change").

The class goes into ple_ops.table_registry (by OID, so it follows later moves), which the leaf
lock reads, and into the table's comment, where anyone browsing the schema sees it. The table is
not converted into a real materialized view: a refresh would replace its rows.
"""

from __future__ import annotations

from psycopg import sql

from ple.errors import PlanRejected
from ple.reorg.context import Context, Outcome, State, Statement
from ple.sqlutil import qualified

CLASS = "MATERIALIZED_VIEW"


def comment_text(step) -> str:
    return f"CTB class: {CLASS} (sub-hub {step.action.sub_hub}); reclassified by CTB phase {step.phase.upper()}, no data change"


def _registered(ctx: Context, oid: int) -> bool:
    if not ctx.conn.execute("SELECT to_regclass('ple_ops.table_registry') IS NOT NULL").fetchone()[0]:
        return False
    return ctx.conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ple_ops.table_registry WHERE table_oid = %s AND ctb_class = %s)", (oid, CLASS)
    ).fetchone()[0]


def check(ctx: Context, step) -> State:
    table = ctx.catalog.get(step.action.source)
    if table is None:
        raise PlanRejected(f"KEEP_AS_MV: {step.action.source} does not exist")
    return State.DONE if _registered(ctx, table.oid) and table.comment == comment_text(step) else State.PENDING


def statements(ctx: Context, step) -> list[Statement]:
    table = ctx.catalog.get(step.action.source)
    return [
        Statement(
            f"register {step.action.source} as {CLASS}",
            sql.SQL(
                "INSERT INTO ple_ops.table_registry (table_oid, table_name, sub_hub, ctb_class, phase, run_id, previous_comment) "
                "VALUES (%(oid)s, %(name)s, %(sub_hub)s, %(class)s, %(phase)s, %(run_id)s, %(previous)s) "
                "ON CONFLICT (table_oid) DO UPDATE SET ctb_class = EXCLUDED.ctb_class, sub_hub = EXCLUDED.sub_hub, "
                "phase = EXCLUDED.phase, run_id = EXCLUDED.run_id"
            ),
            {
                "oid": table.oid,
                "name": step.action.source,
                "sub_hub": step.action.sub_hub,
                "class": CLASS,
                "phase": step.phase,
                "run_id": ctx.run_id,
                "previous": table.comment,
            },
        ),
        # COMMENT takes no bind parameters; sql.Literal quotes the text safely.
        Statement(
            f"comment on {step.action.source}",
            sql.SQL("COMMENT ON TABLE {} IS {}").format(qualified(step.action.source), sql.Literal(comment_text(step))),
        ),
    ]


def preview(ctx: Context, step) -> dict:
    return {"rows_changed": 0}


def apply(ctx: Context, step) -> Outcome:
    for statement in statements(ctx, step):
        ctx.execute(statement)
    return Outcome(step, "applied", details={"class": CLASS, "sub_hub": step.action.sub_hub})


def lint(ctx: Context, step) -> list:
    return []  # metadata only: nothing can fail half way


def verify(ctx: Context, step, located: dict) -> list[str]:
    table = ctx.catalog.get(located.get(step.action.source, step.action.source))
    if table is None or table.comment != comment_text(step):
        return [f"{step.action.source} is not commented as {CLASS}"]
    return []


def revert(ctx: Context, step) -> Outcome:
    table = ctx.catalog.get(step.action.source)
    row = ctx.conn.execute(
        "DELETE FROM ple_ops.table_registry WHERE table_oid = %s AND ctb_class = %s RETURNING previous_comment",
        (table.oid, CLASS),
    ).fetchone()
    if row is None:
        return Outcome(step, "already_done")
    ctx.conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(qualified(step.action.source), sql.Literal(row[0])))
    return Outcome(step, "reverted")


def transactional(ctx: Context, step) -> bool:
    """One transaction: the caller's."""
    return True


def revert_blockers(ctx: Context, step) -> list[str]:
    """Its revert drops nothing the application could have built on."""
    return []
