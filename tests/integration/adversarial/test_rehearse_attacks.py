"""Adversarial: a rehearsal on the target itself promises to hold the target's locks for at most
its budget (`rehearse_budget_seconds`), and to leave nothing behind."""

import time

import psycopg
import pytest

from tests.integration.adversarial.workload import TARGET, Application
from tests.reorg_helpers import end_state, executor


def test_a_rehearsal_on_the_target_keeps_to_its_lock_budget_with_a_batched_merge(synced, fresh_db):
    conn = synced
    state = end_state(conn)
    budget = 1.0
    with Application(fresh_db) as application:
        started = time.monotonic()
        report = executor(conn, mode="rehearse", backfill_batch_pages=2, rehearse_budget_seconds=budget).preflight("1b")
        held = time.monotonic() - started
    after = end_state(conn)
    assert after[TARGET][1] == state[TARGET][1] + application.written
    written = (TARGET, "public.error_master")  # the application's rows, fanned out by its sync trigger
    assert after["public.error_master"][1] == state["public.error_master"][1] + application.written
    changed = {k for k in after.keys() | state.keys() if k not in written and after.get(k) != state.get(k)}
    assert not changed, f"the rehearsal left these tables changed: {sorted(changed)}"
    assert (
        conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'sync_people_errors' AND tgenabled = 'O'"
        ).fetchone()[0]
        == 1
    )
    assert application.errors == [] and application.written > 0
    assert application.refused == 0 and held < budget + 2, (
        f"a rehearsal with a {budget:g} s lock budget ran {held:.1f} s on the target ({report.status}); the "
        f"application's INSERT into {TARGET} (lock_timeout 2 s) was refused {application.refused} times"
    )


def test_the_target_under_another_host_name_is_not_taken_for_a_copy(conn, fresh_db, monkeypatch):
    params = psycopg.conninfo.conninfo_to_dict(fresh_db)
    assert params["host"] == "127.0.0.1"
    password = f":{params['password']}" if params.get("password") else ""
    alias = f"postgresql://{params['user']}{password}@localhost:{params['port']}/{params['dbname']}"
    monkeypatch.setenv("AIRFLOW_CONN_CTB_ALIAS", alias)
    report = executor(conn, mode="rehearse", rehearse_conn_id="ctb_alias", rehearse_budget_seconds=0.001).preflight(
        "1b"
    )
    assert report.status == "incomplete" and "the target is not touched" not in report.text, (
        f"connection ctb_alias is the target itself under the host name localhost; the rehearsal ran on it with "
        f"no lock budget ({report.status}): {report.text.splitlines()[0]}"
    )


def _sequences(conn) -> dict:
    return dict(conn.execute("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences").fetchall())


SEQUENCE_GAP = pytest.mark.xfail(
    strict=True,
    reason="nextval is not transactional: a rehearsal that inserts into a target with a serial key "
    "(outreach.pipeline_audit_log.log_id) leaves its sequence advanced by every rehearsed row after the "
    "rollback (documented in README, Rehearse: the one trace a rehearsal leaves)",
)


@pytest.mark.parametrize("phase", ["1b", pytest.param("1d", marks=SEQUENCE_GAP)])
def test_a_rehearsal_leaves_no_sequence_advanced(conn, phase):
    state, sequences = end_state(conn), _sequences(conn)
    report = executor(conn, mode="rehearse").preflight(phase)
    assert report.status == "rehearsed", report.text
    assert end_state(conn) == state
    moved = {k: (v, _sequences(conn).get(k)) for k, v in sequences.items() if _sequences(conn).get(k) != v}
    assert not moved, f"the rehearsal of {phase} rolled back, but these sequences stay advanced: {moved}"
