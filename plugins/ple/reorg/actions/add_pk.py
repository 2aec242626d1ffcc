"""ADD_PK: give a keyless table the plan's primary key, on the column the plan names.

The column decides the path (read from the catalog and ple_ops.tool_change, never guessed):
- it does not exist: the tool creates it as a SERIAL key and records that it did;
- it exists and the tool created it (a low-lock run that was interrupted): the run resumes;
- it exists and the tool did not create it (the real `dol.form_5500_icp_filtered.filter_id`: serial,
  NOT NULL, no key): the column is *adopted* when it is non-null and unique: its sequence is set
  past the column's maximum (the application's next INSERT must not collide), and the key is added
  on it. Existing values are never overwritten. With NULLs or duplicates the lint refuses with the
  counts, and apply changes nothing.

Small tables: one statement under an exclusive lock for a moment. Large tables (more rows than the
`large_table_rows` setting) take the low-lock path, each sub-step its own short transaction (holding
the advisory lock and re-checking the approval) and each resumable:
  1. nullable column + owned sequence + DEFAULT nextval (metadata only: new rows get ids at once);
  2. backfill existing rows in batches of pages (TID range scans), committing each batch;
  3. CHECK (col IS NOT NULL) NOT VALID, then VALIDATE (does not block writes), then SET NOT NULL
     (no scan: the valid check proves it), then drop the check;
  4. CREATE UNIQUE INDEX CONCURRENTLY;
  5. ADD PRIMARY KEY USING INDEX (instant).
An adopted column skips 1 and 2.

Proof: the key constraint itself (unique, not null: the catalog is the evidence) and the row count;
the table's other columns are not rewritten by any of these statements.
"""

from __future__ import annotations

from psycopg import sql

from ple.catalog import built_on
from ple.db import transaction, with_lock_retry
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg import tool_changes
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.findings import Finding
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


def path(ctx: Context, step) -> str:
    """create (no column), resume (the tool's own column, half done) or adopt (someone else's)."""
    table = ctx.catalog.get(step.action.source)
    if table.column(step.action.column) is None:
        return "create"
    if tool_changes.recorded(ctx.conn, table.oid, step.action.column, tool_changes.CREATED_COLUMN):
        return "resume"
    return "adopt"


def column_defects(ctx: Context, step) -> dict:
    """NULLs and duplicated values of an existing key column (what adoption refuses)."""
    column = sql.Identifier(step.action.column)
    nulls, duplicates = ctx.conn.execute(
        sql.SQL("SELECT count(*) - count({c}), count({c}) - count(DISTINCT {c}) FROM {t}").format(
            c=column, t=qualified(step.action.source)
        )
    ).fetchone()
    return {"nulls": nulls, "duplicates": duplicates}


def _refusal(step, defects: dict) -> str:
    return (
        f"{step.action.source}.{step.action.column} already exists and is not fit to be the primary key: "
        f"{defects['nulls']} NULL values, {defects['duplicates']} duplicated values. ADD_PK adopts an existing "
        "column only when it is non-null and unique and never overwrites its values: fix those rows (or name "
        "another column in the plan), then lint again. Nothing was changed"
    )


def lint(ctx: Context, step) -> list:
    if path(ctx, step) != "adopt":
        return []
    defects = column_defects(ctx, step)
    if defects["nulls"] or defects["duplicates"]:
        return [Finding("add-pk", step.step_id, _refusal(step, defects))]
    return []


def low_lock(ctx: Context, step) -> bool:
    """The low-lock path for large tables, and to resume one that was started."""
    if path(ctx, step) == "resume":
        return True
    rows = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.action.source))).fetchone()[0]
    return rows > ctx.settings.large_table_rows


def transactional(ctx: Context, step) -> bool:
    return not low_lock(ctx, step)


def _sequence_of(ctx: Context, step) -> str | None:
    return ctx.conn.execute(
        "SELECT pg_get_serial_sequence(%s, %s)", (step.action.source, step.action.column)
    ).fetchone()[0]


def _past_the_max(ctx: Context, step, sequence: str) -> Statement:
    return Statement(
        f"set {sequence} past the largest {step.action.column} (the next INSERT must not collide)",
        sql.SQL(
            "SELECT setval(%(sequence)s::regclass, greatest((SELECT max({c}) FROM {t}), "
            "(SELECT last_value FROM {s}), 1))"
        ).format(c=sql.Identifier(step.action.column), t=qualified(step.action.source), s=qualified(sequence)),
        {"sequence": sequence},
    )


