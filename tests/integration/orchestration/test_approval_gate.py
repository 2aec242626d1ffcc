"""The approval gate through Airflow itself: `airflow dags test` of an apply run waits in
Required Actions; the answer comes from Airflow's REST API (in-process, as a logged-in user) in
another process sharing the metadata database, as it would from the UI."""

import re

import psycopg
import pytest

from ple.ui import pages
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag
from tests.reorg_helpers import end_state

pytestmark = pytest.mark.slow


def run_id_of(output: str) -> str:
    return re.findall(r"run_id=([^,\s]+)", output)[-1]


def _apply_answered(airflow_env, dsn, dag_id, answers):
    return airflow_api.run_answered(airflow_env, dsn, dag_id, {"mode": "apply"}, answers)


def test_apply_asks_and_records_the_authenticated_user_a_viewer_is_refused(airflow_env, fresh_db):
    output, request, answers = _apply_answered(
        airflow_env, fresh_db, "ctb_phase_1a", [["viewer", "viewer", "Approve"], ["ada", "admin", "Approve"]]
    )
    assert [a["status"] for a in answers] == [403, 200], answers
    assert answers[1]["body"]["responded_by"]["name"] == "ada"
    assert request["task_id"] == "approve"
    for part in ("| plan |", "| decisions |", "| code |", "1a__archive__", "-- live:", "rows"):
        assert part in request["body"], part
    assert dag_run_state(output) == "success", output[-4000:]
    with psycopg.connect(fresh_db) as conn:
        approvals = conn.execute("SELECT approver, approved_via, details ->> 'dag_id' FROM ple_ops.approval").fetchall()
        applied = conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE outcome = 'applied'").fetchone()[0]
    assert approvals == [("ada", "airflow-hitl", "ctb_phase_1a")]
    assert applied > 0
    with psycopg.connect(fresh_db) as conn:
        (shown,) = conn.execute("SELECT body FROM ple_ops.approval_request").fetchall()
        console = pages.reorganization(conn, run_id_of(output))
    assert shown[0] == request["body"]  # the console shows the request of the run as the approver saw it
    assert "Approval requests of run" in console and "Approve exactly this" in console
    assert "APPROVED reorganization" in output and "by ada at" in output


def test_a_recorded_approval_is_honoured_without_asking(airflow_env, fresh_db):
    from ple import approval
    from ple.reorg.plan import load

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approval.approve(conn, approval.reorganization(load().sha256), "Ada Lovelace", via="cli")
    run = run_dag(airflow_env, "ctb_phase_1b", {"mode": "apply"}, fresh_db)
    assert dag_run_state(run.stdout) == "success", run.stdout[-4000:]
    assert "not asking again" in run.stdout


def test_reject_runs_nothing(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        before = end_state(conn)
    output, _request, answers = _apply_answered(airflow_env, fresh_db, "ctb_phase_1a", [["ada", "admin", "Reject"]])
    assert [a["status"] for a in answers] == [200]
    assert dag_run_state(output) == "failed"
    assert "ApprovalRejected: rejected by ada" in output
    assert output.count("Task failed with exception") == 1  # a rejection is not retried
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert end_state(conn) == before
        recorded = conn.execute("SELECT verdict, scope, approver, for_run FROM ple_ops.approval").fetchall()
    assert recorded == [("reject", "phase 1a", "ada", None)]  # the rejection vetoes 1a until approved
