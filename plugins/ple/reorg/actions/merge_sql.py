"""The MERGE's statements and its record: the INSERT ... SELECT with its proof, the target's
provenance columns and index, the row-by-row record of what the merge wrote (ple_ops.merged_row),
the copies still exactly as written (what a revert may remove), and the casts that would lose
information. Shared by the one-transaction merge (merge.py) and the batched one (merge_batches.py).
"""

from __future__ import annotations

from psycopg import sql

from ple.catalog import TableInfo
from ple.errors import PlanRejected
from ple.reorg import tool_changes
from ple.reorg.actions import relocate
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.findings import Finding
from ple.reorg.merge_mapping import (
    DISCRIMINATOR_TYPES,
    PROVENANCE_DDL,
    Mapping,
    cast_to,
    keyed_source,
    mapping,
    source_key,
    target_key_match,
)
from ple.reorg.plan import Action, MergeTarget
from ple.reorg.proof import content_columns, row_hash
from ple.sqlutil import qualified, raw_template, split_qualified


def tables(ctx: Context, action: Action) -> tuple[MergeTarget, TableInfo, TableInfo]:
    spec = ctx.plan.merge_targets.get(action.target)
    if spec is None:
        raise PlanRejected(f"{action.target} is a MERGE target without an entry in merge_targets")
    source, target = ctx.catalog.get(action.source), ctx.catalog.get(action.target)
    if source is None or target is None:
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: {'source' if source is None else 'target'} missing"
        )
    return spec, source, target


def _kept_expression(ctx: Context, spec: MergeTarget, key_match) -> sql.Composable:
    """True for a row whose key the target already has (not counting rows this source merged
    before: those are its own copies); such a row is not copied and stays in the archive."""
    if key_match is None or spec.on_key_conflict != "keep_target":
        return sql.SQL("false")
    others = (
        sql.SQL("AND x.ctb_source_table IS DISTINCT FROM %(source_table)s")
        if ctx.catalog.get(spec.table).column("ctb_source_table")
        else sql.SQL("")
    )
    return sql.SQL("EXISTS (SELECT 1 FROM {} AS x WHERE {} {})").format(qualified(spec.table), key_match, others)


