"""Rehearse without holding production: on a second connection (a copy of the target, as a Neon
branch is), and on the target itself within a lock budget."""

import threading

import psycopg
import pytest

from ple import embedded_pg
from ple.reorg import decisions
from tests.helpers import clone_fixture
from tests.reorg_helpers import end_state, executor

PHASE_1B = [
    "1b__merge__marketing_failed_company_match",
    "1b__merge__marketing_failed_email_verification",
    "1b__merge__marketing_failed_low_confidence",
    "1b__merge__marketing_failed_no_pattern",
    "1b__merge__marketing_failed_slot_assignment",
]


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


@pytest.fixture
def branch(pg_server, fixture_template, monkeypatch):
    """A copy of the target under the Airflow connection id `ctb_branch` (what a Neon branch is)."""
    dsn = clone_fixture(pg_server)
    monkeypatch.setenv("AIRFLOW_CONN_CTB_BRANCH", dsn)
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection
    embedded_pg.drop_database(pg_server, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


def _hold_lock(dsn: str, table: str, taken: threading.Event, release: threading.Event) -> None:
    """An application transaction that keeps `table` locked until told to stop."""
    with psycopg.connect(dsn) as other:
        other.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        taken.set()
        release.wait(60)
        other.rollback()


def test_rehearse_on_a_second_connection_never_touches_the_target(conn, fresh_db, branch):
    branch.execute("ALTER TABLE people.people_errors ADD COLUMN checked_at timestamptz DEFAULT now()")
    branch.execute(  # reads a column the merge leaves to its default: only a rehearsal evaluates it
        "ALTER TABLE people.people_errors ADD CONSTRAINT short_error_type "
        "CHECK (checked_at IS NULL OR length(error_type) < 20) NOT VALID"
    )
    target_state, branch_state = end_state(conn), end_state(branch)
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(fresh_db, "people.people_errors", taken, release))
    holder.start()
    try:
        assert taken.wait(10)
        # the target's merge target is locked by the application the whole time: a rehearsal on the
        # target could not even start; on the branch it runs to the end
        report = executor(conn, mode="rehearse", rehearse_conn_id="ctb_branch", lock_retries=1).preflight("1b")
    finally:
        release.set()
        holder.join()
    assert "on connection ctb_branch" in report.text and "the target is not touched" in report.text
    assert report.status == "failed"  # the branch's CHECK, which the target does not have, shows up
    assert "1b__merge__marketing_failed_email_verification: FAILS in rehearsal" in report.text
    assert "short_error_type" in report.text
    assert end_state(conn) == target_state
    assert end_state(branch) == branch_state
    assert conn.execute("SELECT to_regnamespace('ple_ops') IS NULL").fetchone()[0]


def test_rehearse_on_the_target_with_the_connection_of_the_target_keeps_the_budget(conn, monkeypatch, fresh_db):
    monkeypatch.setenv("AIRFLOW_CONN_CTB_SAME", fresh_db)
    report = executor(conn, mode="rehearse", rehearse_conn_id="ctb_same", rehearse_budget_seconds=0.001).preflight("1b")
    assert report.status == "incomplete"
    assert "connection ctb_same is the target" in report.text


def test_a_spent_lock_budget_rolls_back_and_names_what_was_not_rehearsed(conn):
    state = end_state(conn)
    report = executor(conn, mode="rehearse", rehearse_budget_seconds=0.001).preflight("1b")
    assert report.status == "incomplete", report.text
    assert report.summary["not_rehearsed"] == PHASE_1B
    assert "lock budget on the target (0.001 s, rehearse_budget_seconds) is spent" in report.text
    assert "rehearse_conn_id" in report.text  # the way to rehearse it all
    assert end_state(conn) == state
    assert conn.execute("SELECT to_regnamespace('ple_ops') IS NULL").fetchone()[0]


def test_a_step_that_outlasts_the_budget_is_cut_short_and_the_locks_are_released(conn, fresh_db):
    # only 1b's merge of marketing.failed_low_confidence writes into cl.cl_err_existence
    conn.execute(
        "CREATE FUNCTION public.slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(600); RETURN NEW; END $$"
    )
    state = end_state(conn)
    conn.execute(
        "CREATE TRIGGER slow_insert BEFORE INSERT ON cl.cl_err_existence FOR EACH ROW EXECUTE FUNCTION public.slow_insert()"
    )
    report = executor(conn, mode="rehearse", rehearse_budget_seconds=5).preflight("1b")
    assert report.status == "incomplete", report.text
    assert "1b__merge__marketing_failed_low_confidence: cut short, the lock budget is spent" in report.text
    not_rehearsed = report.summary["not_rehearsed"]
    assert not_rehearsed == PHASE_1B[PHASE_1B.index(not_rehearsed[0]) :]  # a tail of the phase, in order
    assert "1b__merge__marketing_failed_low_confidence" in not_rehearsed
    conn.execute("DROP TRIGGER slow_insert ON cl.cl_err_existence")
    assert end_state(conn) == state
    with psycopg.connect(fresh_db) as other:  # nothing of the rehearsal holds a lock any more
        other.execute("SET lock_timeout = '1s'")
        other.execute("LOCK TABLE cl.cl_err_existence, marketing.failed_low_confidence IN ACCESS EXCLUSIVE MODE")
