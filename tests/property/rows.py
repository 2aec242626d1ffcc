"""The independent row check (tests/rowcheck.py) over the tables an operation can touch.

rowcheck.take hashes every user table of the database, which on the fixture costs tens of seconds
on a loaded 2-core machine, for every example. Here the same row hashes (the md5 of the JSONB
object of a row's columns, as rowcheck computes them, so rowcheck.missing matches them) are taken
only for the tables the plan's phases name (sources, targets, archives, bridges), every table in
the archive, intake and public schemas (tool archives, moved tables, the application's own new
tables) and any extra names; rowcheck.missing then looks for those rows everywhere.
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

# The same hash as tests/rowcheck.py's, so that rowcheck.missing finds these rows.
_HASHES = (
    "SELECT md5(coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(t)) AS e "
    "WHERE e.key = ANY(%(columns)s)), '{{}}'::jsonb)::text), count(*) FROM {table} AS t GROUP BY 1"
)


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
    result = {}
    for oid, schema, name, columns in conn.execute(
        _SCOPED_TABLES, {"schemas": list(WHOLE_SCHEMAS), "names": names}
    ).fetchall():
        query = sql.SQL(_HASHES).format(table=sql.Identifier(schema, name))
        hashes = Counter(dict(conn.execute(query, {"columns": list(columns)}).fetchall()))
        result[oid] = rowcheck.TableRows(oid, f"{schema}.{name}", tuple(columns), hashes)
    return result
