"""What the live database holds: tables, columns, keys, dependents. Read from pg_catalog.

One query per question, returning plain data, so the plan lint can run on a snapshot of it and a
test can build that snapshot without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ple.config import OPS_SCHEMA
from ple.sqlutil import qualified, raw_template

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # format_type(), e.g. "character varying(50)"
    type_oid: int
    not_null: bool
    has_default: bool
    generated: bool  # GENERATED ... STORED or an identity column: never written by a merge
    max_length: int | None  # varchar/char length limit
    type_schema: str = "pg_catalog"
    type_name: str = "text"  # base type name, e.g. varchar, uuid, error_disposition
    type_category: str = "S"  # pg_type.typcategory: S string, N numeric, D datetime, U user, E enum, A array

    @property
    def type_identifier(self) -> sql.Identifier:
        """The column's base type as a composable identifier (for explicit casts)."""
        return sql.Identifier(self.type_schema, self.type_name)


@dataclass
class TableInfo:
    name: str  # schema.table
    oid: int
    relfilenode: int
    kind: str  # r table, p partitioned, v view, m materialized view
    columns: list[ColumnInfo] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    unique_keys: list[list[str]] = field(default_factory=list)
    estimated_rows: int = 0
    comment: str | None = None

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass
class Catalog:
    tables: dict[str, TableInfo]
    schemas: set[str]
    casts: set[tuple[int, int]] = field(default_factory=set)

    def get(self, name: str) -> TableInfo | None:
        return self.tables.get(name)

    def exists(self, name: str) -> bool:
        return name in self.tables

    def assignable(self, source: ColumnInfo, target: ColumnInfo) -> bool:
        """Would INSERT ... SELECT convert source into target without an explicit cast and
        without truncating? A narrower varchar is not assignable (values could be cut off)."""
        if target.type_category == "S" and source.type_category == "S":
            return target.max_length is None or (
                source.max_length is not None and source.max_length <= target.max_length
            )
        if source.type_oid == target.type_oid:
            return True
        if target.type_category == "S" and target.max_length is None:
            return True  # I/O conversion to an unbounded string type
        return (source.type_oid, target.type_oid) in self.casts


# The last read of every schema per database, with the catalog version it was read at.
_CACHE: dict[tuple, tuple[str, Catalog]] = {}


def read_catalog(conn: psycopg.Connection, schemas: list[str] | None = None) -> Catalog:
    """Tables, views and their columns and keys in the user schemas (or only `schemas`).

    A read of every schema is kept and reused while the catalog's version (catalog/version.sql:
    the row versions of every catalog table it reads) is unchanged; any DDL, in any session or
    earlier in this transaction, changes the version and the catalog is read again. A read scoped
    to a few schemas (each step reads those it touches) costs less than that version check and
    is always made afresh."""
    if schemas is not None:
        return _read_catalog(conn, schemas)
    version = conn.execute(raw_template("catalog/version")).fetchone()[0]
    key = (conn.info.host, conn.info.port, conn.info.dbname)
    cached = _CACHE.get(key)
    if cached and cached[0] == version:
        return cached[1]
    catalog = _read_catalog(conn, schemas)
    _CACHE[key] = (version, catalog)
    return catalog


def _read_catalog(conn: psycopg.Connection, schemas: list[str] | None) -> Catalog:
    rows = conn.execute(raw_template("catalog/tables"), {"schemas": schemas}).fetchall()
    tables: dict[str, TableInfo] = {}
    for schema, name, oid, relfilenode, kind, estimated, comment in rows:
        tables[f"{schema}.{name}"] = TableInfo(
            f"{schema}.{name}", oid, relfilenode, kind, estimated_rows=max(int(estimated), 0), comment=comment
        )
    by_oid = {t.oid: t for t in tables.values()}
    for oid, *column in conn.execute(raw_template("catalog/columns"), {"oids": list(by_oid)}):
        by_oid[oid].columns.append(ColumnInfo(*column))
    for oid, contype, columns in conn.execute(raw_template("catalog/keys"), {"oids": list(by_oid)}):
        if contype == "p":
            by_oid[oid].primary_key = list(columns)
        else:
            by_oid[oid].unique_keys.append(list(columns))
    schema_names = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    casts = {(s, t) for s, t in conn.execute(raw_template("catalog/casts"))}
    return Catalog(tables, schema_names, casts)


def functions_naming(conn: psycopg.Connection, table_names: list[str]) -> list[tuple[str, str]]:
    """(function, table) pairs where a function's body names a table: SET SCHEMA will break it."""
    if not table_names:
        return []
    return [
        (function, table)
        for function, table in conn.execute(raw_template("catalog/functions_naming"), {"tables": table_names})
    ]


def dependent_views(conn: psycopg.Connection, table_names: list[str]) -> list[tuple[str, str]]:
    """(view, table) pairs: views that read a table (they follow it by OID through a move)."""
    if not table_names:
        return []
    return list(conn.execute(raw_template("catalog/dependent_views"), {"tables": table_names}))


def built_on(
    conn: psycopg.Connection, oid: int, columns: Sequence[str] = (), constraints: Sequence[str] = ()
) -> list[str]:
    """Objects others built on columns or constraints of a table that are about to be dropped
    (views, foreign keys, indexes, ...), by readable name. A DROP would fail half way on some
    (RESTRICT) and silently take the others with it (an index, a check): both are found first."""
    return [
        r[0]
        for r in conn.execute(
            raw_template("catalog/built_on"), {"oid": oid, "columns": list(columns), "constraints": list(constraints)}
        )
    ]


def schema_summary(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """Tables and exact rows per user schema (the tool's own schema excluded)."""
    tables = [
        f"{schema}.{name}"
        for schema, name in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL(%s) "
            "AND n.nspname NOT LIKE 'pg_temp%%' ORDER BY 1, 2",
            ([*SYSTEM_SCHEMAS, OPS_SCHEMA],),
        )
    ]
    summary: dict[str, tuple[int, int]] = {}
    for name, rows in exact_counts(conn, tables).items():
        schema = name.split(".")[0]
        count, total = summary.get(schema, (0, 0))
        summary[schema] = (count + 1, total + rows)
    return dict(sorted(summary.items()))


def exact_counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    if not tables:
        return {}
    statement = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {}").format(sql.Literal(name), qualified(name)) for name in tables
    )
    return dict(conn.execute(statement).fetchall())


def dangling_triggers(conn: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    """(table, trigger, function, missing table): enabled triggers whose function names a table
    that no longer exists. Every write that fires one fails; the tool never fires them (a merge or
    fold disables a trigger that writes into other tables for its own transaction)."""
    return conn.execute(raw_template("catalog/dangling_triggers"), {}).fetchall()
