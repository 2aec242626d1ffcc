"""Rule zero, checked without trusting the engine: every row that existed before is still somewhere.

The engine proves its own work with its ledger, snapshots and checksums; a test that reused them
would share their blind spots. This check reads only the catalog and the rows. `take` records, for
every user table, its OID, its columns and a multiset of row hashes; `missing` looks for each of
those rows afterwards

1. in its own table, found by OID wherever it moved or whatever it is called now, hashed over its
   original columns only (added columns do not matter);
2. else in any table that has all of its original columns (rows archived into a wider table);
3. else inside a JSONB column, as an object carrying the original columns (a merged row keeps its
   whole source row in `ctb_source_row`).

A row's hash is the md5 of the JSONB object of its original columns: JSONB text is canonical (key
order, spacing), so a table's row, the same row in another table with more columns and its
`to_jsonb` copy in a merge target hash alike. Rows are matched as a multiset: two identical rows
need two copies, and a copy found for one table is not counted again for another with the same
columns. A dropped table's rows are missing unless found elsewhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import psycopg
from psycopg import sql

EXCLUDED_SCHEMAS = ["pg_catalog", "information_schema", "ple_ops"]

_TABLES = """
SELECT c.oid, n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum),
       array_agg(format_type(a.atttypid, a.atttypmod) || ' ' || a.attcollation ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%'
GROUP BY c.oid, n.nspname, c.relname
"""

_JSONB_COLUMNS = """
SELECT c.oid, a.attname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%'
  AND a.atttypid = 'jsonb'::regtype
"""


@dataclass(frozen=True)
class TableRows:
    oid: int
    name: str  # schema.table when the rows were taken
    columns: tuple[str, ...]
    rows: Counter  # row hash -> number of rows with it
    types: tuple[str, ...] | None = None  # each column's type and collation (take: all of them)
    texts: Counter | None = None  # md5 of the row's text -> number of rows with it (take: every row)


@dataclass(frozen=True)
class MissingRow:
    table: str  # where the row was when taken
    row_hash: str
    copies: int  # how many identical rows are missing


@dataclass(frozen=True)
class _Table:
    schema: str
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]


def _tables(conn: psycopg.Connection) -> dict[int, _Table]:
    rows = conn.execute(_TABLES, (EXCLUDED_SCHEMAS,)).fetchall()
    return {oid: _Table(schema, name, tuple(columns), tuple(types)) for oid, schema, name, columns, types in rows}


def _texts(conn: psycopg.Connection, table: _Table) -> Counter:
    """The multiset of the md5 of each row's text: equal again over the same columns of the same
    types means the very same rows, at a fraction of the cost of their JSONB hashes."""
    query = sql.SQL("SELECT md5(ROW(t.*)::text), count(*) FROM {} AS t GROUP BY 1").format(
        sql.Identifier(table.schema, table.name)
    )
    return Counter(dict(conn.execute(query).fetchall()))


def _hashes(conn: psycopg.Connection, table: _Table, columns, jsonb_column: str | None = None) -> Counter:
    """Row hashes over `columns`, of the table's rows or (jsonb_column) of the objects in that column
    that carry every one of `columns`.

    A row's object is `to_jsonb` of the row without the table's other columns (`t.*`, not `t`: a
    column named `t` would be taken for the row); an object in a JSONB column is rebuilt from just
    those keys (`jsonb_build_object`, at most 50 keys a call, joined with `||`). Both give the JSONB
    a filter over `jsonb_each` and `jsonb_object_agg` would, at a fraction of its cost."""
    columns = list(columns)
    table_name = sql.Identifier(table.schema, table.name)
    if jsonb_column is None:
        others = [c for c in table.columns if c not in set(columns)]
        query = sql.SQL("SELECT md5((to_jsonb(t.*) - {others}::text[])::text), count(*) FROM {table} AS t GROUP BY 1")
        query = query.format(others=sql.Literal(others), table=table_name)
    else:
        doc = sql.SQL("t.{}").format(sql.Identifier(jsonb_column))
        chunks = [columns[i : i + 50] for i in range(0, len(columns), 50)] or [[]]
        built = sql.SQL(" || ").join(
            sql.SQL("jsonb_build_object({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{}::text, {} -> {}").format(sql.Literal(c), doc, sql.Literal(c)) for c in chunk
                )
            )
            for chunk in chunks
        )
        query = sql.SQL(
            "SELECT md5(({built})::text), count(*) FROM {table} AS t "
            "WHERE jsonb_typeof({doc}) = 'object' AND {doc} ?& {columns}::text[] GROUP BY 1"
        ).format(built=built, doc=doc, table=table_name, columns=sql.Literal(columns))
    # No parameters: a column name is a literal in the query, and a `%` in it is just a character.
    return Counter(dict(conn.execute(query).fetchall()))


def take(conn: psycopg.Connection) -> dict[int, TableRows]:
    """Every user table's OID, columns and row hashes (schemas except pg_catalog,
    information_schema and ple_ops, the tool's own ledger)."""
    return {
        oid: TableRows(
            oid,
            f"{table.schema}.{table.name}",
            table.columns,
            _hashes(conn, table, table.columns),
            table.types,
            _texts(conn, table),
        )
        for oid, table in _tables(conn).items()
    }


def missing(before: dict[int, TableRows], conn: psycopg.Connection) -> list[MissingRow]:
    """Every row of `before` found nowhere now: not in its own table, not in a table with all of its
    columns, not as a JSONB object. An empty list proves rule zero for the rows `before` holds."""
    now = _tables(conn)
    jsonb_columns = conn.execute(_JSONB_COLUMNS, (EXCLUDED_SCHEMAS,)).fetchall()
    pools: dict[tuple, Counter] = {}

    def pool(oid: int, columns: tuple[str, ...], jsonb_column: str | None = None) -> Counter:
        key = (oid, jsonb_column, frozenset(columns))
        if key not in pools:
            pools[key] = _hashes(conn, now[oid], columns, jsonb_column)
        return pools[key]

    def consume(rest: Counter, available: Counter) -> None:
        for row_hash in list(rest):
            found = min(rest[row_hash], available[row_hash])
            rest[row_hash] -= found
            available[row_hash] -= found
            if not rest[row_hash]:
                del rest[row_hash]

    left: dict[int, Counter] = {}
    for oid, table in before.items():
        rest = Counter(table.rows)
        unchanged = (
            table.texts is not None
            and oid in now
            and (now[oid].columns, now[oid].types) == (table.columns, table.types)
        )
        if unchanged and _texts(conn, now[oid]) == table.texts:
            rest.clear()  # the very same rows, still here: each one found in its own table,
            pools[(oid, None, frozenset(table.columns))] = Counter()  # which has none left for another
        elif oid in now and set(table.columns) <= set(now[oid].columns):
            consume(rest, pool(oid, table.columns))
        left[oid] = rest
    for oid, rest in left.items():
        wanted = set(before[oid].columns)
        for other_oid, other in now.items():
            if not rest:
                break
            if other_oid != oid and wanted <= set(other.columns):
                consume(rest, pool(other_oid, before[oid].columns))
    for oid, rest in left.items():
        for holder_oid, column in jsonb_columns:
            if not rest:
                break
            consume(rest, pool(holder_oid, before[oid].columns, column))
    return [
        MissingRow(before[oid].name, row_hash, copies)
        for oid, rest in left.items()
        for row_hash, copies in sorted(rest.items())
    ]
