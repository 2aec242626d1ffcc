"""DDL of the DOL spoke's canonical and staging tables, derived from the layouts.

The fixture builder and the nightly import create the same tables from here, so the database the
plan was written against and the tables the importer fills can never drift apart.
"""

from __future__ import annotations

from psycopg import sql

from ple.dol.layouts import DATASETS, Dataset, union_fields
from ple.sqlutil import qualified


def canonical_columns(dataset: Dataset) -> list[tuple[str, str]]:
    """(column, type) of the layout fields in the canonical table, in layout order."""
    return [(f.column, f.sql_type) for f in union_fields(dataset.name)]


def staging_columns(dataset: Dataset) -> list[str]:
    return [f.column for f in union_fields(dataset.name)]


def create_canonical_table(dataset: Dataset) -> sql.Composed:
    natural = set(dataset.natural_key)
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
    table = dataset.table.split(".")[1]
    parts.append(
        sql.SQL("CONSTRAINT {} UNIQUE ({})").format(
            sql.Identifier(f"{table}_natural_key"), sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        )
    )
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qualified(dataset.table), sql.SQL(", ").join(parts))


def create_staging_table(dataset: Dataset) -> sql.Composed:
    """All-text twin of the file: COPY never fails on a type, the casts happen set-based later.

    `import_id` and `record_no` default from the importing transaction, so a plain COPY fills them.
    Rows a previous import left behind have import_id NULL and are never touched.
    """
    parts = [sql.SQL("{} text").format(sql.Identifier(c)) for c in staging_columns(dataset)]
    parts += [
        sql.SQL("import_id bigint DEFAULT nullif(current_setting('ple.import_id', true), '')::bigint"),
        sql.SQL("record_no bigint"),
    ]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        qualified(dataset.staging_table), sql.SQL(", ").join(parts)
    )


def all_datasets() -> list[Dataset]:
    return list(DATASETS.values())