def _not_null_statements(step, target, col) -> list[Statement]:
    n = _names(step)
    return [
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
    ]


def _key_statements(step, target, col) -> list[Statement]:
    n = _names(step)
    return [
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


def statements(ctx: Context, step) -> list[Statement]:
    n = _names(step)
    target = qualified(step.action.source)
    col = sql.Identifier(n["column"])
    way = path(ctx, step)
    if way == "adopt":
        sequence = _sequence_of(ctx, step)
        head = [_past_the_max(ctx, step, sequence)] if sequence else []
        if not low_lock(ctx, step):
            return [
                *head,
                Statement(
                    f"adopt the existing {n['column']} as primary key of {step.action.source}",
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                        target, sql.Identifier(n["index"]), col
                    ),
                ),
            ]
        return [*head, *_not_null_statements(step, target, col), *_key_statements(step, target, col)]
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
        *_not_null_statements(step, target, col),
        *_key_statements(step, target, col),
    ]


def preview(ctx: Context, step) -> dict:
    rows = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.action.source))).fetchone()[0]
    result = {"rows": rows, "path": "low-lock" if low_lock(ctx, step) else "one statement", "column": path(ctx, step)}
    if result["column"] == "adopt":
        result |= column_defects(ctx, step)
    return result


def _count(ctx: Context, step) -> int:
    return ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.action.source))).fetchone()[0]


def _refuse_unfit(ctx: Context, step) -> None:
    defects = column_defects(ctx, step)
    if defects["nulls"] or defects["duplicates"]:
        raise PlanRejected(_refusal(step, defects))


def apply(ctx: Context, step) -> Outcome:
    """Small path: in the caller's transaction. Low-lock path: `ctx.conn` is in autocommit and each
    sub-step runs in its own transaction (the executor asks `transactional` first)."""
    way = path(ctx, step)
    if way == "adopt":
        _refuse_unfit(ctx, step)
    if not transactional(ctx, step):
        return _apply_low_lock(ctx, step, way)
    before = _count(ctx, step)
    column = ctx.catalog.get(step.action.source).column(step.action.column)
    for statement in statements(ctx, step):
        ctx.execute(statement)
    _record(ctx, step, way)
    if way == "adopt" and not column.not_null:  # the key made it NOT NULL: revert gives that back
        _record(ctx, step, "set_not_null")
    return _proven(ctx, step, before, {"path": "one statement", "column": way})


def _record(ctx: Context, step, way: str) -> None:
    change = {
        "create": tool_changes.CREATED_COLUMN,
        "adopt": tool_changes.ADOPTED_KEY,
        "set_not_null": tool_changes.SET_NOT_NULL,
    }[way]
    tool_changes.record(
        ctx.conn, step.action.source, step.action.column, change, step_id=step.step_id, run_id=ctx.run_id
    )


def _in_transaction(ctx: Context, statement: Statement, params: dict | None = None, also=None) -> int:
    """One sub-step of the low-lock path: its own transaction, under the advisory lock and the
    approval check like every apply transaction; `also` runs in it after the statement (a record)."""

    def work():
        with transaction(
            ctx.conn, lock_timeout=ctx.settings.lock_timeout, statement_timeout=ctx.settings.statement_timeout
        ):
            ctx.hold()
            with ctx.bypassing_triggers():  # the guards' decision (an updated_at must not rewrite rows)
                rowcount = ctx.conn.execute(
                    statement.query, params if params is not None else (statement.params or None)
                ).rowcount
            if also is not None:
                also()
            return rowcount

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


