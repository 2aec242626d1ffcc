"""DDL of the DOL spoke's canonical, superseded and staging tables, derived from the layouts.

The fixture builder builds the pre-plan database from here; the nightly import creates the
canonical and superseded tables from here only on a database that has none (a fresh one). A table
that exists is adopted as it stands (`ple.dol.target`), never altered by a routine import.
"""

from __future__ import annotations

from psycopg import sql

from ple.dol.layouts import Dataset, union_fields
from ple.sqlutil import qualified, split_qualified


def canonical_columns(dataset: Dataset) -> list[tuple[str, str]]:
    """(column, type) of the layout fields in the canonical table, in layout order."""
    return [(f.column, f.sql_type) for f in union_fields(dataset.name)]


def staging_columns(dataset: Dataset) -> list[str]:
    return [f.column for f in union_fields(dataset.name)]


def superseded_table(dataset: Dataset) -> str:
    return f"{dataset.table}_superseded"


def record_sequence(dataset: Dataset) -> str:
    schema, table = split_qualified(dataset.staging_table)
    return f"{schema}.{table}_record_seq"


def create_canonical_table(dataset: Dataset) -> list[sql.Composed]:
    natural = set(dataset.natural_key)
    table = split_qualified(dataset.table)[1]
    parts = [
        sql.SQL("{} bigserial PRIMARY KEY").format(sql.Identifier(dataset.surrogate_key))
        if dataset.surrogate_type == "bigserial"
        else sql.SQL("{} uuid PRIMARY KEY DEFAULT gen_random_uuid()").format(sql.Identifier(dataset.surrogate_key))
    ]
    if dataset.name == "F_SCH_A":
        parts.append(sql.SQL("filing_id uuid"))
    for column, sql_type in canonical_columns(dataset):
        parts.append(
            sql.SQL("{} {}{}").format(
                sql.Identifier(column), sql.SQL(sql_type), sql.SQL(" NOT NULL" if column in natural else "")
            )
        )
    parts += [
        sql.SQL("form_year integer"),
        sql.SQL("company_unique_id text"),
        sql.SQL("extras jsonb"),
        sql.SQL("source_import_id bigint"),
        sql.SQL("created_at timestamptz NOT NULL DEFAULT now()"),
        sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"),
    ]
    for alias, alias_type, expression in dataset.aliases:
        parts.append(
            sql.SQL("{} {} GENERATED ALWAYS AS ({}) STORED").format(
                sql.Identifier(alias), sql.SQL(alias_type), sql.SQL(expression)
            )
        )
    parts.append(
        sql.SQL("CONSTRAINT {} UNIQUE ({})").format(
            sql.Identifier(f"{table}_natural_key"), sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        )
    )
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(split_qualified(dataset.table)[0])),
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qualified(dataset.table), sql.SQL(", ").join(parts)),
    ]


def create_superseded_table(dataset: Dataset) -> list[sql.Composed]:
    """Filings an amendment replaced move here, whole, with the ACK_ID that replaced them: every
    column of the live table as it stands (LIKE), indexed by the natural key (a re-imported
    superseded filing is recognised, not duplicated)."""
    target = qualified(superseded_table(dataset))
    table = split_qualified(superseded_table(dataset))[1]
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS, superseded_by_ack_id text, superseded_at timestamptz)"
        ).format(target, qualified(dataset.table)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{table}_natural_key"), target, sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        ),
    ]


def create_staging_table(dataset: Dataset) -> list[sql.Composed]:
    """The all-text staging twin the pre-plan database has beside each canonical table (the plan
    reorganizes them; the import stages in a temporary table of its own)."""
    staging = qualified(dataset.staging_table)
    sequence = qualified(record_sequence(dataset))
    parts = [sql.SQL("{} text").format(sql.Identifier(c)) for c in staging_columns(dataset)]
    parts += [
        sql.SQL("import_id bigint DEFAULT nullif(current_setting('ple.import_id', true), '')::bigint"),
        sql.SQL("record_no bigint"),
        sql.SQL("extras jsonb"),
    ]
    table = split_qualified(dataset.staging_table)[1]
    return [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(staging, sql.SQL(", ").join(parts)),
        *[
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(staging, sql.Identifier(c))
            for c in staging_columns(dataset)
        ],
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS extras jsonb").format(staging),
        sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(sequence),
        sql.SQL("ALTER TABLE {} ALTER COLUMN record_no SET DEFAULT nextval({}::regclass)").format(
            staging, sql.Literal(record_sequence(dataset))
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (import_id)").format(
            sql.Identifier(f"{table}_import_id"), staging
        ),
    ]
