"""Adversarial: the batched merge (a trigger on the live target bypassed batch by batch).

Its promise: the target is never locked for the whole merge, so an application writing to it with a
2 s lock timeout is never refused; no row is doubled or lost whatever happens between batches."""

import threading

import psycopg

from ple.reorg.actions import merge_batches
from tests.integration.adversarial.workload import SOURCE, TARGET, Application
from tests.reorg_helpers import approve, count, executor

STEP = "1b__merge__marketing_failed_email_verification"


def test_one_source_edit_between_batches_does_not_lock_the_target_for_a_whole_pass(synced, fresh_db, monkeypatch):
    conn = synced
    rows = count(conn, SOURCE)
    approve(conn)
    ex = executor(conn, backfill_batch_pages=2)
    ex.preflight("1b")
    real_copy_batch, edited = merge_batches.copy_batch, []

    def copy_batch_then_the_application_edits_one_source_row(ctx, step, first, last):
        copied = real_copy_batch(ctx, step, first, last)
        if not edited:  # the live source takes one ordinary write while the batches run
            with psycopg.connect(fresh_db, autocommit=True) as app:
                app.execute(
                    f"UPDATE {SOURCE} SET full_name = full_name || ' (edited)' WHERE id = (SELECT min(id) FROM {SOURCE})"
                )
            edited.append(1)
        return copied

    monkeypatch.setattr(merge_batches, "copy_batch", copy_batch_then_the_application_edits_one_source_row)
    with Application(fresh_db) as application:
        report = ex.run_step(STEP)
    assert report.status == "applied", report.text
    assert count(conn, "archive.marketing_failed_email_verification_ctb") == rows
    assert application.refused == 0, (
        f"the application's INSERT into {TARGET} was refused {application.refused} times (waited > 2 s; "
        f"{application.written} went through): after ONE source row changed between batches, the last "
        f"transaction re-ran the whole-source INSERT with the target's trigger disabled. Report: {report.text}"
    )


def _provenance(conn) -> tuple[int, int]:
    return conn.execute(
        f"SELECT count(*), count(DISTINCT ctb_source_key) FROM {TARGET} WHERE ctb_source_table = %s", (SOURCE,)
    ).fetchone()


def test_two_processes_running_the_same_batched_merge_at_once_double_nothing(synced, fresh_db):
    conn = synced
    conn.execute(f"DROP TRIGGER slow_row ON {TARGET}")  # only the race matters here, not the duration
    rows = count(conn, SOURCE)
    approve(conn)
    executor(conn, backfill_batch_pages=2).preflight("1b")
    results, start = {}, threading.Barrier(2)

    def process(name):
        with psycopg.connect(fresh_db, autocommit=True) as own:
            ex = executor(own, backfill_batch_pages=2)
            start.wait()
            try:
                results[name] = ex.run_step(STEP).status
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {str(exc)[:300]}"

    threads = [threading.Thread(target=process, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _provenance(conn) == (rows, rows), results
    assert count(conn, "archive.marketing_failed_email_verification_ctb") == rows
    assert sorted(results.values()) == ["already_done", "applied"], results
    assert count(conn, "public.error_master") == 0


def test_revert_of_a_batched_merge_abandoned_between_batches_leaves_no_row_in_two_places(synced):
    from tests.reorg_helpers import approve_revert

    conn = synced
    approve(conn)
    ex = executor(conn, backfill_batch_pages=2)
    ex.preflight("1b")
    from ple.catalog import read_catalog

    ctx = ex.context(read_catalog(conn))
    ctx.bypass = ((TARGET, "sync_people_errors"),)
    step = ex.resolve(STEP).step
    copied = merge_batches.copy_batch(ctx, step, 0, 2) + merge_batches.copy_batch(ctx, step, 2, 4)
    assert copied > 0  # then the run died; the operator gives up on the phase and reverts it
    approve_revert(conn, "1b")
    status = ex.revert_phase("1b")[-1].status
    in_both = conn.execute(
        f"SELECT count(*) FROM {TARGET} AS t JOIN {SOURCE} AS s ON t.ctb_source_key = s.id::text "
        "WHERE t.ctb_source_table = %s",
        (SOURCE,),
    ).fetchone()[0]
    assert in_both == 0, (
        f"revert of 1b reported {status!r}; {in_both} rows of {SOURCE} (live again) also stay as unchanged copies "
        f"in {TARGET}"
    )