def _apply_low_lock(ctx: Context, step, way: str) -> Outcome:
    before = _count(ctx, step)
    parts = statements(ctx, step)
    backfilled, batches, pages = 0, 0, 0
    record_not_null = None
    if way == "adopt":
        head, parts = parts[: len(parts) - 6], parts[len(parts) - 6 :]
        for statement in head:
            _in_transaction(ctx, statement)
        if not _state(ctx, step)["not_null"]:
            record_not_null = lambda: _record(ctx, step, "set_not_null")  # noqa: E731
        add_check, validate, set_not_null, drop_check, index, primary_key = parts
    else:
        (column, sequence, default, backfill, add_check, validate, set_not_null, drop_check, index, primary_key) = parts
        _in_transaction(ctx, column, also=lambda: _record(ctx, step, "create"))
        for statement in (sequence, default):
            _in_transaction(ctx, statement)
        pages = ctx.conn.execute(
            "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (step.action.source,)
        ).fetchone()[0]
        batch = ctx.settings.backfill_batch_pages
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
        _in_transaction(ctx, set_not_null, also=record_not_null)
    _in_transaction(ctx, drop_check)
    if _state(ctx, step)["index_valid"] is False:
        ctx.conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(_names(step)["schema"], _names(step)["index"])
            )
        )
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction: the approval is re-checked (under
    # the advisory lock) just before it, and the next sub-step re-checks it again.
    with transaction(ctx.conn, lock_timeout=ctx.settings.lock_timeout):
        ctx.hold()
    ctx.conn.execute(index.query)
    if not _state(ctx, step)["has_pk"]:
        _in_transaction(ctx, primary_key, also=(lambda: _record(ctx, step, "adopt")) if way == "adopt" else None)
    details = {"path": "low-lock", "column": way, "rows_backfilled": backfilled, "batches": batches, "pages": pages}
    return _proven(ctx, step, before, details)


def _proven(ctx: Context, step, before: int, details: dict) -> Outcome:
    """The catalog is the proof of the key (unique, not null); rows are counted. Other sessions may
    insert meanwhile (the low-lock path lets them): more rows is fine, fewer is not."""
    table = step.action.source
    after = _count(ctx, step)
    key = ctx.conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
        (table,),
    ).fetchone()[0]
    if key != [step.action.column] or after < before:
        raise VerificationFailed(f"ADD_PK {table}: key {key}, rows {before} -> {after}")
    return Outcome(step, "applied", rows_before={table: before}, rows_after={table: after}, details=details)


def verify(ctx: Context, step, located: dict) -> list[str]:
    table = ctx.catalog.get(step.action.source)
    if table is None or table.primary_key != [step.action.column]:
        return [f"{step.action.source} lacks the primary key ({step.action.column})"]
    return []


def revert_blockers(ctx: Context, step) -> list[str]:
    """What others built on what `revert` drops (the column the tool created, with its key; or the
    key it added on an adopted column), read before the revert's first write: a foreign key or a
    view would stop the DROP half way through the phase, an index or a check would go with it."""
    table = ctx.catalog.get(step.action.source)
    column = step.action.column
    if table is None or table.column(column) is None:
        return []
    key = ctx.conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s AND contype = 'p'", (table.oid,)
    ).fetchone()
    keys = [key[0]] if key and table.primary_key == [column] else []
    if tool_changes.recorded(ctx.conn, table.oid, column, tool_changes.CREATED_COLUMN):
        what = f"the column {column} (and its key) the tool created"
        found = built_on(ctx.conn, table.oid, [column], [*keys, _names(step)["check"]])
    elif keys and tool_changes.recorded(ctx.conn, table.oid, column, tool_changes.ADOPTED_KEY):
        what = f"the primary key {keys[0]} the tool added on {column}"
        found = built_on(ctx.conn, table.oid, [], keys)
    else:
        return []
    return [f"{table.name}: {what}, which the revert drops, has {', '.join(found)} built on it"] if found else []


def revert(ctx: Context, step) -> Outcome:
    """Undo what the tool did, and only that: a column it created is dropped (its values are ids
    the tool generated); a column it adopted keeps every value and loses only the key (and the
    NOT NULL, if the tool set it)."""
    table = ctx.catalog.get(step.action.source)
    column = step.action.column
    if table is None or table.column(column) is None:
        return Outcome(step, "already_done")
    created = tool_changes.recorded(ctx.conn, table.oid, column, tool_changes.CREATED_COLUMN)
    adopted = tool_changes.recorded(ctx.conn, table.oid, column, tool_changes.ADOPTED_KEY)
    target = qualified(step.action.source)
    if created:
        ctx.conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(target, sql.Identifier(column)))
        tool_changes.forget(ctx.conn, table.oid, column, tool_changes.CREATED_COLUMN)
        return Outcome(step, "reverted", details={"dropped_column": column})
    if not adopted:
        return Outcome(step, "already_done", details={"kept_column": column, "reason": "not created by this tool"})
    key = ctx.conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s AND contype = 'p'", (table.oid,)
    ).fetchone()
    if key and table.primary_key == [column]:
        ctx.conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(key[0])))
    if tool_changes.recorded(ctx.conn, table.oid, column, tool_changes.SET_NOT_NULL):
        ctx.conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(target, sql.Identifier(column)))
        tool_changes.forget(ctx.conn, table.oid, column, tool_changes.SET_NOT_NULL)
    tool_changes.forget(ctx.conn, table.oid, column, tool_changes.ADOPTED_KEY)
    return Outcome(step, "reverted", details={"released_key_kept_column": column})