def insert_statement(
    ctx: Context, action: Action, rows: sql.Composable | None = None
) -> tuple[Statement, Mapping, sql.Composable | None]:
    """The merge and its proof in one statement, so each source row is read and turned into JSON
    once: the copies are inserted and recorded (ple_ops.merged_row), and the statement returns
    (rows to merge, checksum of their JSON as read from the source, rows whose key the target
    kept, rows inserted, checksum of ctb_source_row as stored, rows recorded, copies already in
    the target, checksum of their ctb_source_row). A copy already there (a revert kept it: the
    application changed it since an earlier merge) is not inserted again (ON CONFLICT); it is the
    row's copy, and the proof counts it with its stored provenance, so it holds only while that
    provenance is the source row (refused before: stale_copies). `rows`: a WHERE clause on the
    source `s` (one batch: merge_batches.py); all rows by default."""
    spec, source, target = tables(ctx, action)
    plan = mapping(action, spec, source, target, ctx.catalog)
    if plan.uncovered:
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: required target columns {plan.uncovered} have no value "
            "(add a fill rule or relax_not_null in merge_targets)"
        )
    plan.params["run_id"] = ctx.run_id
    plan.params["target_oid"] = target.oid
    hashed = content_columns(target)
    plan.params["hashed_columns"] = hashed
    key_match = target_key_match(spec, target, plan.fills)
    conflict_filter = sql.SQL("")
    if key_match is not None and spec.on_key_conflict == "keep_target":
        conflict_filter = sql.SQL("AND NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})").format(
            qualified(action.target), key_match
        )
    discriminator = target.column(spec.discriminator_column)
    query = sql.SQL(
        "WITH d AS MATERIALIZED (SELECT k.*, {kept} AS ctb_kept FROM {keyed}), "
        "inserted AS (INSERT INTO {target} AS t ({columns}, {disc}, ctb_source_table, ctb_source_key, ctb_source_row, ctb_run_id, ctb_merged_at) "
        "SELECT {values}, {disc_value}, %(source_table)s, k.ctb_key, k.ctb_row, %(run_id)s, now() "
        "FROM d AS k WHERE NOT k.ctb_kept {filter} "
        "ON CONFLICT (ctb_source_table, ctb_source_key) WHERE ctb_source_table IS NOT NULL DO NOTHING "
        "RETURNING t.ctb_source_key, {hash}, hashtextextended(t.ctb_source_row::text, 0)::numeric AS stored), "
        "recorded AS (INSERT INTO ple_ops.merged_row (target_oid, source_table, source_key, row_hash, columns, run_id) "
        "SELECT %(target_oid)s, %(source_table)s, i.ctb_source_key, i.row_hash, %(hashed_columns)s, %(run_id)s "
        "FROM inserted AS i ON CONFLICT (target_oid, source_table, source_key) DO UPDATE SET "
        "row_hash = EXCLUDED.row_hash, columns = EXCLUDED.columns, run_id = EXCLUDED.run_id RETURNING 1), "
        "present AS (SELECT count(*) AS n, coalesce(sum(hashtextextended(x.ctb_source_row::text, 0)::numeric), 0) AS stored "
        "FROM d JOIN {target} AS x ON x.ctb_source_table = %(source_table)s AND x.ctb_source_key = d.ctb_key "
        "WHERE NOT d.ctb_kept) "
        "SELECT count(*) FILTER (WHERE NOT d.ctb_kept), "
        "coalesce(sum(d.ctb_digest) FILTER (WHERE NOT d.ctb_kept), 0), "
        "count(*) FILTER (WHERE d.ctb_kept), "
        "(SELECT count(*) FROM inserted), (SELECT coalesce(sum(stored), 0) FROM inserted), "
        "(SELECT count(*) FROM recorded), (SELECT n FROM present), (SELECT stored FROM present) FROM d"
    ).format(
        hash=sql.Composed([row_hash("t", hashed), sql.SQL(" AS row_hash")]),
        target=qualified(action.target),
        columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in plan.fills),  # live names, quoted
        disc=sql.Identifier(spec.discriminator_column),
        values=sql.SQL(", ").join(f.expression for f in plan.fills),
        disc_value=cast_to(sql.Placeholder("discriminator"), discriminator)
        if discriminator
        else sql.Placeholder("discriminator"),
        keyed=keyed_source(source, rows=rows),
        kept=_kept_expression(ctx, spec, key_match),
        filter=conflict_filter,
    )
    return (
        Statement(
            f"copy {action.source} into {action.target} as {spec.discriminator_column}={action.value}, "
            "record each copy, and prove it (one pass over the source)",
            query,
            plan.params,
        ),
        plan,
        key_match,
    )


def merge_sets(
    ctx: Context,
    relation: str,
    key_match,
    spec: MergeTarget,
    params: dict,
    *,
    checksums: bool = True,
    key: bool = True,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """In one pass over `relation` (the source, or its archive): (rows, JSON checksum) of the rows
    merged into the target, and of the rows whose key the target already had (kept in archive).
    `to_jsonb(row)::text` is the expensive part: without `checksums` it is not computed, nor (for a
    keyless source) its JSON-hash key when `key` says the key match does not read it."""
    kept = _kept_expression(ctx, spec, key_match)
    digest = sql.SQL("k.ctb_digest" if checksums else "0")
    row = ctx.conn.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE NOT d.kept), coalesce(sum(d.h) FILTER (WHERE NOT d.kept), 0), "
            "count(*) FILTER (WHERE d.kept), coalesce(sum(d.h) FILTER (WHERE d.kept), 0) "
            "FROM (SELECT {digest} AS h, {kept} AS kept FROM {keyed}) AS d"
        ).format(
            digest=digest,
            kept=kept,
            keyed=keyed_source(ctx.catalog.get(relation), json=checksums, key=checksums or key),
        ),
        params,
    ).fetchone()
    return (int(row[0]), int(row[1])), (int(row[2]), int(row[3]))


