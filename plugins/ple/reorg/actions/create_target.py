"""CREATE_TARGET (a decision, not a plan action): create a merge target that is gone.

Several of the plan's merge targets were dropped from the real database (empty) before the plan
ran. A decision `targets.<table>.create: {columns: {...}}` creates it: a surrogate key, the
declared columns (types from a fixed list, never free SQL text), and then, as for every merge
target, the preflight adds the discriminator and provenance columns; each merged row keeps its
whole source row in ctb_source_row, so no column needs to be declared for the merge to be lossless.
"""

from __future__ import annotations

from psycopg import sql

from ple.errors import PlanRejected
from ple.reorg.context import Context, State, Statement
from ple.sqlutil import check_identifier, qualified

# The column types a decision may declare (decisions.schema.json lists the same).
TYPES = {
    "text": "text",
    "varchar(50)": "varchar(50)",
    "varchar(100)": "varchar(100)",
    "varchar(255)": "varchar(255)",
    "integer": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "boolean": "boolean",
    "uuid": "uuid",
    "jsonb": "jsonb",
    "date": "date",
    "timestamptz": "timestamptz",
}
KEY_COLUMN = "ctb_row_id"


def check(ctx: Context, table: str) -> State:
    return State.DONE if ctx.catalog.exists(table) else State.PENDING


def statements(ctx: Context, table: str, definition: dict) -> list[Statement]:
    columns = [sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY").format(sql.Identifier(KEY_COLUMN))]
    for name, column_type in (definition.get("columns") or {}).items():
        if column_type not in TYPES:
            raise PlanRejected(f"create {table}: type {column_type!r} of {name} is not one of {sorted(TYPES)}")
        columns.append(sql.SQL("{} {}").format(sql.Identifier(check_identifier(name)), sql.SQL(TYPES[column_type])))
    return [
        Statement(
            f"create the merge target {table} (decided)",
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qualified(table), sql.SQL(", ").join(columns)),
        )
    ]


def preview(ctx: Context, table: str) -> dict:
    return {"exists": ctx.catalog.exists(table)}


def apply(ctx: Context, table: str, definition: dict) -> None:
    for statement in statements(ctx, table, definition):
        ctx.execute(statement)


def verify(ctx: Context, table: str) -> list[str]:
    return [] if ctx.catalog.exists(table) else [f"{table} was to be created"]


def revert(ctx: Context, table: str) -> str:
    """Only an empty created target is dropped (rule zero): merged rows are removed by the merges' own revert first."""
    if not ctx.catalog.exists(table):
        return "already_done"
    if ctx.conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(qualified(table))).fetchone()[0]:
        raise PlanRejected(f"{table} holds rows: it is not dropped")
    ctx.conn.execute(sql.SQL("DROP TABLE {}").format(qualified(table)))
    return "reverted"
