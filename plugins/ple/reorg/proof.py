"""Counts and content checksums: the proof that no row was lost or changed.

A table's checksum is the sum over its rows of a 64-bit hash of the row's text, over an explicit
column list: order-independent, computed in one streaming scan, and unaffected by columns the
reorganization adds later. Merged rows are proven with a checksum over `to_jsonb(row)`, which is
exactly what the merge target keeps as provenance (see actions/merge.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ple.catalog import TableInfo
from ple.sqlutil import qualified

# Columns the tool adds to merge targets; never part of a table's own content.
PROVENANCE_COLUMNS = ("ctb_source_table", "ctb_source_key", "ctb_source_row", "ctb_run_id", "ctb_merged_at")


@dataclass(frozen=True)
class Fingerprint:
    table: str
    oid: int
    relfilenode: int
    columns: tuple[str, ...]
    rows: int
    checksum: int | None  # None: proven by identity (OID and data file), not by content
    proof: str = "checksum"


def content_columns(table: TableInfo) -> list[str]:
    return [c for c in table.column_names if c not in PROVENANCE_COLUMNS]


def native_rows_filter(table: TableInfo) -> sql.Composable:
    """Rows the table had of its own (not merged in by this tool)."""
    if table.column("ctb_source_table"):
        return sql.SQL("WHERE t.ctb_source_table IS NULL")
    return sql.SQL("")


def fingerprint(
    conn: psycopg.Connection, table: TableInfo, columns: list[str] | None = None, native_only: bool = False
) -> Fingerprint:
    columns = list(columns or content_columns(table))
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({cols})::text, 0)::numeric), 0) FROM {table} AS t {where}"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
        table=qualified(table.name),
        where=native_rows_filter(table) if native_only else sql.SQL(""),
    )
    rows, checksum = conn.execute(query).fetchone()
    return Fingerprint(table.name, table.oid, table.relfilenode, tuple(columns), int(rows), int(checksum))


def columns_gone(name: str, table: TableInfo, columns) -> str | None:
    """What to report when the table no longer has some of its snapshot's columns (renamed or
    dropped since): its rows cannot be compared with the snapshot's checksum."""
    gone = [c for c in columns if table.column(c) is None]
    return f"{name}: columns {gone} of the preflight snapshot are gone (renamed or dropped)" if gone else None


def identity(conn: psycopg.Connection, table: TableInfo, *, counted: bool = True) -> Fingerprint:
    """A relocated, re-keyed or re-classified table is proven by its identity (the same OID and data
    file answer to its new name), not by reading its rows. `counted` counts them for the report (a
    scan); otherwise the planner's estimate is kept and the proof is "identity" alone."""
    rows = native_count(conn, table) if counted else table.estimated_rows
    return Fingerprint(table.name, table.oid, table.relfilenode, tuple(content_columns(table)), rows, None, "identity")


def native_count(conn: psycopg.Connection, table: TableInfo) -> int:
    """Rows of the table's own (a merge target's merged copies are proven by their provenance)."""
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS t {}").format(qualified(table.name), native_rows_filter(table))
    ).fetchone()[0]


def provenance_fingerprint(conn: psycopg.Connection, target: str, source: str) -> tuple[int, int]:
    """(rows, checksum of ctb_source_row) of the rows a source contributed to a merge target. Rows
    an application wrote since through the compatibility view at the source's old name (ctb_run_id
    'compat:<source>', reorg/compat.py) are its own rows, not copies: left out."""
    has_run_id = conn.execute(  # a target a hand run prepared may lack it (then no view wrote there)
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'ctb_run_id' "
        "AND NOT attisdropped)",
        (target,),
    ).fetchone()[0]
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(ctb_source_row::text, 0)::numeric), 0) "
            "FROM {} WHERE ctb_source_table = %s{}"
        ).format(qualified(target), sql.SQL(" AND ctb_run_id IS DISTINCT FROM %s" if has_run_id else "")),
        (source, f"compat:{source}") if has_run_id else (source,),
    ).fetchone()
    return int(row[0]), int(row[1])


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(table))).fetchone()[0]


def stable_text(conn: psycopg.Connection) -> None:
    """Fix, for the current transaction only (SET LOCAL semantics: pool-safe), every setting that
    changes how a value prints: a hash of a row's text taken at merge time and again at verify or
    revert time must not differ because two sessions had another TimeZone or DateStyle. Merges run
    under it too, so a timestamp is read as UTC whatever the session's TimeZone."""
    conn.execute(
        "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true), "
        "set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true), "
        "set_config('bytea_output', 'hex', true)"
    )


def row_hash(alias: str, columns: list[str]) -> sql.Composable:
    """A 64-bit hash of a row's text over `columns` (in this order), for one row `alias`."""
    return sql.SQL("hashtextextended(ROW({})::text, 0)").format(
        sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in columns)
    )
