"""A merge that must bypass a trigger on its live target copies in batches, each its own short
transaction: application writes to the target are never held up for the whole merge, and no row is
doubled or lost, also when a run dies half way or the source changes between batches."""

import threading
import time

import psycopg
import pytest

from ple.catalog import read_catalog
from ple.reorg import decisions
from ple.reorg.actions import merge_batches
from tests.reorg_helpers import approve, approve_revert, batched_merge_setting, count, executor

SOURCE = "marketing.failed_email_verification"
TARGET = "people.people_errors"
STEP = "1b__merge__marketing_failed_email_verification"


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


@pytest.fixture
def synced(conn):
    return batched_merge_setting(conn)


def _rest_of_phase_then_verify(ex) -> None:
    for step in ex.declared.phase("1b").steps:
        ex.run_step(step.step_id)
    assert ex.verify("1b").status == "applied"


def _provenance(conn) -> tuple[int, int]:
    return conn.execute(
        f"SELECT count(*), count(DISTINCT ctb_source_key) FROM {TARGET} WHERE ctb_source_table = %s", (SOURCE,)
    ).fetchone()


def test_the_target_stays_writable_during_a_batched_merge_and_no_row_is_doubled_or_lost(synced, fresh_db):
    conn = synced
    rows = count(conn, SOURCE)
    approve(conn)
    ex = executor(conn, backfill_batch_pages=2)
    ex.preflight("1b")
    written, refused, stop = [], [], threading.Event()

    def application():
        with psycopg.connect(fresh_db, autocommit=True) as app:
            app.execute("SET lock_timeout = '2s'")
            while not stop.is_set():
                try:
                    app.execute(
                        f"INSERT INTO {TARGET} SELECT (jsonb_populate_record(p, jsonb_build_object("
                        f"'error_id', gen_random_uuid()))).* FROM {TARGET} AS p WHERE p.ctb_source_table IS NULL LIMIT 1"
                    )
                    written.append(1)
                except psycopg.errors.LockNotAvailable:
                    refused.append(1)
                time.sleep(0.05)

    writer = threading.Thread(target=application)
    writer.start()
    try:
        report = ex.run_step(STEP)
    finally:
        stop.set()
        writer.join()
    assert report.status == "applied", report.text
    assert "batches" in report.text
    assert refused == []  # never held up longer than its lock timeout
    assert written
    assert _provenance(conn) == (rows, rows)  # every source row once
    assert count(conn, "archive.marketing_failed_email_verification_ctb") == rows
    assert count(conn, "public.error_master") == len(written)  # merged rows not fanned out, the application's are
    assert conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'sync_people_errors'").fetchone()[0] == "O"
    _rest_of_phase_then_verify(ex)


def _preflight_in_small_batches(conn):
    """Approved, 1b preflighted, two pages a batch: the executor and a step context that bypasses
    the target's sync trigger, as the guards decide for this target."""
    approve(conn)
    ex = executor(conn, backfill_batch_pages=2)
    ex.preflight("1b")
    ctx = ex.context(read_catalog(conn))
    ctx.bypass = ((TARGET, "sync_people_errors"),)
    return ex, ctx


def test_a_batched_merge_that_died_half_way_resumes_and_catches_up_with_the_source(synced):
    conn = synced
    ex, ctx = _preflight_in_small_batches(conn)
    # a first run copied two batches, then died
    assert merge_batches.batched(ctx, ex.resolve(STEP).step)
    copied = merge_batches.copy_batch(ctx, ex.resolve(STEP).step, 0, 2)
    copied += merge_batches.copy_batch(ctx, ex.resolve(STEP).step, 2, 4)
    assert copied > 0
    # the application changed and deleted source rows that were copied already, and added one
    conn.execute(
        f"UPDATE {SOURCE} SET full_name = full_name || ' (edited)' WHERE id IN (SELECT id FROM {SOURCE} ORDER BY ctid LIMIT 3)"
    )
    conn.execute(f"DELETE FROM {SOURCE} WHERE id IN (SELECT id FROM {SOURCE} ORDER BY ctid OFFSET 5 LIMIT 2)")
    rows = count(conn, SOURCE)
    report = ex.run_step(STEP)
    assert report.status == "applied", report.text
    assert "stale_copies_replaced" in report.text
    assert _provenance(conn) == (rows, rows)
    edited = conn.execute(
        f"SELECT count(*) FROM {TARGET} WHERE ctb_source_table = %s AND ctb_source_row ->> 'full_name' LIKE '%%(edited)'",
        (SOURCE,),
    ).fetchone()[0]
    assert edited == 3
    assert count(conn, "public.error_master") == 0
    # (the phase's verify would report the source's rows changed since its preflight snapshot, as it
    # does for a one-transaction merge: the step's own proof is against the source as it was archived)


def test_a_batched_merge_killed_right_after_its_last_transaction_is_done_with_evidence(synced):
    conn = synced
    ex, ctx = _preflight_in_small_batches(conn)
    merge_batches.apply(ctx, ex.resolve(STEP).step)  # killed before the executor's own record
    rows = count(conn, "archive.marketing_failed_email_verification_ctb")
    assert ex.run_step(STEP).status == "already_done"
    assert _provenance(conn) == (rows, rows)


def test_reverting_a_batched_merge_that_died_half_way_takes_its_copies_out_again(synced):
    conn = synced
    rows = count(conn, SOURCE)
    ex, ctx = _preflight_in_small_batches(conn)
    native = conn.execute(f"SELECT count(*) FROM {TARGET} WHERE ctb_source_table IS NULL").fetchone()[0]
    copied = merge_batches.copy_batch(ctx, ex.resolve(STEP).step, 0, 2)
    copied += merge_batches.copy_batch(ctx, ex.resolve(STEP).step, 2, 4)
    assert copied > 0 and _provenance(conn)[0] == copied
    # the application edits one of the copies: that copy is no longer only the tool's
    conn.execute(
        f"UPDATE {TARGET} SET error_message = 'edited by the application' WHERE ctid = "
        f"(SELECT ctid FROM {TARGET} WHERE ctb_source_table = %s LIMIT 1)",
        (SOURCE,),
    )
    approve_revert(conn, "1b")
    reports = executor(conn).revert_phase("1b")
    step = next(r for r in reports if r.step_id == STEP)
    assert step.status == "reverted", step.text
    assert f"{copied - 1} copies an unfinished merge wrote" in step.text
    assert _provenance(conn) == (1, 1)  # the edited copy stays, reported
    assert count(conn, SOURCE) == rows  # the source never moved and holds every row
    assert conn.execute(f"SELECT count(*) FROM {TARGET} WHERE ctb_source_table IS NULL").fetchone()[0] == native
    assert conn.execute("SELECT count(*) FROM ple_ops.merged_row WHERE source_table = %s", (SOURCE,)).fetchone()[0] == 1
    again = executor(conn).revert_phase("1b")
    assert next(r for r in again if r.step_id == STEP).status == "already_done"