def prepare_target(ctx: Context, target_name: str) -> list[Statement]:
    """Preflight DDL for a merge target: discriminator and provenance columns, relaxed NOT NULLs.
    All metadata-only (nullable columns without defaults), idempotent."""
    spec = ctx.plan.merge_targets[target_name]
    target = ctx.catalog.get(target_name)
    result = []
    columns = [(spec.discriminator_column, DISCRIMINATOR_TYPES[spec.discriminator_type]), *PROVENANCE_DDL]
    for name, column_type in columns:
        if target.column(name) is None:
            result.append(
                Statement(
                    f"add column {target_name}.{name}",
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        qualified(target_name), sql.Identifier(name), sql.SQL(column_type)
                    ),
                )
            )
    for name in spec.relax_not_null:
        column = target.column(name)
        if column is not None and column.not_null:
            # recorded in the same transaction, so revert restores it even if the phase stops here
            result.append(
                Statement(
                    f"relax NOT NULL on {target_name}.{name} (recorded: revert restores it)",
                    sql.SQL(
                        "ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL; "
                        "INSERT INTO ple_ops.tool_change (table_oid, column_name, change, table_name, run_id) "
                        "VALUES ({oid}, {name}, {change}, {table_name}, {run_id}) ON CONFLICT DO NOTHING"
                    ).format(
                        table=qualified(target_name),
                        column=sql.Identifier(name),
                        oid=sql.Literal(target.oid),
                        name=sql.Literal(name),
                        change=sql.Literal(tool_changes.RELAXED_NOT_NULL),
                        table_name=sql.Literal(target_name),
                        run_id=sql.Literal(ctx.run_id),
                    ),
                )
            )
    return result


def provenance_index(target_name: str) -> Statement:
    """Built CONCURRENTLY (outside a transaction), so the target stays writable meanwhile."""
    table = split_qualified(target_name)[1]
    return Statement(
        f"unique provenance index on {target_name}",
        sql.SQL(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (ctb_source_table, ctb_source_key) "
            "WHERE ctb_source_table IS NOT NULL"
        ).format(sql.Identifier(f"{table}_ctb_provenance"[:63]), qualified(target_name)),
    )


def check(ctx: Context, step) -> State:
    return relocate.check(ctx.catalog, step.action.source, ctx.plan.archive_name(step.action.source))


def statements(ctx: Context, step) -> list[Statement]:
    action = step.action
    insert, _, _ = insert_statement(ctx, action)
    lock = Statement(
        f"block writes to {action.source} for the transaction",
        sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(qualified(action.source)),
    )
    return [
        lock,
        insert,
        *relocate.statements(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source)),
    ]


def applied(
    ctx: Context,
    step,
    spec: MergeTarget,
    plan: Mapping,
    source: tuple[int, int],
    kept_rows: int,
    merged: tuple[int, int],
    **details,
) -> Outcome:
    """The outcome of a proven merge: `source` (rows to merge, their JSON checksum) was stored as
    `merged` (rows, checksum of ctb_source_row); the source archived whole, key conflicts included."""
    action = step.action
    archived = ctx.plan.archive_name(action.source)
    return Outcome(
        step,
        "applied",
        rows_before={action.source: source[0] + kept_rows},
        rows_after={action.target: merged[0], archived: source[0] + kept_rows},
        checksums_before={action.source: str(source[1])},
        checksums_after={f"{action.target}[{spec.discriminator_column}={action.value}]": str(merged[1])},
        details={
            "discriminator": {spec.discriminator_column: action.value},
            "key_conflicts_kept_in_archive": kept_rows,
            "provenance_only_columns": plan.provenance_only,
            "archived_as": archived,
            **details,
        },
    )


def recorded(ctx: Context, step) -> tuple[int, int] | None:
    """(rows, checksum of ctb_source_row) the merge stored, as its ledger row proved them at apply;
    None when no apply of this step stands (an adopted merge, or one reverted since)."""
    action = step.action
    spec = ctx.plan.merge_targets[action.target]
    row = ctx.conn.execute(
        "SELECT outcome, (rows_after ->> target)::bigint, checksums_after ->> %s FROM ple_ops.action_ledger "
        "WHERE step_id = %s AND action = 'MERGE' AND target = %s AND outcome IN ('applied', 'reverted') "
        "ORDER BY attempt_id DESC LIMIT 1",
        (f"{action.target}[{spec.discriminator_column}={action.value}]", step.step_id, action.target),
    ).fetchone()
    if row is None or row[0] != "applied" or row[1] is None or row[2] is None:
        return None
    return int(row[1]), int(row[2])


