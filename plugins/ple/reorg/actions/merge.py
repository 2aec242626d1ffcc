"""MERGE: copy every row of a source table into a target with a discriminator, then archive the
source unchanged.

One set-based INSERT ... SELECT. Columns with the same name and an assignable type are copied;
required target columns are filled by the plan's `fill` rules; the whole source row is kept in
`ctb_source_row` (JSONB) with `ctb_source_table` and `ctb_source_key`, so nothing is lost when the
shapes differ. A partial unique index on (ctb_source_table, ctb_source_key) makes a repeated
insert a no-op. The source is locked against writes for the transaction, so the rows copied are
exactly the rows archived.

What the merge wrote is recorded row by row (ple_ops.merged_row: a hash of each inserted row), so
that a revert removes a merged copy only while it is still what the merge wrote: a row the
application edited since is kept and reported, never deleted. A copy or fill whose typed target
would lose information (fractions into an integer, a timestamp read in some time zone, a longer
string into a shorter varchar) is refused unless the plan accepts it for that column
(`accept_lossy_casts`); the source row is kept whole in ctb_source_row either way.
"""

from __future__ import annotations

import dataclasses

from psycopg import sql

from ple.catalog import TableInfo
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg import tool_changes
from ple.reorg.actions import relocate
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.findings import Finding
from ple.reorg.merge_mapping import (
    DISCRIMINATOR_TYPES,
    PROVENANCE_DDL,
    Mapping,
    cast_to,
    key_reads_row,
    keyed_source,
    mapping,
    source_key,
    target_key_match,
)
from ple.reorg.plan import Action, MergeTarget
from ple.reorg.proof import content_columns, provenance_fingerprint, row_hash, stable_text
from ple.sqlutil import qualified, raw_template, split_qualified


def _tables(ctx: Context, action: Action) -> tuple[MergeTarget, TableInfo, TableInfo]:
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
    spec, source, target = _tables(ctx, action)
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


def _merge_sets(
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


def preview(ctx: Context, step) -> dict:
    action = step.action
    spec, _, _ = _tables(ctx, action)
    _, plan, key_match = insert_statement(ctx, action)
    reads_row = key_reads_row(ctx.catalog.get(action.target), plan.fills)
    (merged, _), (kept, _) = _merge_sets(
        ctx, action.source, key_match, spec, plan.params, checksums=False, key=reads_row
    )
    return {
        "rows": merged + kept,
        "rows_to_merge": merged,
        "key_conflicts_kept_in_archive": kept,
        "provenance_only_columns": plan.provenance_only,
    }


def transactional(ctx: Context, step) -> bool:
    """One transaction, unless a trigger on the live target is bypassed and the source spans
    several batches: then merge_batches.py, so the target is never locked for the whole merge."""
    from ple.reorg.actions import merge_batches

    return not merge_batches.batched(ctx, step)


def apply(ctx: Context, step) -> Outcome:
    stale = stale_copies(ctx, step.action)
    if stale:
        raise PlanRejected(_stale_message(step.action, stale))
    if not transactional(ctx, step):
        from ple.reorg.actions import merge_batches

        return merge_batches.apply(ctx, step)
    action = step.action
    spec, _, _ = _tables(ctx, action)
    lock, insert, *_archive = statements(ctx, step)
    ctx.execute(lock)
    stable_text(ctx.conn)
    refusals = _cast_findings(ctx, step)  # the rest of the lint ran in the preflight
    if refusals:
        raise PlanRejected("; ".join(f.message for f in refusals))
    _, plan, _ = insert_statement(ctx, action)
    merge_rows, merge_checksum, kept_rows, inserted, stored_checksum, recorded, present, present_checksum = (
        int(v) for v in ctx.execute(insert).fetchone()
    )
    if kept_rows and spec.on_key_conflict != "keep_target":  # the lint refuses this before any write
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: {kept_rows} rows collide with the target's primary key"
        )
    merged = (inserted + present, stored_checksum + present_checksum)
    if merged != (merge_rows, merge_checksum) or recorded != inserted:
        raise VerificationFailed(
            f"MERGE {action.source} -> {action.target}: inserted {inserted} (recorded {recorded}) with checksum "
            f"{stored_checksum}, {present} copies there before with checksum {present_checksum}; expected "
            f"{merge_rows} rows with checksum {merge_checksum}"
        )
    relocate.apply(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source))
    return applied(ctx, step, spec, plan, (merge_rows, merge_checksum), kept_rows, merged)


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


