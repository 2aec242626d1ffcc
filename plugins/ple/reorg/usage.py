"""Who still uses the compatibility objects (issue 23), and what this can and cannot see.

Measured: writes through a MERGE source's or a folded side table's view (its statement-level
trigger records the role
and time, ple_ops.compat_use); with pg_stat_statements installed, every statement whose text
names an old name, per role (`sample`, run by the console and the contract: the time of the
sample that first saw the count grow is the last use). Not measured without pg_stat_statements:
reads of any compatibility view (PostgreSQL keeps no per-view read counter; pg_stat_user_tables
counts the table underneath, whatever name was used), and writes through a MOVE view
(PostgreSQL rewrites them onto the table and fires the table's statement triggers, not the
view's). Writes refused by an ARCHIVE view (and UPDATE or DELETE through a MERGE or FOLD view)
roll back with their statement, count included: the application sees the refusal instead.
"""

from __future__ import annotations

import psycopg

from ple.sqlutil import raw_template

MEASURED = (
    "writes through MERGE and FOLD views: counted by their trigger (role = session user). "
    "Reads, and writes through MOVE views: only with pg_stat_statements"
)


def statements_available(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('pg_stat_statements') IS NOT NULL").fetchone()[0]


def baseline(conn: psycopg.Connection, name: str) -> None:
    """In the transaction that makes `name`'s compatibility object: what pg_stat_statements has
    counted of it so far (the tool's own reads of the table before it moved) is not use."""
    if statements_available(conn):
        conn.execute("DELETE FROM ple_ops.compat_statements_before WHERE name = %s", (name,))
        conn.execute(raw_template("ops/compat_baseline"), {"name": name})


def sample(conn: psycopg.Connection) -> bool:
    """Record what pg_stat_statements shows of the old names (False: not installed, nothing seen)."""
    if not statements_available(conn) or conn.execute("SELECT to_regclass('ple_ops.compat_use') IS NULL").fetchone()[0]:
        return False
    with conn.transaction():
        conn.execute(raw_template("ops/compat_sample"))
    return True


def report(conn: psycopg.Connection) -> dict:
    """Per old name: the object, and each (operation, role) that used it, how often, when last.
    Reads only (the console's read-only transaction): pg_stat_statements as last sampled."""
    sampled = statements_available(conn)
    if conn.execute("SELECT to_regclass('ple_ops.compat_object') IS NULL").fetchone()[0]:
        return {"objects": [], "measured": MEASURED, "statements": sampled}
    objects: dict[str, dict] = {}
    for name, kind, over, created, grace, removed_at, removed_by, op, role, calls, last_at, source in conn.execute(
        raw_template("ops/compat_usage")
    ):
        entry = objects.setdefault(
            name,
            {
                "name": name,
                "kind": kind,
                "over": over,
                "created_at": created,
                "grace": grace,
                "removed": f"{removed_at} ({removed_by})" if removed_at else None,
                "uses": [],
            },
        )
        if op is not None:
            entry["uses"].append({"operation": op, "role": role, "calls": calls, "last_at": last_at, "source": source})
    return {"objects": list(objects.values()), "measured": MEASURED, "statements": sampled}
