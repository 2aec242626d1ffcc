"""The reorganization through Airflow itself (`airflow dags test`, no scheduler): plan mode
writes nothing, an approval from the approval DAG is honoured without asking again, apply runs
every phase to the end, and a second apply changes nothing. (An unapproved apply asks in Required
Actions: tests/integration/orchestration/test_approval_gate.py.)"""

import psycopg
import pytest

from ple.reorg.ledger import action_outcomes
from ple.reorg.plan import load
from tests.helpers import dag_run_state, run_dag
from tests.reorg_helpers import end_state

pytestmark = pytest.mark.slow


def test_reorganization_end_to_end_through_airflow(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        original = end_state(conn)

        planned = run_dag(airflow_env, "ctb_reorganization", {"mode": "plan"}, fresh_db)
        assert dag_run_state(planned.stdout) == "success", planned.stdout[-3000:]
        assert "│ 1b__merge__marketing_failed_company_match: would run" in planned.stdout
        assert end_state(conn) == original

        approved = run_dag(  # standing: the second apply runs under it too (a one-run approval would ask again)
            airflow_env,
            "ctb_approve_plan",
            {"approver": "Ada Lovelace", "plan_sha256": load().sha256, "standing": True},
            fresh_db,
        )
        assert dag_run_state(approved.stdout) == "success", approved.stdout[-3000:]

        applied = run_dag(airflow_env, "ctb_reorganization", {"mode": "apply"}, fresh_db)
        assert dag_run_state(applied.stdout) == "success", applied.stdout[-3000:]
        steps = len(load().steps)
        outcomes = action_outcomes(conn)
        assert outcomes == {"applied": steps}
        reorganized = end_state(conn)

        again = run_dag(airflow_env, "ctb_reorganization", {"mode": "apply"}, fresh_db)
        assert dag_run_state(again.stdout) == "success", again.stdout[-3000:]
        latest = action_outcomes(conn)
        frozen = conn.execute(
            "SELECT DISTINCT ON (step_id) outcome FROM ple_ops.action_ledger WHERE action = 'FREEZE' ORDER BY step_id, attempt_id DESC"
        ).fetchall()
        assert latest == {"already_done": steps}
        assert frozen == [("already_done",)] * 11
        assert end_state(conn) == reorganized