def _recorded(ctx: Context, step) -> tuple[int, int] | None:
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


def verify(ctx: Context, step, located: dict) -> list[str]:
    """The merged copies are what the merge stored. The chain, each link over the rows that moved:
    the archive holds the source's preflight rows (verify_phase, by checksum); at apply, in the
    transaction that archived it, every source row's JSON was proven stored in the target
    (insert_statement); now the stored copies are proven unchanged against that record. Without a
    record (an adopted merge) the archive is compared with the copies row by row."""
    action = step.action
    archived = ctx.plan.archive_name(action.source)
    if located.get(action.source) != archived:
        return [f"{action.source} should now be {archived}, found {located.get(action.source)}"]
    recorded = _recorded(ctx, step)
    if recorded is not None:
        merged = provenance_fingerprint(ctx.conn, action.target, action.source)
        if merged != recorded:
            return [
                f"{action.target}: {merged[0]} rows from {action.source} now, {recorded[0]} stored by the merge, "
                "or their content checksums differ"
            ]
        return []
    spec = ctx.plan.merge_targets[action.target]
    plan = mapping(action, spec, ctx.catalog.get(archived), ctx.catalog.get(action.target), ctx.catalog)
    key_match = target_key_match(spec, ctx.catalog.get(action.target), plan.fills)
    merged_now, kept = _merge_sets(ctx, archived, key_match, spec, plan.params)
    total = (merged_now[0] + kept[0], merged_now[1] + kept[1])
    merged = provenance_fingerprint(ctx.conn, action.target, action.source)
    if (merged[0] + kept[0], merged[1] + kept[1]) != total:
        return [
            f"{action.target}: {merged[0]} rows from {action.source} + {kept[0]} kept by key != {total[0]} rows in "
            f"{archived}, or their content checksums differ"
        ]
    return []


def applied_target(conn, step) -> str | None:
    """The target the step's last apply wrote into, as its ledger row names it (None: no apply). A
    revert takes the copies out of that table even when the decisions point the step elsewhere now."""
    if step.kind != "MERGE":
        return None
    row = conn.execute(
        "SELECT target FROM ple_ops.action_ledger WHERE step_id = %s AND action = 'MERGE' AND outcome = 'applied' "
        "AND mode = 'apply' ORDER BY attempt_id DESC LIMIT 1",
        (step.step_id,),
    ).fetchone()
    return row[0] if row else step.action.target


def revert(ctx: Context, step) -> Outcome:
    """Put the source back and take out of the target the copies that are still exactly what the
    merge wrote (the originals are the source). A copy changed since is kept, and reported. The
    target is the one the merge wrote into (its ledger row), whatever the decisions say now."""
    action = dataclasses.replace(step.action, target=applied_target(ctx.conn, step))
    step = dataclasses.replace(step, actions=(action,))
    archived = ctx.plan.archive_name(action.source)
    if relocate.check(ctx.catalog, archived, action.source) != State.PENDING:
        return _unfinished_copies(ctx, step)
    stable_text(ctx.conn)
    target = ctx.catalog.get(action.target)
    removed = remove_unchanged_copies(ctx, action)
    kept = [
        r[0]
        for r in ctx.conn.execute(
            sql.SQL("SELECT ctb_source_key FROM {} WHERE ctb_source_table = %s ORDER BY 1").format(
                qualified(action.target)
            ),
            (action.source,),
        )
    ]
    _forget_removed_copies(ctx, action, target)
    relocate.apply(ctx.conn, ctx.catalog, archived, action.source)
    details = {"copies_removed_from_target": removed, "changed_copies_kept_in_target": len(kept)}
    notes = []
    if kept:
        details["kept_keys"] = kept[:100]
        notes.append(
            f"{len(kept)} rows merged from {action.source} into {action.target} were changed since the merge (a value "
            "in a column added since counts), or rows of the application refer to them: "
            f"they stay in {action.target} (ctb_source_table = {action.source!r}); the originals are back in "
            f"{action.source}. Keys: {', '.join(kept[:10])}{' ...' if len(kept) > 10 else ''}"
        )
    return Outcome(step, "reverted", details=details, notes=notes)


