"""A plan run whose lint fails is red (issue 21: a plan run was green beside "lint: FAILED with 4
error(s)"): the preflight logs its whole report first, then fails, and nothing is written. The
same phase, once decided, plans green."""

import psycopg
import pytest

from ple.reorg import decisions
from tests.helpers import dag_run_state, run_dag
from tests.reconcile_helpers import decide
from tests.reorg_helpers import end_state

pytestmark = pytest.mark.slow


def test_a_plan_run_whose_lint_fails_is_red_after_its_report(airflow_env, twin_db, tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path))
    env = {decisions.DECISIONS_DIR_ENV: str(tmp_path)}
    with psycopg.connect(twin_db, autocommit=True) as conn:
        before = end_state(conn)
        planned = run_dag(airflow_env, "ctb_phase_1a", {"mode": "plan"}, twin_db, env)
        assert dag_run_state(planned.stdout) == "failed", planned.stdout[-3000:]
        out = planned.stdout
        report, error = out.index("lint: FAILED with"), out.index("PlanRejected: 1a__preflight: lint: FAILED with")
        assert report < error  # the report is logged first, then the task fails
        assert "UNDECIDED" in out[:error] or "decide" in out[:error]  # it says what to do
        assert out.count("Task failed with exception") == 1  # a lint failure is not retried
        assert end_state(conn) == before

        decide(conn)  # every proposal accepted: the lint passes
        planned = run_dag(airflow_env, "ctb_phase_1a", {"mode": "plan"}, twin_db, env)
        assert dag_run_state(planned.stdout) == "success", planned.stdout[-3000:]
        assert "lint: OK" in planned.stdout
        assert end_state(conn) == before


def test_the_command_lines_plan_fails_the_same_way(twin_db, tmp_path, monkeypatch, capsys):
    from ple.cli import main as cli

    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path))
    assert cli(["run", "--mode", "plan", "--phase", "1a"]) == 2
    assert "lint: FAILED in 1a__preflight" in capsys.readouterr().err
    with psycopg.connect(twin_db, autocommit=True) as conn:
        decide(conn)
    assert cli(["run", "--mode", "plan", "--phase", "1a"]) == 0
