"""The approval gate of the 2C cleanup and of the revert, through `airflow dags test`: an apply
asks in Required Actions with the counts and the SQL, the answer comes through Airflow's REST API
as a logged-in user; approve -> the data changes, reject -> nothing changes, an approval recorded
before for the same fingerprint -> no question. Run notes name each run's mode."""

import psycopg
import pytest

from ple import approval, cleanup
from ple.cli import main as cli
from ple.reorg.plan import load
from ple.reorg.revert import revert_fingerprint
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag
from tests.reorg_helpers import end_state

pytestmark = pytest.mark.slow

CLEANUP = "ctb_phase_2c_data_quality"
DUPLICATE_EMAILS = "SELECT count(*) FROM (SELECT email FROM people.people_master WHERE email <> '' GROUP BY email HAVING count(*) > 1) d"


def _approvals(conn, subject, verdict="approve"):
    """Approvals (or rejections) of `subject`."""
    if not conn.execute("SELECT to_regclass('ple_ops.approval') IS NOT NULL").fetchone()[0]:
        return []
    return conn.execute(
        "SELECT approver, approved_via, details FROM ple_ops.approval WHERE subject = %s AND verdict = %s "
        "ORDER BY approval_id",
        (subject, verdict),
    ).fetchall()


# ------------------------------------------------------------------------------ 2C cleanup
def test_cleanup_asks_with_counts_and_sql_records_what_the_cli_records_and_applies(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        shown = cleanup.preview(conn)
        assert conn.execute(DUPLICATE_EMAILS).fetchone()[0] > 0
    output, request, answers = airflow_api.run_answered(
        airflow_env,
        fresh_db,
        CLEANUP,
        {"mode": "apply"},
        [["viewer", "viewer", "Approve"], ["ada", "admin", "Approve"]],
    )
    assert [a["status"] for a in answers] == [403, 200], answers
    assert request["task_id"] == "approve"
    body = request["body"]
    assert f"Fingerprint `{shown.fingerprint.sha256}`" in body
    for part in ("| definition |", "| counts |", cleanup.definition_sha256(), "WITH locked AS", "DELETE FROM"):
        assert part in body, part
    dedupe = shown.results["dedupe_emails"]
    assert f"dedupe_emails: would touch {dedupe.rows_touched:,} rows" in body
    assert dag_run_state(output) == "success", output[-4000:]
    assert "APPROVED cleanup" in output and "by ada at" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ((approver, via, details),) = _approvals(conn, "cleanup")
        assert (approver, via) == ("ada", "airflow-hitl")
        assert details["preview"] == shown.counts  # what `make cleanup-approve` records
        assert conn.execute(DUPLICATE_EMAILS).fetchone()[0] == 0
        applied = conn.execute(
            "SELECT rows_touched, details ->> 'approval' FROM ple_ops.cleanup_ledger WHERE step = 'dedupe_emails' AND mode = 'apply'"
        ).fetchall()
    assert applied == [(dedupe.rows_touched, shown.fingerprint.sha256)]
    assert airflow_api.run_note(airflow_env, CLEANUP, output).startswith("mode: apply")


def test_cleanup_rejected_changes_nothing(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        before = end_state(conn)
    output, _request, answers = airflow_api.run_answered(
        airflow_env, fresh_db, CLEANUP, {"mode": "apply"}, [["ada", "admin", "Reject"]]
    )
    assert [a["status"] for a in answers] == [200]
    assert dag_run_state(output) == "failed"
    assert "ApprovalRejected: rejected by ada" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert end_state(conn) == before
        assert _approvals(conn, "cleanup") == []
        assert [r[0] for r in _approvals(conn, "cleanup", "reject")] == ["ada"]  # recorded: it vetoes the cleanup
        ledger = conn.execute("SELECT to_regclass('ple_ops.cleanup_ledger') IS NOT NULL").fetchone()[0]
        assert (
            not ledger
            or conn.execute("SELECT count(*) FROM ple_ops.cleanup_ledger WHERE mode = 'apply'").fetchone()[0] == 0
        )
    assert airflow_api.run_note(airflow_env, CLEANUP, output).startswith("mode: apply")  # a failed run is noted too


# ------------------------------------------------------------------------------ revert
@pytest.fixture
def applied_1a(fresh_db, conn):
    """Phase 1A applied (approved on the command line), and the state before it."""
    before = end_state(conn)
    approval.approve(conn, approval.reorganization(load().sha256), "Grace Hopper", via="cli")
    assert cli(["run", "--phase", "1a", "--mode", "apply", "--run-id", "gate_test_1a"]) == 0
    return fresh_db, before


def test_revert_asks_then_reverts_reject_changes_nothing(airflow_env, applied_1a, conn):
    dsn, before_1a = applied_1a
    applied = end_state(conn)
    conf = {"mode": "apply", "phase": "1a"}
    output, request, answers = airflow_api.run_answered(
        airflow_env, dsn, "ctb_revert", conf, [["ada", "admin", "Reject"]]
    )
    assert [a["status"] for a in answers] == [200]
    assert "| phase |" in request["body"] and "1a__archive__company_company_master: would undo" in request["body"]
    assert dag_run_state(output) == "failed" and "ApprovalRejected: rejected by ada" in output
    assert end_state(conn) == applied
    assert _approvals(conn, "revert") == []
    assert [r[0] for r in _approvals(conn, "revert", "reject")] == ["ada"]
    assert airflow_api.run_note(airflow_env, "ctb_revert", output) == (
        "mode: revert of phase 1a (undoes an applied phase once approved)"
    )

    output, request, answers = airflow_api.run_answered(
        airflow_env, dsn, "ctb_revert", conf, [["ada", "admin", "Approve"]]
    )
    assert [a["status"] for a in answers] == [200]
    assert f"Fingerprint `{revert_fingerprint(load().sha256, '1a').sha256}`" in request["body"]
    assert dag_run_state(output) == "success", output[-4000:]
    ((approver, via, details),) = _approvals(conn, "revert")
    assert (approver, via, details["dag_id"]) == ("ada", "airflow-hitl", "ctb_revert")
    reverted = conn.execute(
        "SELECT count(*) FROM ple_ops.action_ledger WHERE phase = '1a' AND outcome = 'reverted'"
    ).fetchone()[0]
    assert reverted > 0
    after = end_state(conn)
    assert {t: s for t, s in after.items() if not t.startswith("ple_ops.")} == {
        t: s for t, s in before_1a.items() if not t.startswith("ple_ops.")
    }


def test_revert_approved_on_the_command_line_is_not_asked_again(airflow_env, applied_1a, conn):
    dsn, _ = applied_1a
    assert cli(["approve", "--revert", "1a", "--approver", "Ada Lovelace"]) == 0
    run = run_dag(airflow_env, "ctb_revert", {"mode": "apply", "phase": "1a"}, dsn)
    assert dag_run_state(run.stdout) == "success", run.stdout[-4000:]
    assert "not asking again" in run.stdout
    assert conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE outcome = 'reverted'").fetchone()[0] > 0


def test_plan_runs_are_noted_under_dags_test(airflow_env, fresh_db):
    run = run_dag(airflow_env, "ctb_revert", {"phase": "1a"}, fresh_db)
    assert dag_run_state(run.stdout) == "success", run.stdout[-4000:]
    assert "this run changes no data, no approval needed" in run.stdout
    assert airflow_api.run_note(airflow_env, "ctb_revert", run.stdout).startswith("mode: plan (writes nothing")