def _unfinished_copies(ctx: Context, step) -> Outcome:
    """The source was never archived: nothing to put back, but a batched merge that stopped half way
    (merge_batches.py) left the copies of its committed batches in the target. Those still exactly
    what it wrote are removed (the source still holds every row); a copy changed since stays."""
    action = step.action
    target = ctx.catalog.get(action.target)
    if ctx.catalog.get(action.source) is None or target is None or target.column("ctb_source_table") is None:
        return Outcome(step, "already_done")
    stable_text(ctx.conn)
    removed = remove_unchanged_copies(ctx, action)
    if not removed:
        return Outcome(step, "already_done")
    _forget_removed_copies(ctx, action, target)
    return Outcome(
        step,
        "reverted",
        details={"copies_of_an_unfinished_merge_removed": removed},
        notes=[f"{removed} copies an unfinished merge wrote into {action.target} removed; {action.source} holds them"],
    )


def _forget_removed_copies(ctx: Context, action: Action, target: TableInfo) -> None:
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


def _stale_message(action: Action, keys: list[str]) -> str:
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


def lint(ctx: Context, step) -> list:
    """Lossy casts, and keys the target would receive twice from this source (a keyless source
    with duplicate keys passes every other check, then fails half way with a key violation)."""
    action = step.action
    spec = ctx.plan.merge_targets.get(action.target)
    source, target = ctx.catalog.get(action.source), ctx.catalog.get(action.target)
    if spec is None or source is None or target is None:
        return []
    plan = mapping(action, spec, source, target, ctx.catalog)
    findings = relocate.lint(ctx, step) + _cast_findings(ctx, step)
    stale = stale_copies(ctx, action)
    if stale:
        findings.append(Finding("kept-copies", step.step_id, _stale_message(action, stale)))
    key_match = target_key_match(spec, target, plan.fills)
    if key_match is None:
        return findings
    by_column = {f.column: f.expression for f in plan.fills}
    keys = [by_column[c] for c in target.primary_key]
    new_rows = sql.SQL("")
    if spec.on_key_conflict == "keep_target":
        new_rows = sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})").format(
            qualified(action.target), key_match
        )
    with ctx.conn.transaction():  # a savepoint: a query that fails here must not end the lint
        keys_twice, rows = ctx.conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM "
                "{keyed} {new_rows} "
                "GROUP BY {keys} HAVING count(*) > 1) AS d"
            ).format(
                keyed=keyed_source(source, json=False, key=key_reads_row(target, plan.fills)),
                new_rows=new_rows,
                keys=sql.SQL(", ").join(keys),
            ),
            plan.params,
        ).fetchone()
    if keys_twice:
        findings.append(
            Finding(
                "duplicate-source-key",
                step.step_id,
                f"{rows} rows of {action.source} share {keys_twice} values of {action.target}'s primary key "
                f"{target.primary_key} among themselves: the INSERT would fail half way. Resolve the duplicates "
                "in the source (or merge into a target keyed otherwise); nothing was written",
            )
        )
    return findings


def _cast_findings(ctx: Context, step) -> list:
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
