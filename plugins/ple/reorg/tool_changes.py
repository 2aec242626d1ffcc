"""What the tool created or relaxed in tables it does not own (ple_ops.tool_change).

Each change is recorded in the transaction that makes it, by table OID (the record follows the
table through moves). Revert reads it to undo exactly what the tool did: a column the tool did not
create is never dropped, a NOT NULL the tool relaxed is restored, a key the tool adopted is
released without touching the column.
"""

from __future__ import annotations

import psycopg

CREATED_COLUMN = "created_column"
RELAXED_NOT_NULL = "relaxed_not_null"
ADOPTED_KEY = "adopted_key"
SET_NOT_NULL = "set_not_null"


def record(
    conn: psycopg.Connection, table: str, column: str, change: str, *, step_id: str | None, run_id: str | None
) -> None:
    conn.execute(
        "INSERT INTO ple_ops.tool_change (table_oid, column_name, change, table_name, step_id, run_id) "
        "VALUES (%s::regclass::oid, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (table, column, change, table, step_id, run_id),
    )


def recorded(conn: psycopg.Connection, table_oid: int, column: str, change: str) -> bool:
    if not conn.execute("SELECT to_regclass('ple_ops.tool_change') IS NOT NULL").fetchone()[0]:
        return False
    return (
        conn.execute(
            "SELECT 1 FROM ple_ops.tool_change WHERE table_oid = %s AND column_name = %s AND change = %s",
            (table_oid, column, change),
        ).fetchone()
        is not None
    )


def columns_with(conn: psycopg.Connection, table_oid: int, change: str) -> list[str]:
    if not conn.execute("SELECT to_regclass('ple_ops.tool_change') IS NOT NULL").fetchone()[0]:
        return []
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM ple_ops.tool_change WHERE table_oid = %s AND change = %s ORDER BY column_name",
            (table_oid, change),
        )
    ]


def forget(conn: psycopg.Connection, table_oid: int, column: str, change: str) -> None:
    conn.execute(
        "DELETE FROM ple_ops.tool_change WHERE table_oid = %s AND column_name = %s AND change = %s",
        (table_oid, column, change),
    )
