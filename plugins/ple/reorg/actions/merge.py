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

from ple.errors import PlanRejected, VerificationFailed
from ple.reorg.actions import merge_batches, merge_sql, relocate
from ple.reorg.context import Context, Outcome, State
from ple.reorg.findings import Finding
from ple.reorg.merge_mapping import (
    key_reads_row,
    keyed_source,
    mapping,
    target_key_match,
)
from ple.reorg.proof import provenance_fingerprint, stable_text
from ple.sqlutil import qualified

# The action contract's check and statements are the MERGE's own statements (merge_sql.py).
check = merge_sql.check
statements = merge_sql.statements


def preview(ctx: Context, step) -> dict:
    action = step.action
    spec, _, _ = merge_sql.tables(ctx, action)
    _, plan, key_match = merge_sql.insert_statement(ctx, action)
    reads_row = key_reads_row(ctx.catalog.get(action.target), plan.fills)
    (merged, _), (kept, _) = merge_sql.merge_sets(
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
    return not merge_batches.batched(ctx, step)


def apply(ctx: Context, step) -> Outcome:
    stale = merge_sql.stale_copies(ctx, step.action)
    if stale:
        raise PlanRejected(merge_sql.stale_message(step.action, stale))
    if not transactional(ctx, step):
        return merge_batches.apply(ctx, step)
    action = step.action
    spec, _, _ = merge_sql.tables(ctx, action)
    lock, insert, *_archive = merge_sql.statements(ctx, step)
    ctx.execute(lock)
    stable_text(ctx.conn)
    refusals = merge_sql.cast_findings(ctx, step)  # the rest of the lint ran in the preflight
    if refusals:
        raise PlanRejected("; ".join(f.message for f in refusals))
    _, plan, _ = merge_sql.insert_statement(ctx, action)
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
    return merge_sql.applied(ctx, step, spec, plan, (merge_rows, merge_checksum), kept_rows, merged)


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
    recorded = merge_sql.recorded(ctx, step)
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
    merged_now, kept = merge_sql.merge_sets(ctx, archived, key_match, spec, plan.params)
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
    removed = merge_sql.remove_unchanged_copies(ctx, action)
    kept = [
        r[0]
        for r in ctx.conn.execute(
            sql.SQL("SELECT ctb_source_key FROM {} WHERE ctb_source_table = %s ORDER BY 1").format(
                qualified(action.target)
            ),
            (action.source,),
        )
    ]
    merge_sql.forget_removed_copies(ctx, action, target)
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
    removed = merge_sql.remove_unchanged_copies(ctx, action)
    if not removed:
        return Outcome(step, "already_done")
    merge_sql.forget_removed_copies(ctx, action, target)
    return Outcome(
        step,
        "reverted",
        details={"copies_of_an_unfinished_merge_removed": removed},
        notes=[f"{removed} copies an unfinished merge wrote into {action.target} removed; {action.source} holds them"],
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
    findings = relocate.lint(ctx, step) + merge_sql.cast_findings(ctx, step)
    stale = merge_sql.stale_copies(ctx, action)
    if stale:
        findings.append(Finding("kept-copies", step.step_id, merge_sql.stale_message(action, stale)))
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


def revert_blockers(ctx: Context, step) -> list[str]:
    """Its revert removes only copies still exactly as the merge wrote them, and keeps any a row
    refers to (merge_sql.remove_unchanged_copies): nothing others built on is dropped."""
    return []
