"""The engine on a live database: approval, read-only plan mode, killed backends, held locks,
bad plans, and the whole reorganization proving that no row was lost."""

import threading
import time

import psycopg
import pytest

from ple.errors import NotApproved, PlanRejected
from tests import rowcheck
from tests.reorg_helpers import (
    approve,
    assert_nothing_lost,
    connect,
    count,
    end_state,
    executor,
    plan_from,
    raw_plan,
    run_all,
    run_phase,
    table_fingerprints,
)


def test_apply_refuses_without_an_approval_and_writes_nothing(conn):
    state = end_state(conn)
    with pytest.raises(NotApproved, match="BLOCKED until approved"):
        executor(conn).preflight("1a")
    with pytest.raises(NotApproved):
        executor(conn).run_step("1a__archive__company_company_master")
    assert end_state(conn) == state


def test_editing_the_plan_voids_its_approval(conn):
    approve(conn)
    raw = raw_plan()
    raw["phases"][0]["title"] += " (edited)"
    with pytest.raises(NotApproved):
        executor(conn, plan=plan_from(raw)).preflight("1a")


def test_plan_mode_writes_nothing(conn):
    state = end_state(conn)
    reports = run_all(executor(conn, mode="plan"))
    assert {r.status for r in reports} == {"planned"}
    assert any("INSERT INTO" in r.text for r in reports)
    assert end_state(conn) == state
    assert conn.execute("SELECT to_regnamespace('ple_ops') IS NULL AND to_regnamespace('archive') IS NULL").fetchone()[
        0
    ]


def test_every_phase_loses_no_row_and_a_second_run_changes_nothing(conn):
    approve(conn)
    before = table_fingerprints(conn)
    rows_before = rowcheck.take(conn)
    reports = run_all(executor(conn))
    assert "failed" not in {r.status for r in reports}
    assert_nothing_lost(conn, before)
    assert rowcheck.missing(rows_before, conn) == []
    state = end_state(conn)
    again = run_all(executor(conn))
    steps = [r for r in again if r.step_id.split("__")[1] not in ("preflight", "verify", "freeze")]
    assert {r.status for r in steps} == {"already_done"}
    assert end_state(conn) == state
    frozen = conn.execute("SELECT count(*) FROM ple_ops.phase_status WHERE status = 'frozen'").fetchone()[0]
    assert frozen == 11
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM archive.company_company_master_ctb")


def _wait_until_blocked(watcher, pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watcher.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[
            0
        ]:
            return
        time.sleep(0.05)
    raise AssertionError("the action never blocked")


def test_a_backend_killed_mid_action_converges_to_the_clean_end_state(pg_server, fresh_db, conn):
    from tests.helpers import clone_fixture

    approve(conn)
    clean_dsn = clone_fixture(pg_server)
    with connect(clean_dsn) as clean:
        approve(clean)
        run_phase(executor(clean), "1b")
        clean_state = end_state(clean)

    ex_conn = connect(fresh_db)
    ex = executor(ex_conn, lock_timeout="30s")
    ex.preflight("1b")
    step = "1b__merge__marketing_failed_email_verification"
    with connect(fresh_db) as blocker, connect(fresh_db) as watcher:
        blocker.execute("BEGIN")
        blocker.execute(
            "SELECT count(*) FROM marketing.failed_email_verification"
        )  # ACCESS SHARE: the archive rename must wait
        errors = []
        worker = threading.Thread(target=lambda: _capture(errors, ex.run_step, step))
        worker.start()
        _wait_until_blocked(watcher, ex_conn.info.backend_pid)
        inserted_so_far = watcher.execute(
            "SELECT count(*) FROM people.people_errors WHERE ctb_source_table = 'marketing.failed_email_verification'"
        ).fetchone()[0]
        watcher.execute("SELECT pg_terminate_backend(%s)", (ex_conn.info.backend_pid,))
        worker.join(30)
        blocker.execute("ROLLBACK")
    assert errors and isinstance(errors[0], psycopg.Error)
    assert inserted_so_far == 0  # uncommitted inserts are invisible, and rolled back with the kill
    assert count(conn, "marketing.failed_email_verification") > 0
    run_phase(executor(conn), "1b")
    assert end_state(conn) == clean_state


def _capture(errors: list, function, *args):
    try:
        function(*args)
    except Exception as exc:
        errors.append(exc)


def test_a_held_lock_times_out_retries_and_never_blocks_others_longer_than_the_timeout(fresh_db, conn):
    approve(conn)
    ex = executor(connect(fresh_db), lock_timeout="200ms", lock_retries=12)
    ex.preflight("1h")
    table = "people.slot_quarantine_r0_002"
    reader_errors, reads = [], []
    stop = threading.Event()

    def reader():
        with connect(fresh_db) as reader_conn:
            reader_conn.execute("SET lock_timeout = '1s'")  # a production reader: fails if held up for 1 s
            while not stop.is_set():
                try:
                    reads.append(reader_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                except psycopg.errors.LockNotAvailable as exc:
                    reader_errors.append(exc)
                except psycopg.errors.UndefinedTable:
                    break  # archived: the reader's table moved
                time.sleep(0.02)

    with connect(fresh_db) as blocker:
        blocker.execute("BEGIN")
        blocker.execute(f"SELECT count(*) FROM {table}")
        readers = threading.Thread(target=reader)
        readers.start()
        outcome = []
        worker = threading.Thread(
            target=lambda: outcome.append(ex.run_step("1h__archive__people_slot_quarantine_r0_002"))
        )
        worker.start()
        time.sleep(1.5)  # several 200 ms lock timeouts and backoffs happen here
        blocker.execute("ROLLBACK")
        worker.join(60)
        stop.set()
        readers.join(10)
    assert outcome and outcome[0].status == "applied"
    assert reader_errors == []
    assert len(reads) > 5
    assert count(conn, "archive.people_slot_quarantine_ctb") == reads[0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda raw: raw["phases"][0]["actions"][0].update(source="company.no_such_table"),
            "company.no_such_table does not exist",
        ),
        (
            lambda raw: raw["phases"][0]["actions"][0].update(source="company.x; DROP TABLE people.people_master"),
            "does not match its schema",
        ),
        (lambda raw: raw["phases"][1]["actions"][3].update(value="failed_company_match"), "discriminator-collision"),
        (
            lambda raw: raw["phases"][1]["actions"][1].update(value="validation"),
            "already have error_type = 'validation'",
        ),
        (lambda raw: raw["phases"][6]["actions"][7]["join"].update(source="no_such_column"), "join columns missing"),
        (lambda raw: raw["phases"][0]["actions"].append(dict(raw["phases"][0]["actions"][0])), "claimed-twice"),
    ],
    ids=[
        "unknown-table",
        "identifier-carrying-sql",
        "colliding-discriminator",
        "discriminator-in-live-rows",
        "missing-join-key",
        "claimed-twice",
    ],
)
def test_bad_plans_are_rejected_before_any_write(conn, edit, message):
    raw = raw_plan()
    edit(raw)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match=message):
        plan = plan_from(raw)
        approve(conn, plan)
        ex = executor(conn, plan=plan)
        error = next(f for f in ex.lint().errors if message in f.message or message == f.code)
        ex.preflight(error.where.split("__")[0] if "__" in error.where else "1a")  # the phase the error is in
    assert end_state(conn) == state
