"""Rows drawn from a table's own catalog: each column's type, length, NOT NULL and enum labels (the
source's rules, never a target's). A row the source's own CHECK, key or foreign key refuses is not
a source row: it is skipped (in a savepoint) and the example goes on with the rows that fit.

Values are sent as text or as psycopg-adaptable objects and cast to the column's type in SQL
(`CAST(%s AS <type>)`), so every type the catalog names can be written, samples included (a
column's existing values and the keys its foreign keys point at, read as text).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

# Text PostgreSQL stores: no NUL, no lone surrogates.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_TRICKY = [
    "",
    " ",
    "open",
    "OPEN",
    "resolved",
    "closed",
    "pending",
    "manual",
    "O'Brien",
    '"quoted"',
    "back\\slash",
    "tab\there",
    "line\nbreak",
    "ünïcødé ✓ 😀 中文",
    "NULL",
    "null",
    "%s",
    "{}",
    "'; DROP TABLE people.people_master; --",
]
_INT_LIMITS = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}

_COLUMNS = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typtype::text,
       t.typcategory::text, coalesce(e.typname, '')::text,
       coalesce(a.attidentity <> '' OR a.attgenerated <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%', false),
       CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder) END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_FOREIGN_KEYS = """
SELECT a.attname::text, c.confrelid::regclass::text, r.attname::text
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type: character varying(50), numeric(5,2), text[], ...
    not_null: bool
    typtype: str
    category: str
    element: str
    defaulted: bool  # identity, generated or a sequence default: the insert leaves it out
    labels: tuple[str, ...] | None
    samples: tuple[str, ...] = ()  # existing values and referenced keys, as text


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())


def read_table(conn: psycopg.Connection, name: str) -> Table | None:
    """The table's columns as its catalog declares them, with up to 12 existing values each and
    the keys each single-column foreign key may point at."""
    if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
        return None
    referenced = {}
    for column, ref_table, ref_column in conn.execute(_FOREIGN_KEYS, (name,)).fetchall():
        referenced[column] = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT DISTINCT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT 30").format(
                    c=sql.Identifier(ref_column), t=sql.Identifier(*ref_table.split("."))
                )
            )
        ]
    columns = []
    for row in conn.execute(_COLUMNS, (name,)).fetchall():
        column_name = row[0]
        existing = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT DISTINCT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT 12").format(
                    c=sql.Identifier(column_name), t=sql.Identifier(*name.split("."))
                )
            )
        ]
        columns.append(
            Column(*row[:7], tuple(row[7]) if row[7] else None, tuple(referenced.get(column_name, []) + existing))
        )
    key = conn.execute(
        "SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}') FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (name,),
    ).fetchone()[0]
    return Table(name, tuple(columns), tuple(key))


def _length(type_name: str) -> int | None:
    if "(" in type_name and type_name.startswith(("character varying", "character(")):
        return int(type_name.split("(", 1)[1].rstrip(")"))
    return None


def text_values(max_size: int | None) -> st.SearchStrategy:
    """Short arbitrary unicode, tricky words, and strings exactly at (or, for text, far beyond)
    the length the source allows."""
    limit = max_size if max_size is not None else 5000
    tricky = [t for t in _TRICKY if max_size is None or len(t) <= max_size]
    return st.one_of(
        st.sampled_from(tricky),
        st.text(_CHARS, max_size=min(limit, 12)),
        st.builds(lambda c, n: (c * limit)[:limit], st.sampled_from(["x", "é", "😀", "ab "]), st.just(0)),
    )


