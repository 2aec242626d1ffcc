"""CREATE_TARGET (a decision, not a plan action): create a merge target that is gone.

Several of the plan's merge targets were dropped from the real database (empty) before the plan
ran. A decision `targets.<table>.create: {columns: {...}}` creates it: a surrogate key, the
declared columns (types from a fixed list, never free SQL text), and then, as for every merge
target, the preflight adds the discriminator and provenance columns; each merged row keeps its
whole source row in ctb_source_row, so no column needs to be declared for the merge to be lossless.

Race-safe and idempotent: the catalog is checked and the table created in ONE transaction, under
the advisory lock and the approval, with its ledger row (action CREATE_TARGET, the new table's
OID) committing with it. A plain CREATE TABLE, not IF NOT EXISTS: if another session creates the
name first, the tool's CREATE fails, and the table is the other session's, never recorded as the
tool's. Only a table whose OID the ledger names as created by the tool is ever dropped by revert,
and only while it holds no row (merged copies are removed by the merges' own revert first); one
that holds rows is kept and reported: rule zero.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql

from ple import governance
from ple.errors import PlanRejected
from ple.reorg.context import Context, State, Statement
from ple.sqlutil import check_identifier, qualified

ACTION = "CREATE_TARGET"

# The column types a decision may declare (decisions.schema.json lists the same).
TYPES = {
    "text": "text",
    "varchar(50)": "varchar(50)",
    "varchar(100)": "varchar(100)",
    "varchar(255)": "varchar(255)",
    "integer": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "boolean": "boolean",
    "uuid": "uuid",
    "jsonb": "jsonb",
    "date": "date",
    "timestamptz": "timestamptz",
}
KEY_COLUMN = "ctb_row_id"


def check(ctx: Context, table: str) -> State:
    return State.DONE if ctx.catalog.exists(table) else State.PENDING


def statements(ctx: Context, table: str, definition: dict) -> list[Statement]:
    columns = [sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY").format(sql.Identifier(KEY_COLUMN))]
    for name, column_type in (definition.get("columns") or {}).items():
        if column_type not in TYPES:
            raise PlanRejected(f"create {table}: type {column_type!r} of {name} is not one of {sorted(TYPES)}")
        columns.append(sql.SQL("{} {}").format(sql.Identifier(check_identifier(name)), sql.SQL(TYPES[column_type])))
    return [
        Statement(
            f"create the merge target {table} (decided)",
            sql.SQL("CREATE TABLE {} ({})").format(qualified(table), sql.SQL(", ").join(columns)),
        )
    ]


def preview(ctx: Context, table: str) -> dict:
    return {"exists": ctx.catalog.exists(table)}


def ledger_key(phase_id: str, table: str) -> str:
    return f"{phase_id}__create__{table.replace('.', '_')}"


def created_by_tool(conn: psycopg.Connection, table: str, phase_id: str | None = None) -> int | None:
    """The OID the ledger recorded when this tool created `table` (in `phase_id`, when given);
    None: not created by the tool, or dropped again by a revert since."""
    if not conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(
        "SELECT outcome, (details ->> 'oid')::bigint FROM ple_ops.action_ledger WHERE action = %s AND target = %s "
        "AND (%s::text IS NULL OR phase = %s) AND outcome IN ('applied', 'reverted') ORDER BY attempt_id DESC LIMIT 1",
        (ACTION, table, phase_id, phase_id),
    ).fetchone()
    return row[1] if row and row[0] == "applied" else None


def dropped_by_revert(conn: psycopg.Connection, phase_id: str) -> set[int]:
    """OIDs of the targets this tool created in `phase_id` that a revert dropped again (ledger), so
    that a revert run again, or two at once, proves them gone rather than lost."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT (details ->> 'oid')::bigint FROM ple_ops.action_ledger WHERE action = %s AND phase = %s "
            "AND outcome = 'reverted' AND (details ->> 'dropped')::boolean",
            (ACTION, phase_id),
        )
    }


def register_first(conn: psycopg.Connection, phase_id: str, table: str) -> None:
    """Where the owner's DDL gate exists, the target is registered before it is created (as an
    ERROR leaf where its name says it holds errors, else CANONICAL)."""
    leaf = "ERROR" if "err" in table.rsplit(".", maxsplit=1)[-1] else "CANONICAL"
    governance.register_before_create(
        conn, table, leaf, "a merge target the decisions create", ledger_key(phase_id, table)
    )


def ensure(ex, phase_id: str, table: str, definition: dict) -> str:
    """One transaction: re-check the catalog, create, record the OID in the ledger. Returns
    `created`, `already_done` (the tool created it before) or `exists` (someone else did: used as
    it is, never recorded as the tool's)."""
    started = datetime.now(UTC)
    with ex.transaction():
        ex.lock_exclusive()
        ex.require_approval(phase_id)
        if ex.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            return "already_done" if created_by_tool(ex.conn, table) else "exists"
        statement = statements(ex.context(None), table, definition)[0]
        register_first(ex.conn, phase_id, table)
        try:
            with ex.conn.transaction():  # a savepoint: a concurrent CREATE of the same name wins
                ex.conn.execute(statement.query)
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
            return "exists"
        oid = ex.conn.execute("SELECT %s::regclass::oid", (table,)).fetchone()[0]
        ex.write_ledger(
            phase_id,
            ledger_key(phase_id, table),
            ACTION,
            started,
            "applied",
            target=table,
            sql_text=statement.render(ex.conn),
            details={"oid": oid, "definition": definition},
        )
        return "created"


def verify(ctx: Context, table: str) -> list[str]:
    return [] if ctx.catalog.exists(table) else [f"{table} was to be created"]


def revert(ctx: Context, table: str, phase_id: str) -> str:
    """In the caller's transaction, after the merges' own revert. Drops the table only if the
    ledger says this tool created it in this phase (same OID) and it holds no row; otherwise keeps
    it and says why. Returns `dropped`, or what was found."""
    oid = created_by_tool(ctx.conn, table, phase_id)
    found = ctx.conn.execute("SELECT to_regclass(%s)::oid", (table,)).fetchone()[0]
    if oid is None:
        return f"{table}: not created by this tool in phase {phase_id}; kept"
    if found is None:
        return f"{table}: already gone"
    if found != oid:
        return f"{table}: is not the table this tool created (oid {found}, created {oid}); kept"
    # locked before it is counted: a row inserted between the count and the DROP would go with it
    ctx.conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(qualified(table)))
    rows = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(table))).fetchone()[0]
    if rows:
        return f"{table}: created by this tool, but holds {rows} rows the merges' revert did not remove; kept"
    try:
        with ctx.conn.transaction():  # a savepoint: a view someone built on it keeps it
            ctx.conn.execute(sql.SQL("DROP TABLE {}").format(qualified(table)))
    except psycopg.errors.DependentObjectsStillExist as exc:
        return (
            f"{table}: created by this tool and empty, but other objects depend on it ({exc.diag.message_detail}); kept"
        )
    return "dropped"