def forget_removed_copies(ctx: Context, action: Action, target: TableInfo) -> None:
    """The record of each copy no longer in the target (ple_ops.merged_row) goes with it."""
    ctx.conn.execute(
        sql.SQL(
            "DELETE FROM ple_ops.merged_row AS m WHERE m.target_oid = %s AND m.source_table = %s "
            "AND NOT EXISTS (SELECT 1 FROM {} AS t WHERE t.ctb_source_table = m.source_table "
            "AND t.ctb_source_key = m.source_key)"
        ).format(qualified(action.target)),
        (target.oid, action.source),
    )


def remove_unchanged_copies(ctx: Context, action: Action, *, unless_current_in_source: bool = False) -> int:
    """Delete from the target the copies of `action.source` that are still exactly what the merge
    wrote (_as_merged); a copy changed since stays, and so does a copy a row refers to through a
    foreign key (the application uses it: its ON DELETE rule would delete or rewrite that row).
    `unless_current_in_source`: only copies whose source row changed or went away since (a batched
    merge catching up)."""
    target = ctx.catalog.get(action.target)
    stale = _unreferenced(ctx, action.target)
    if unless_current_in_source:
        stale += sql.SQL(
            " AND NOT EXISTS (SELECT 1 FROM {} AS s WHERE {} = t.ctb_source_key AND to_jsonb(s.*) = t.ctb_source_row)"
        ).format(qualified(action.source), source_key(ctx.catalog.get(action.source)))
    removed = 0
    for as_merged in _as_merged(ctx, action, target):
        removed += ctx.conn.execute(
            sql.SQL(
                "DELETE FROM {} AS t USING ple_ops.merged_row AS m WHERE m.target_oid = %(oid)s "
                "AND m.source_table = %(source)s AND t.ctb_source_table = %(source)s "
                "AND t.ctb_source_key = m.source_key AND {}{}"
            ).format(qualified(action.target), as_merged, stale),
            {"oid": target.oid, "source": action.source},
        ).rowcount
    return removed


def _as_merged(ctx: Context, action: Action, target: TableInfo) -> list[sql.Composable]:
    """For each set of columns the merge hashed for the source's copies (ple_ops.merged_row), the
    condition that a copy `t` with its record `m` is still exactly what the merge wrote: the hash
    over those columns is the recorded one, and every column added to the target since holds NULL
    (the merge wrote nothing there: a value filled since, or put there by the DEFAULT of the ADD
    COLUMN, is a change, since the tool cannot tell the two apart). Copies whose hashed columns are
    gone from the target cannot be compared: no condition is theirs, so they count as changed."""
    conditions = []
    for (columns,) in ctx.conn.execute(
        "SELECT DISTINCT columns FROM ple_ops.merged_row WHERE target_oid = %s AND source_table = %s",
        (target.oid, action.source),
    ).fetchall():
        if any(target.column(c) is None for c in columns):
            continue
        added_since = [
            sql.SQL(" AND t.{} IS NULL").format(sql.Identifier(c)) for c in content_columns(target) if c not in columns
        ]
        conditions.append(
            sql.SQL("(m.columns = {} AND {} = m.row_hash{})").format(
                sql.Literal(list(columns)), row_hash("t", list(columns)), sql.Composed(added_since)
            )
        )
    return conditions


def _unreferenced(ctx: Context, target_name: str) -> sql.Composable:
    """`AND NOT EXISTS (...)` for each foreign key into the target, over the copy `t`. The
    referencing tables are locked against writes (SHARE; the target itself, for a key into itself,
    SHARE ROW EXCLUSIVE) until the transaction ends, so no reference can arrive between the check
    and the DELETE."""
    conditions = []
    for _name, referencing, columns, referenced, _rule in ctx.conn.execute(
        raw_template("audit/foreign_keys_into"), {"table": target_name}
    ).fetchall():
        mode = "SHARE ROW EXCLUSIVE" if ".".join(referencing) == target_name else "SHARE"
        ctx.conn.execute(sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.Identifier(*referencing), sql.SQL(mode)))
        match = sql.SQL(" AND ").join(
            sql.SQL("r.{} = t.{}").format(sql.Identifier(c), sql.Identifier(r))
            for c, r in zip(columns, referenced, strict=True)
        )
        conditions.append(
            sql.SQL(" AND NOT EXISTS (SELECT 1 FROM {} AS r WHERE {})").format(sql.Identifier(*referencing), match)
        )
    return sql.Composed(conditions)


