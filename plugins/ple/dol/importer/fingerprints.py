"""Per-row fingerprints: what makes a refresh cost what changed, not the whole file.

The import keeps, in a table of its own schema (no DDL on the live table), the fingerprint of
each row it last wrote or found equal, by natural key. On a refresh only the staged rows whose
fingerprint differs (or has none) are compared with the live table and rewritten.
"""

from __future__ import annotations

from psycopg import sql

from ple import governance
from ple.dol import target
from ple.dol.importer.state import CHANGED, STAGE
from ple.dol.layouts import Dataset
from ple.sqlutil import qualified, raw_template


def fingerprint_table(live: target.LiveTable) -> str:
    """ple_ops.dol_fp_<schema>_<table>: the fingerprint of each row the import last wrote (or found
    equal) in that live table, by its natural key. The tool's own schema: no DDL on the live table."""
    return f"ple_ops.dol_fp_{live.name.replace('.', '_')}"


def fingerprint(mapping: target.Mapping) -> sql.Composable:
    """128 bits of a staged row's content: every header position of the file (what the row
    writes, extras included), not its record number (a row moved in the file is the same row)."""
    return sql.SQL("md5(ROW({})::text)::uuid").format(
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in mapping.staging)
    )


def table_of(conn, dataset: Dataset, live: target.LiveTable) -> str:
    """The live table's fingerprint table, created on its first import: its natural key typed as
    the staging table (as the live table), the fingerprint, the key as primary key."""
    table = fingerprint_table(live)
    if conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()[0]:
        governance.register_before_create(
            conn, table, "SYSTEM", f"the DOL import's per-row fingerprints of {live.name}", "dol_import"
        )
        keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        conn.execute(
            sql.SQL("CREATE TABLE {} AS SELECT {}, NULL::uuid AS fingerprint FROM {} WITH NO DATA").format(
                qualified(table), keys, sql.Identifier(STAGE)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(qualified(table), keys))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN fingerprint SET NOT NULL").format(qualified(table)))
    return table


def changed(conn, dataset: Dataset, fingerprints: str, mapping: target.Mapping, live: str, superseded: str) -> int:
    """The staged rows whose fingerprint differs from the stored one, or has none (a row the import
    never wrote, e.g. loaded before fingerprints were kept), or whose key is in neither the live
    nor the superseded table (removed by someone since: written again), into CHANGED with their
    fingerprint: the only rows the upsert reads. Returns how many."""

    def match(alias: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{a}.{k} = s.{k}").format(a=sql.Identifier(alias), k=sql.Identifier(k)) for k in dataset.natural_key
        )

    return conn.execute(
        sql.SQL(raw_template("dol/import/changed")).format(
            changed=sql.Identifier(CHANGED),
            stage=sql.Identifier(STAGE),
            fp=fingerprint(mapping),
            fps=qualified(fingerprints),
            match=match("f"),
            live=qualified(live),
            superseded=qualified(superseded),
            tmatch=match("t"),
        )
    ).rowcount


def remember(conn, dataset: Dataset, fingerprints: str, mapping: target.Mapping, rows: str) -> None:
    """Store the fingerprints of the rows just written or found equal (`rows`: STAGE after a fresh
    load, CHANGED after an upsert), replacing the ones they had."""
    keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
    value = sql.SQL("s.fingerprint") if rows == CHANGED else fingerprint(mapping)
    conn.execute(
        sql.SQL(raw_template("dol/import/remember")).format(
            fps=qualified(fingerprints),
            keys=keys,
            skeys=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key),
            fp=value,
            rows=sql.Identifier(rows),
        )
    )
