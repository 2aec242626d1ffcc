"""The independent row check (tests/rowcheck.py) over the tables an operation can touch.

rowcheck.take hashes every user table of the database, which on the fixture costs tens of seconds
on a loaded 2-core machine, for every example. Here the same row hashes (the md5 of the JSONB
object of a row's columns, as rowcheck computes them, so rowcheck.missing matches them) are taken
only for the tables the plan's phases name (sources, targets, archives, bridges), every table in
the archive, intake and public schemas (tool archives, moved tables, the application's own new
tables) and any extra names, leaving out a merge's copies (rows with provenance: the tool's own,
their source rows are checked where they are) and the columns the tool created
(ple_ops.tool_change 'created_column': a fold's columns, which revert drops while every value in
them is what the side tables give back); rowcheck.missing then looks for those rows
everywhere. `values` counts values the application wrote (tags), wherever they are now.
"""

from __future__ import annotations

from collections import Counter

import psycopg
from psycopg import sql

from ple.reorg import plan as plan_module
from tests import rowcheck

WHOLE_SCHEMAS = ("archive", "intake", "public")

_SCOPED_TABLES = """
SELECT c.oid, n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND (n.nspname = ANY(%(schemas)s) OR n.nspname || '.' || c.relname = ANY(%(names)s))
GROUP BY c.oid, n.nspname, c.relname
"""

# The same hash as tests/rowcheck.py's (the row as JSONB without the columns not taken), so that
# rowcheck.missing finds these rows.
_HASHES = "SELECT md5((to_jsonb(t.*) - {others}::text[])::text), count(*) FROM {table} AS t {where} GROUP BY 1"
# A merge's copies (provenance set) are the tool's: their source rows are checked where they are
# (source, archive); a revert takes the copies out. Values the application writes into copies are
# checked on their own (app_values).
_NOT_A_COPY = "WHERE t.ctb_source_table IS NULL"


def plan_tables(phases: list[str]) -> set[str]:
    """Every table the phases name: sources, targets, their archives, fold bridges."""
    plan = plan_module.load()
    names = set()
    for phase_id in phases:
        for action in plan.phase(phase_id).actions:
            names |= {action.source, plan.archive_name(action.source)}
            if action.target:
                names.add(action.target)
            if action.join is not None and action.join.via_table:
                names.add(action.join.via_table)
    return names


def take(conn: psycopg.Connection, phases: list[str], extra=()) -> dict[int, rowcheck.TableRows]:
    """rowcheck.take over the phases' tables, the whole archive/intake/public schemas and `extra`."""
    names = sorted(plan_tables(phases) | set(extra))
    created = set()
    if conn.execute("SELECT to_regclass('ple_ops.tool_change') IS NOT NULL").fetchone()[0]:
        created = set(
            conn.execute(
                "SELECT table_oid::bigint, column_name FROM ple_ops.tool_change WHERE change = 'created_column'"
            ).fetchall()
        )
    result = {}
    for oid, schema, name, all_columns in conn.execute(
        _SCOPED_TABLES, {"schemas": list(WHOLE_SCHEMAS), "names": names}
    ).fetchall():
        columns = [c for c in all_columns if (oid, c) not in created]
        where = sql.SQL(_NOT_A_COPY if "ctb_source_table" in columns else "")
        others = [c for c in all_columns if c not in columns]
        query = sql.SQL(_HASHES).format(table=sql.Identifier(schema, name), where=where, others=sql.Literal(others))
        hashes = Counter(dict(conn.execute(query).fetchall()))
        result[oid] = rowcheck.TableRows(oid, f"{schema}.{name}", tuple(columns), hashes)
    return result


def tag_count(conn: psycopg.Connection, oid: int, column: str, tag: str) -> int:
    """Rows that hold `tag` in `column` of the table `oid` (wherever it moved), plus JSONB values
    anywhere that contain it (a merged copy's ctb_source_row)."""
    here = conn.execute(
        "SELECT a.attname IS NOT NULL, c.oid::regclass::text FROM pg_class c "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped WHERE c.oid = %s",
        (column, oid),
    ).fetchone()
    found = 0
    if here and here[0]:
        found += conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}::text LIKE %s").format(sql.SQL(here[1]), sql.Identifier(column)),
            (f"%{tag}%",),
        ).fetchone()[0]
    for table, jsonb_column in conn.execute(
        "SELECT c.oid::regclass::text, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.atttypid = 'jsonb'::regtype AND a.attname = 'ctb_source_row' "
        "AND c.relkind IN ('r', 'p') AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ple_ops')"
    ).fetchall():
        found += conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}::text LIKE %s").format(
                sql.SQL(table), sql.Identifier(jsonb_column)
            ),
            (f"%{tag}%",),
        ).fetchone()[0]
    return found
