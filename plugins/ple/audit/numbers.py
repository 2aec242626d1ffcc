"""The Phase 2C audit numbers, computed set-based in one read-only transaction.

The definitions (include/reference/phase_2c_audit_definitions.md) name columns that are not
spelled the same in every database: the spine's sovereign id is `sovereign_id` in the live
database and the inventory, `sovereign_company_id` in the owner's script and data dictionary.
Each column is therefore resolved per database from its catalog, among known candidates, and
passed to the SQL template as an identifier (never spliced as text).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ple.db import transaction
from ple.errors import BadInput
from ple.sqlutil import raw_template

# role in the template -> (table, candidate column names in order of preference)
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "spine_id": ("outreach.outreach", ("outreach_id",)),
    "spine_domain": ("outreach.outreach", ("domain",)),
    "spine_sovereign_id": ("outreach.outreach", ("sovereign_id", "sovereign_company_id")),
    "person_id": ("people.people_master", ("unique_id", "person_unique_id", "person_id")),
    "person_email": ("people.people_master", ("email",)),
    "slot_outreach_id": ("people.company_slot", ("outreach_id",)),
    "slot_person_id": ("people.company_slot", ("person_unique_id", "people_unique_id", "person_id")),
    "cl_outreach_id": ("cl.company_identity", ("outreach_id",)),
}
# context counts (the plan's post-cleanup table): recorded when the table exists, not judged
CONTEXT_TABLES: dict[str, str] = {
    "cl_company_identity_excluded": "cl.company_identity_excluded",
    "outreach_company_target": "outreach.company_target",
    "outreach_dol": "outreach.dol",
    "outreach_blog": "outreach.blog",
    "outreach_bit_scores": "outreach.bit_scores",
    "people_company_slot": "people.company_slot",
    "people_people_master": "people.people_master",
}


def resolve_columns(conn: psycopg.Connection) -> dict[str, str]:
    """Role -> the column this database has (the first candidate that exists)."""
    tables = sorted({table for table, _ in COLUMNS.values()})
    present: dict[str, set[str]] = {t: set() for t in tables}
    for table, column in conn.execute(
        "SELECT t.name, a.attname FROM unnest(%s::text[]) AS t(name) "
        "JOIN pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped",
        (tables,),
    ):
        present[table].add(column)
    resolved, missing = {}, []
    for role, (table, candidates) in COLUMNS.items():
        found = next((c for c in candidates if c in present[table]), None)
        if found is None:
            missing.append(f"{table} has none of {', '.join(candidates)}" if present[table] else f"{table} is missing")
        else:
            resolved[role] = found
    if missing:
        raise BadInput("the Phase 2C audit cannot be computed on this database: " + "; ".join(sorted(set(missing))))
    return resolved


def numbers_statement(conn: psycopg.Connection) -> sql.Composable:
    columns = resolve_columns(conn)
    core = sql.SQL(raw_template("audit/phase_2c_numbers")).format(
        **{role: sql.Identifier(column) for role, column in columns.items()}
    )
    existing = {
        name
        for (name,) in conn.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (list(CONTEXT_TABLES.values()),)
        )
    }
    context = [
        sql.SQL("SELECT {}, count(*) FROM {}").format(sql.Literal(number), sql.Identifier(*table.split(".")))
        for number, table in CONTEXT_TABLES.items()
        if table in existing
    ]
    return sql.SQL("\nUNION ALL ").join([core, *context])


def compute(conn: psycopg.Connection, lock_timeout: str = "2s") -> dict[str, int]:
    """Every audit number (see include/reference/phase_2c_audit_definitions.md).

    One REPEATABLE READ snapshot, so "CL claimed = spine" compares two counts of the same moment.
    """
    with transaction(conn, read_only=True, snapshot=True, lock_timeout=lock_timeout, statement_timeout="10min"):
        return {name: int(value) for name, value in conn.execute(numbers_statement(conn))}
