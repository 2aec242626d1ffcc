"""The tool's own schema (ple_ops) in the target database: ledger, approvals, snapshots, import
and audit history. Created idempotently by whatever writes first."""

from __future__ import annotations

import psycopg

from ple import governance
from ple.sqlutil import raw_template

# Every transaction that changes data holds this transaction-level advisory lock: concurrent runs
# take turns, and nothing leaks when a connection dies (no session state: Neon's pooler).
ADVISORY_LOCK = "ple.ctb_reorganization"


def ensure_schema(conn: psycopg.Connection) -> None:
    """Where the owner's DDL gate exists, the tool's tables are registered first (as SYSTEM)."""
    gate = governance.detect(conn)
    written = governance.register_ops(conn, gate) if gate else []
    conn.execute(raw_template("ops/schema"))
    governance.record_ops(conn, written)


def schema_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]