def stale_copies(ctx: Context, action: Action) -> list[str]:
    """Provenance keys of the copies of `action.source` already in the target that no merge can
    take as, or put back to, a copy of its row: their stored source row (ctb_source_row under its
    key) is no row of the source now, and they are not what a merge wrote any more (a revert keeps
    such a copy: the application changed it). A merge run again counts a copy as its row's copy
    while the row is still the one it was made from; a copy still as merged is replaced by a
    batched merge catching up. Cheap when the target has no copy of the source (the usual case:
    one probe of the provenance index)."""
    source, target = ctx.catalog.get(action.source), ctx.catalog.get(action.target)
    if source is None or target is None or target.column("ctb_source_table") is None:
        return []
    params = {"source_table": action.source, "oid": target.oid}
    copies = sql.SQL("SELECT 1 FROM {} WHERE ctb_source_table = %(source_table)s").format(qualified(action.target))
    if not ctx.conn.execute(sql.SQL("SELECT EXISTS ({})").format(copies), params).fetchone()[0]:
        return []
    as_merged = _as_merged(ctx, action, target)
    return [
        r[0]
        for r in ctx.conn.execute(
            sql.SQL(
                "SELECT t.ctb_source_key FROM {} AS t WHERE t.ctb_source_table = %(source_table)s "
                "AND NOT EXISTS (SELECT 1 FROM {} WHERE k.ctb_key = t.ctb_source_key AND k.ctb_row = t.ctb_source_row) "
                "AND NOT EXISTS (SELECT 1 FROM ple_ops.merged_row AS m WHERE m.target_oid = %(oid)s "
                "AND m.source_table = %(source_table)s AND m.source_key = t.ctb_source_key AND ({})) ORDER BY 1"
            ).format(
                qualified(action.target),
                keyed_source(source),
                sql.SQL(" OR ").join(as_merged) if as_merged else sql.SQL("false"),
            ),
            params,
        )
    ]


def stale_message(action: Action, keys: list[str]) -> str:
    shown = ", ".join(keys[:10]) + (" ..." if len(keys) > 10 else "")
    return (
        f"MERGE {action.source} -> {action.target}: {action.target} holds {len(keys)} copies of {action.source} "
        f"(ctb_source_table = {action.source!r}) changed since their merge (a revert kept them), and their "
        f"source rows changed or went away since: provenance keys {shown}. The merge would leave each of those "
        "rows with no copy of what it is now. Nothing was written. Decide: `skip` the action in the decisions "
        f"file (actions.{action.source}.skip, with the reason: the table stays where it is and those copies stay "
        f"in {action.target}, both as they are), then approve and lint again"
    )


def _lossy_message(action: Action, plan: Mapping) -> str:
    casts = "; ".join(f"{s} -> {action.target}.{t}: {why}" for s, t, why in plan.lossy)
    return (
        f"MERGE {action.source} -> {action.target} would lose information: {casts}. Nothing was written. "
        f"If that is acceptable (the full source row stays in ctb_source_row), list the column under "
        f"merge_targets.{action.target}.accept_lossy_casts with the reason"
    )


def cast_findings(ctx: Context, step) -> list:
    """Lossy casts (from the types) and values too long for their target column (counted)."""
    action = step.action
    spec = ctx.plan.merge_targets.get(action.target)
    source, target = ctx.catalog.get(action.source), ctx.catalog.get(action.target)
    if spec is None or source is None or target is None:
        return []
    plan = mapping(action, spec, source, target, ctx.catalog)
    findings = []
    if plan.lossy:
        findings.append(Finding("lossy-cast", step.step_id, _lossy_message(action, plan)))
    for source_column, target_column, limit in plan.narrowed:
        too_long = ctx.conn.execute(
            sql.SQL("SELECT count(*) FROM {} AS s WHERE length(s.{}::text) > %s").format(
                qualified(action.source), sql.Identifier(source_column)
            ),
            (limit,),
        ).fetchone()[0]
        if too_long:
            findings.append(
                Finding(
                    "lossy-cast",
                    step.step_id,
                    f"{too_long} values of {action.source}.{source_column} are longer than {action.target}."
                    f"{target_column} allows ({limit}): the INSERT would fail half way. To store them cut to "
                    f"{limit} characters (the full row stays in ctb_source_row), list {target_column} under "
                    f"merge_targets.{action.target}.accept_lossy_casts with the reason; nothing was written",
                )
            )
    return findings
