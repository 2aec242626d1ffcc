"""The ctb_contract DAG through `airflow dags test`: plan mode lists what would go and drops
nothing; apply asks in Required Actions with exactly that list, and on "Approve" drops it; revert
asks again and makes the objects again (issue 23)."""

import psycopg
import pytest

from ple.reorg import decisions
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, executor, run_phase

pytestmark = pytest.mark.slow

DAG_ID = "ctb_contract"
KEPT, DUE = "outreach.people", "outreach.people_archive"


def _exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def test_contract_dag_plans_asks_drops_and_its_revert_restores(airflow_env, twin_db, tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    with psycopg.connect(twin_db, autocommit=True) as conn:
        decide(conn)
        approve(conn)
        run_phase(executor(conn), "1c")
        conn.execute("UPDATE ple_ops.compat_object SET grace = interval '0', created_at = now() - interval '1 day'")
        conn.execute("UPDATE ple_ops.compat_object SET grace = interval '90 days' WHERE name = %s", (KEPT,))
    planned = run_dag(airflow_env, DAG_ID, {"mode": "plan"}, dsn=twin_db)
    assert dag_run_state(planned.stdout) == "success", planned.stdout[-4000:]
    assert DUE in planned.stdout and "would drop exactly these" in planned.stdout
    assert _exists(twin_db, DUE)
    output, request, answers = airflow_api.run_answered(
        airflow_env, twin_db, DAG_ID, {"mode": "apply"}, [["ada", "admin", "Approve"]]
    )
    assert [a["status"] for a in answers] == [200], answers
    assert DUE in request["body"] and KEPT + " (" not in request["body"]
    assert dag_run_state(output) == "success", output[-4000:]
    assert not _exists(twin_db, DUE) and _exists(twin_db, KEPT)
    output, request, answers = airflow_api.run_answered(
        airflow_env, twin_db, DAG_ID, {"mode": "revert"}, [["ada", "admin", "Approve"]]
    )
    assert dag_run_state(output) == "success", output[-4000:]
    assert _exists(twin_db, DUE)
