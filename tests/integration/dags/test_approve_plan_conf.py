"""`ctb_approve_plan` from the command line (`airflow dags test`, nobody signed in): the form has
no Approver field (from the UI the approval is the signed-in user's), so the run's conf names the
approver; without one the run refuses, naming the missing `approver`."""

import psycopg
import pytest

from ple.reorg.plan import load
from tests.helpers import dag_run_state, run_dag

pytestmark = pytest.mark.slow


def test_the_conf_names_the_approver_where_nobody_is_signed_in(airflow_env, fresh_db):
    unnamed = run_dag(airflow_env, "ctb_approve_plan", {"plan_sha256": load().sha256}, fresh_db)
    assert dag_run_state(unnamed.stdout) == "failed", unnamed.stdout[-3000:]
    assert "approver: no signed-in user triggered this run" in unnamed.stdout

    named = run_dag(
        airflow_env, "ctb_approve_plan", {"approver": "Ada Lovelace", "plan_sha256": load().sha256}, fresh_db
    )
    assert dag_run_state(named.stdout) == "success", named.stdout[-3000:]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT approver, approved_via FROM ple_ops.approval").fetchall() == [
            ("Ada Lovelace", "airflow-form")
        ]
