"""MERGE in batches: when a merge must bypass a trigger on its live target.

Disabling a trigger (`ALTER TABLE ... DISABLE TRIGGER`, transactional, so no other session sees it
off) takes SHARE ROW EXCLUSIVE on the target until the transaction ends: in the one-transaction
merge, every application write to the target would wait for the whole merge. So when the guards
bypass a trigger on the target and the source (with a primary key) spans more pages than one batch
(`backfill_batch_pages`), the merge copies it in batches of pages, each its own short transaction
under the advisory lock and the approval re-check: disable the trigger, insert the batch, enable
it again in its own firing mode, commit. Each batch records the hashes of what it wrote
(ple_ops.merged_row) like the one-transaction merge.

Idempotent and resumable: the partial unique index on (ctb_source_table, ctb_source_key) turns a
row copied before into a no-op (ON CONFLICT DO NOTHING), so a run killed after any batch goes on
and never doubles a row. The last transaction locks the source against writes and proves the
copies (provenance checksum = the source's rows now) before it archives the source; only if the
source changed between batches does it touch the target again (trigger bypassed): copies of rows
changed or deleted since are removed while they are still what the merge wrote, and the missing
rows copied; then the same proof. A copy the application edited in the meantime is never removed:
the proof fails, nothing of that transaction stays, and the message says which rows.

The last transaction also writes the step's ledger row, so the archive and its evidence commit
together: a run killed right after it finds the step done, with the ledger to prove it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from ple.catalog import read_catalog
from ple.db import transaction, with_lock_retry
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg import compat, ledger
from ple.reorg.actions import merge_sql, relocate
from ple.reorg.context import Context, Outcome, State
from ple.reorg.proof import provenance_fingerprint, stable_text
from ple.sqlutil import qualified


def batched(ctx: Context, step) -> bool:
    """Batches only where they pay: a trigger on the live target is bypassed, the source has a
    primary key (a keyless source's keys number identical rows across the whole table), and it
    spans more than one batch of pages."""
    action = step.action
    source = ctx.catalog.get(action.source) if ctx.catalog else None
    if source is None or not source.primary_key or not any(t == action.target for t, _ in ctx.bypass):
        return False
    return _pages(ctx, action.source) > ctx.settings.backfill_batch_pages


def _pages(ctx: Context, table: str) -> int:
    return ctx.conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (table,)
    ).fetchone()[0]


def _in_transaction(ctx: Context, work):
    def attempt():
        with transaction(
            ctx.conn, lock_timeout=ctx.settings.lock_timeout, statement_timeout=ctx.settings.statement_timeout
        ):
            ctx.hold()
            stable_text(ctx.conn)
            return work()

    return with_lock_retry(attempt, attempts=ctx.settings.lock_retries)


def copy_batch(ctx: Context, step, first_page: int, last_page: int) -> int:
    """One batch in its own transaction: the rows of source pages [first, last) not copied yet."""

    def work() -> int:
        source_is_a_table = ctx.conn.execute(
            "SELECT coalesce((SELECT relkind IN ('r', 'p') FROM pg_class WHERE oid = to_regclass(%s)), false)",
            (step.action.source,),
        ).fetchone()[0]
        if not source_is_a_table:
            return 0  # archived meanwhile (a compatibility view may stand at its name): the merge is done
        pages = sql.SQL(
            "WHERE s.ctid >= format('(%%s,0)', %(first_page)s::bigint)::tid "
            "AND s.ctid < format('(%%s,0)', %(last_page)s::bigint)::tid"
        )
        insert, _, _ = merge_sql.insert_statement(ctx, step.action, rows=pages)
        with ctx.bypassing_triggers():
            # the statement's one row: (to merge, checksum, kept, inserted, stored checksum, recorded)
            return ctx.conn.execute(
                insert.query, {**insert.params, "first_page": first_page, "last_page": last_page}
            ).fetchone()[3]

    return _in_transaction(ctx, work)


def apply(ctx: Context, step) -> Outcome:
    started = datetime.now(UTC)
    action = step.action
    batch = ctx.settings.backfill_batch_pages
    pages = _pages(ctx, action.source)
    copied = batches = 0
    for first in range(0, pages + 1, batch):
        copied += copy_batch(ctx, step, first, first + batch)
        batches += 1
    batching = {"batches": batches, "pages_per_batch": batch, "rows_copied_in_batches": copied}
    return _in_transaction(ctx, lambda: _finish_unfrozen(ctx, step, started, batching))


def _finish_unfrozen(ctx: Context, step, started: datetime, batching: dict) -> Outcome:
    """_finish with the frozen source a person let the step alter unfrozen for the whole last
    transaction (its rename into the archive is an ALTER the owner's gate judges), frozen again
    under its archive name before it commits."""
    with ctx.unfrozen():
        return _finish(ctx, step, started, batching)


def _finish(ctx: Context, step, started: datetime, batching: dict) -> Outcome:
    """Source locked against writes; catch up with what changed since the batches (trigger
    bypassed only then); prove; archive the source."""
    ctx.catalog = read_catalog(ctx.conn)
    action = step.action
    if merge_sql.check(ctx, step) == State.DONE:
        return Outcome(step, "already_done")
    spec, _, _ = merge_sql.tables(ctx, action)
    lock, _insert, *_archive = merge_sql.statements(ctx, step)
    ctx.execute(lock)
    refusals = merge_sql.cast_findings(ctx, step)
    if refusals:
        raise PlanRejected("; ".join(f.message for f in refusals))
    _, plan, key_match = merge_sql.insert_statement(ctx, action)
    (merge_rows, merge_checksum), (kept_rows, _) = merge_sql.merge_sets(
        ctx, action.source, key_match, spec, plan.params
    )
    if kept_rows and spec.on_key_conflict != "keep_target":
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: {kept_rows} rows collide with the target's primary key"
        )
    caught_up = {}
    if provenance_fingerprint(ctx.conn, action.target, action.source) != (merge_rows, merge_checksum):
        # only the rows without a copy: a pass over every source row would fire the target's row
        # triggers for each (before ON CONFLICT skips it) while the bypass holds the target locked
        missing, _, _ = merge_sql.insert_statement(
            ctx,
            action,
            rows=sql.SQL(
                "WHERE NOT EXISTS (SELECT 1 FROM {} AS c WHERE c.ctb_source_table = %(source_table)s "
                "AND c.ctb_source_key = {})"
            ).format(qualified(action.target), merge_sql.source_key(ctx.catalog.get(action.source))),
        )
        with ctx.bypassing_triggers(unfreeze=False):
            caught_up["stale_copies_replaced"] = merge_sql.remove_unchanged_copies(
                ctx, action, unless_current_in_source=True
            )
            caught_up["rows_copied_at_the_end"] = ctx.execute(missing).fetchone()[3]
    merged = provenance_fingerprint(ctx.conn, action.target, action.source)
    if merged != (merge_rows, merge_checksum):
        raise VerificationFailed(
            f"MERGE {action.source} -> {action.target} (in batches): provenance {merged}, expected {merge_rows} "
            f"rows with checksum {merge_checksum}: copies the application edited in {action.target} while the "
            "source changed; nothing of this transaction stays, the batches' copies are marked by ctb_source_table"
        )
    relocate.apply(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source))
    made = compat.expand(ctx, step)
    outcome = merge_sql.applied(
        ctx,
        step,
        spec,
        plan,
        (merge_rows, merge_checksum),
        kept_rows,
        merged,
        path="batches (a trigger on the live target is bypassed batch by batch)",
        **batching,
        **caught_up,
    )
    if made:
        outcome.details = outcome.details | {"compat_views": made}
    ledger.record(
        ctx.conn,
        run_id=ctx.run_id,
        phase=step.phase,
        step_id=step.step_id,
        action=step.kind,
        mode="apply",
        plan_sha256=ctx.plan.sha256,
        started_at=started,
        duration_ms=int((datetime.now(UTC) - started).total_seconds() * 1000),
        outcome="applied",
        sources=[action.source],
        target=step.target,
        rows_before=outcome.rows_before,
        rows_after=outcome.rows_after,
        checksums_before=outcome.checksums_before,
        checksums_after=outcome.checksums_after,
        details=outcome.details,
    )
    return outcome
