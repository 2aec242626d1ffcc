"""ADD_PK: give a keyless table the plan's SERIAL primary key.

Small tables: one statement (`ADD COLUMN ... serial PRIMARY KEY`), which rewrites the table under
an exclusive lock for a moment. Large tables (more rows than the `large_table_rows` setting) take
the low-lock path, each sub-step its own short transaction and each resumable:
  1. nullable column + owned sequence + DEFAULT nextval (metadata only: new rows get ids at once);
  2. backfill existing rows in batches of pages (TID range scans), committing each batch;
  3. CHECK (col IS NOT NULL) NOT VALID, then VALIDATE (does not block writes), then SET NOT NULL
     (no scan: the valid check proves it), then drop the check;
  4. CREATE UNIQUE INDEX CONCURRENTLY;
  5. ADD PRIMARY KEY USING INDEX (instant).
"""

from __future__ import annotations

from psycopg import sql

from ple.db import transaction, with_lock_retry
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.proof import content_columns, fingerprint
from ple.sqlutil import qualified, split_qualified


def _names(step) -> dict:
    schema, table = split_qualified(step.action.source)
    column = step.action.column
    return {
        "schema": schema,
        "table": table,
        "column": column,
        "sequence": f"{table}_{column}_seq"[:63],
        "check": f"{table}_{column}_not_null"[:63],
        "index": f"{table}_pkey"[:63],
    }


def check(ctx: Context, step) -> State:
    table = ctx.catalog.get(step.action.source)
    if table is None:
        raise PlanRejected(f"ADD_PK: {step.action.source} does not exist")
    if table.primary_key == [step.action.column]:
        return State.DONE
    if table.primary_key:
        raise PlanRejected(f"ADD_PK: {step.action.source} already has the primary key {table.primary_key}")
    return State.PENDING


def low_lock(ctx: Context, step) -> bool:
    """The low-lock path for large tables, and to resume one that was started."""
    table = ctx.catalog.get(step.action.source)
    if table.column(step.action.column) is not None:
        return True
    rows = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.action.source))).fetchone()[0]
    return rows > ctx.settings.large_table_rows


def transactional(ctx: Context, step) -> bool:
    return not low_lock(ctx, step)


def statements(ctx: Context, step) -> list[Statement]:
    n = _names(step)
    target = qualified(step.action.source)
    col = sql.Identifier(n["column"])
    if not low_lock(ctx, step):
        return [
            Statement(
                f"add {n['column']} serial primary key to {step.action.source}",
                sql.SQL("ALTER TABLE {} ADD COLUMN {} serial PRIMARY KEY").format(target, col),
            )
        ]
    seq = sql.Identifier(n["schema"], n["sequence"])
    seq_text = sql.Literal(f"{n['schema']}.{n['sequence']}")
    return [
        Statement("nullable column", sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} integer").format(target, col)),
        Statement(
            "owned sequence",
            sql.SQL("CREATE SEQUENCE IF NOT EXISTS {} AS integer OWNED BY {}.{}").format(seq, target, col),
        ),
        Statement(
            "new rows get ids at once",
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT nextval({}::regclass)").format(target, col, seq_text),
        ),
        Statement(
            "backfill a batch of pages (repeated)",
            sql.SQL(
                "UPDATE {} SET {} = nextval({}::regclass) WHERE ctid >= format('(%%s,0)', %(first)s::bigint)::tid "
                "AND ctid < format('(%%s,0)', %(last)s::bigint)::tid AND {} IS NULL"
            ).format(target, col, seq_text, col),
            {"first": 0, "last": ctx.settings.backfill_batch_pages},
        ),
        Statement(
            "prove no NULL without a scan under lock",
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(
                target, sql.Identifier(n["check"]), col
            ),
        ),
        Statement(
            "validate (does not block writes)",
            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(target, sql.Identifier(n["check"])),
        ),
        Statement("set not null (no scan)", sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(target, col)),
        Statement(
            "drop the helper check",
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(target, sql.Identifier(n["check"])),
        ),
        Statement(
            "unique index without blocking writes",
            sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(n["index"]), target, col
            ),
        ),
        Statement(
            "primary key from the index (instant)",
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
                target, sql.Identifier(n["index"]), sql.Identifier(n["index"])
            ),
        ),
    ]


def preview(ctx: Context, step) -> dict:
    rows = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.action.source))).fetchone()[0]
    return {"rows": rows, "path": "low-lock" if low_lock(ctx, step) else "one statement"}