def _scalar(type_name: str, category: str) -> st.SearchStrategy | None:
    """A strategy for one value of a base type, or None (the samples and NULL only)."""
    base = type_name.split("(", maxsplit=1)[0].strip()
    if base in _INT_LIMITS:
        bound = _INT_LIMITS[base]
        return st.one_of(st.sampled_from([-bound, bound - 1, 0, -1, 1]), st.integers(-bound, bound - 1))
    if base == "numeric":
        if "(" in type_name:
            precision, scale = (int(x) for x in type_name.split("(")[1].rstrip(")").split(","))
            top = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
            return st.decimals(-top, top, places=scale, allow_nan=False)
        return st.one_of(
            st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("627.49")]),
            st.decimals(Decimal("-1e30"), Decimal("1e30"), allow_nan=False),
            st.decimals(Decimal("-1e6"), Decimal("1e6"), places=9),
        )
    if base in ("double precision", "real"):
        return st.floats(width=32 if base == "real" else 64)
    if base == "boolean":
        return st.booleans()
    if base == "uuid":
        return st.uuids().map(str)
    if base == "date":
        return st.one_of(st.dates().map(str), st.sampled_from(["infinity", "-infinity"]))
    if base.startswith("timestamp"):
        zoned = "with time zone" in base
        offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
        moments = st.datetimes(
            min_value=dt.datetime(1, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=offsets if zoned else st.none(),
        )
        return st.one_of(moments.map(lambda d: d.isoformat()), st.sampled_from(["infinity", "-infinity", "epoch"]))
    if base in ("jsonb", "json"):
        leaves = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(_CHARS, max_size=30),
        )
        return st.recursive(
            leaves,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_CHARS, max_size=8), inner, max_size=3),
            max_leaves=8,
        ).map(Jsonb)
    if category == "S" or base in ("text", "character varying", "character", "citext", "name"):
        return text_values(_length(type_name))
    return None


def values(column: Column) -> st.SearchStrategy:
    """Every value the column's own type and NOT NULL allow (its CHECKs are the insert's to judge)."""
    options = []
    if column.labels:
        options.append(st.sampled_from(column.labels))
    elif column.category == "A":
        element_type = column.type[:-2]
        element = _scalar(element_type, "S" if column.element in ("text", "varchar", "bpchar") else "")
        if element is not None and not isinstance(element, type(None)):
            options.append(st.lists(st.none() | element, max_size=4).map(_array_literal))
    else:
        scalar = _scalar(column.type, column.category)
        if scalar is not None:
            options.append(scalar)
    if column.samples:
        options.append(st.sampled_from(column.samples))
    if not column.not_null or not options:
        options.append(st.none())
    return st.one_of(*options)


def rows(table: Table, max_rows: int = 3) -> st.SearchStrategy:
    """Lists of rows: {column: value} over the columns an INSERT names (not identity, generated or
    sequence-defaulted columns)."""
    written = [c for c in table.columns if not c.defaulted]
    return st.lists(st.fixed_dictionaries({c.name: values(c) for c in written}), max_size=max_rows)


def updates(table: Table, max_updates: int = 2) -> st.SearchStrategy:
    """Edits of existing rows: (which row, by position, {column: new value}), key columns kept."""
    editable = [c for c in table.columns if not c.defaulted and c.name not in table.key]
    if not editable:
        return st.just([])
    edit = st.tuples(
        st.integers(0, 10_000),
        st.lists(st.sampled_from(editable), min_size=1, max_size=3, unique_by=lambda c: c.name).flatmap(
            lambda cols: st.fixed_dictionaries({c.name: values(c) for c in cols})
        ),
    )
    return st.lists(edit, max_size=max_updates)


def _array_literal(items: list) -> str:
    def quoted(item) -> str:
        if item is None:
            return "NULL"
        return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "{" + ",".join(quoted(i) for i in items) + "}"


def _cast(table: Table, column: str) -> sql.Composable:
    type_name = next(c.type for c in table.columns if c.name == column)
    return sql.SQL("CAST(%s AS {})").format(sql.SQL(type_name))


def insert(conn: psycopg.Connection, table: Table, row: dict) -> bool:
    """Insert one row; False when the source's own rules (CHECK, key, foreign key, a value its
    type refuses) reject it: that row does not exist, nothing else changes."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(*table.name.split(".")),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(_cast(table, c) for c in row),
    )
    return _try(conn, query, list(row.values()))


def update(conn: psycopg.Connection, table: Table, position: int, changes: dict) -> bool:
    """Set columns of the existing row at `position` (modulo the row count, in ctid order)."""
    name = sql.Identifier(*table.name.split("."))
    query = sql.SQL("UPDATE {t} SET {sets} WHERE ctid = (SELECT ctid FROM {t} ORDER BY ctid OFFSET %s LIMIT 1)").format(
        t=name,
        sets=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), _cast(table, c)) for c in changes),
    )
    total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()[0]
    if not total:
        return False
    return _try(conn, query, [*changes.values(), position % total])


def _try(conn: psycopg.Connection, query, params) -> bool:
    try:
        with conn.transaction():
            conn.execute(query, params)
        return True
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError, psycopg.errors.InvalidTextRepresentation):
        return False
