"""DDL of the DOL spoke's canonical, superseded and staging tables, derived from the layouts.

The fixture builder and the nightly import create the same tables from here, so the database the
plan was written against and the tables the importer fills can never drift apart. Every statement
is idempotent and additive: when DOL adds columns in a new plan year, the next import adds them.
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
    parts = [sql.SQL("{} uuid PRIMARY KEY DEFAULT gen_random_uuid()").format(sql.Identifier(dataset.surrogate_key))]
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
    statements = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qualified(dataset.table), sql.SQL(", ").join(parts))
    ]
    statements += [
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            qualified(dataset.table), sql.Identifier(c), sql.SQL(t)
        )
        for c, t in canonical_columns(dataset)
    ]
    return statements


def create_superseded_table(dataset: Dataset) -> list[sql.Composed]:
    """Filings an amendment replaced move here, whole, with the ACK_ID that replaced them."""
    target = qualified(superseded_table(dataset))
    return [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(target, qualified(dataset.table)),
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS superseded_by_ack_id text").format(target),
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS superseded_at timestamptz").format(target),
    ]


def create_staging_table(dataset: Dataset) -> list[sql.Composed]:
    """All-text twin of the file: COPY never fails on a type, the casts happen set-based later.

    `import_id` defaults from the importing transaction and `record_no` from a sequence, so a plain
    COPY of the file's columns fills them. Rows a previous import left behind have import_id NULL
    and are never touched.
    """
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


def all_ddl(dataset: Dataset) -> list[sql.Composed]:
    schema = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(split_qualified(dataset.table)[0]))
    return [schema, *create_canonical_table(dataset), *create_superseded_table(dataset), *create_staging_table(dataset)]