def apply(ctx: Context, step) -> Outcome:
    """Small path: in the caller's transaction. Low-lock path: `ctx.conn` is in autocommit and each
    sub-step runs in its own transaction (the executor asks `transactional` first)."""
    table = ctx.catalog.get(step.action.source)
    own = [c for c in content_columns(table) if c != step.action.column]
    if transactional(ctx, step):
        before = fingerprint(ctx.conn, table, own)
        ctx.execute(statements(ctx, step)[0])
        after = fingerprint(ctx.conn, table, own)
        if (before.rows, before.checksum) != (after.rows, after.checksum):
            raise VerificationFailed(f"ADD_PK changed {step.action.source}: {before} -> {after}")
        return _proven(step, before, after, {"path": "one statement"})
    return _apply_low_lock(ctx, step, table, own)


def _in_transaction(ctx: Context, statement: Statement, params: dict | None = None) -> int:
    def work():
        with transaction(
            ctx.conn, lock_timeout=ctx.settings.lock_timeout, statement_timeout=ctx.settings.statement_timeout
        ):
            return ctx.conn.execute(
                statement.query, params if params is not None else (statement.params or None)
            ).rowcount

    return with_lock_retry(work, attempts=ctx.settings.lock_retries)


def _state(ctx: Context, step) -> dict:
    n = _names(step)
    row = ctx.conn.execute(
        """
        SELECT a.attnotnull,
               EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND conname = %(check)s),
               (SELECT indisvalid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = c.oid AND ic.relname = %(index)s),
               EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p')
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(column)s
        WHERE c.oid = to_regclass(%(table)s)
        """,
        {**n, "table": f"{n['schema']}.{n['table']}"},
    ).fetchone()
    keys = ("not_null", "has_check", "index_valid", "has_pk")
    return dict(zip(keys, row, strict=True)) if row else dict.fromkeys(keys)


def _apply_low_lock(ctx: Context, step, table, own: list[str]) -> Outcome:
    before = fingerprint(ctx.conn, table, own)
    (column, sequence, default, backfill, add_check, validate, set_not_null, drop_check, index, primary_key) = (
        statements(ctx, step)
    )
    for statement in (column, sequence, default):
        _in_transaction(ctx, statement)
    pages = ctx.conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (step.action.source,)
    ).fetchone()[0]
    batch = ctx.settings.backfill_batch_pages
    backfilled, batches = 0, 0
    for first in range(0, pages + 1, batch):
        backfilled += _in_transaction(ctx, backfill, {"first": first, "last": first + batch})
        batches += 1
    # rows that moved to later pages while we went: one last sweep over what is still NULL
    while remaining := _in_transaction(ctx, backfill, {"first": 0, "last": 2**31}):
        backfilled += remaining
        batches += 1
    state = _state(ctx, step)
    if not state["not_null"]:
        if not state["has_check"]:
            _in_transaction(ctx, add_check)
        _in_transaction(ctx, validate)
        _in_transaction(ctx, set_not_null)
    _in_transaction(ctx, drop_check)
    if _state(ctx, step)["index_valid"] is False:
        ctx.conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(_names(step)["schema"], _names(step)["index"])
            )
        )
    ctx.conn.execute(index.query)
    if not _state(ctx, step)["has_pk"]:
        _in_transaction(ctx, primary_key)
    after = fingerprint(ctx.conn, table, own)
    problems = (
        []
        if (before.rows, before.checksum) == (after.rows, after.checksum)
        else [f"content changed during the low-lock path: {before} -> {after}"]
    )
    if problems and not ctx.settings.allow_concurrent_writes:
        raise VerificationFailed(problems[0])
    outcome = _proven(
        step, before, after, {"path": "low-lock", "rows_backfilled": backfilled, "batches": batches, "pages": pages}
    )
    outcome.notes = problems
    return outcome


def _proven(step, before, after, details: dict) -> Outcome:
    table = step.action.source
    return Outcome(
        step,
        "applied",
        rows_before={table: before.rows},
        rows_after={table: after.rows},
        checksums_before={table: str(before.checksum)},
        checksums_after={table: str(after.checksum)},
        details=details,
    )


def verify(ctx: Context, step, located: dict) -> list[str]:
    table = ctx.catalog.get(step.action.source)
    if table is None or table.primary_key != [step.action.column]:
        return [f"{step.action.source} lacks the primary key ({step.action.column})"]
    return []


def revert(ctx: Context, step) -> Outcome:
    table = ctx.catalog.get(step.action.source)
    if table.column(step.action.column) is None:
        return Outcome(step, "already_done")
    ctx.conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
            qualified(step.action.source), sql.Identifier(step.action.column)
        )
    )
    return Outcome(step, "reverted")
