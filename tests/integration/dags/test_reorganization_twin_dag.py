"""`ctb_reorganization` through Airflow on both production twins (2026-02-20, and 2026-03-12 with
the owner's DDL gate enabled): plan mode, undecided, prints the reconcile table, writes nothing (not
a registry row either) and is red (its lint fails); after `decide --accept proposed` and the approval
DAG, apply completes with no DDL refused and an independent check finds every row that existed
before. Then `ctb_phase_2_leaf_lock`: plan mode writes nothing; apply locks the leaf schemas
(adopting the owner's gate on the 2026-03-12 twin) with the plan's gone Phase 2 tables moot as
decided; a second apply writes nothing; no row is lost."""

import psycopg
import pytest

from ple.reorg import decisions
from ple.reorg.plan import load
from tests import rowcheck
from tests.helpers import dag_run_state, run_dag
from tests.reconcile_helpers import decide
from tests.reorg_helpers import end_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # every phase, twice, each task a process


def _registry_rows(conn) -> int | None:
    if not conn.execute("SELECT to_regclass('ctb.table_registry') IS NOT NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT count(*) FROM ctb.table_registry").fetchone()[0]


@pytest.mark.parametrize("twin", ["twin_db", "twin_2026_03_db"])
def test_reorganization_on_the_production_twin_through_airflow(airflow_env, twin, request, tmp_path, monkeypatch):
    twin_db = request.getfixturevalue(twin)
    directory = tmp_path / "decisions"
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(directory))
    env = {decisions.DECISIONS_DIR_ENV: str(directory)}
    with psycopg.connect(twin_db, autocommit=True) as conn:
        original, registry = end_state(conn), _registry_rows(conn)
        planned = run_dag(airflow_env, "ctb_reorganization", {"mode": "plan"}, twin_db, env)
        assert dag_run_state(planned.stdout) == "failed", planned.stdout[-3000:]  # undecided: the lint fails
        assert "reconcile: " in planned.stdout and "UNDECIDED" in planned.stdout
        assert "PlanRejected: " in planned.stdout and "lint: FAILED with" in planned.stdout
        assert end_state(conn) == original and _registry_rows(conn) == registry

        decide(conn)
        approved = run_dag(
            airflow_env,
            "ctb_approve_plan",  # standing: the reorganization, the leaf lock and their re-runs run under it
            {"approver": "Ada Lovelace", "plan_sha256": load().sha256, "standing": True},
            twin_db,
            env,
        )
        assert dag_run_state(approved.stdout) == "success", approved.stdout[-3000:]
        covers = conn.execute(
            "SELECT details -> 'covers' FROM ple_ops.approval WHERE approved_via = 'airflow-form' ORDER BY approval_id DESC LIMIT 1"
        ).fetchone()[0]
        assert covers["decisions"] and covers["decisions_sha256"]  # the approval says what it approved
        assert "and with it, in this database" in approved.stdout and '"decisions":' in approved.stdout
        rows = rowcheck.take(conn)
        applied = run_dag(airflow_env, "ctb_reorganization", {"mode": "apply"}, twin_db, env)
        assert dag_run_state(applied.stdout) == "success", applied.stdout[-3000:]
        assert "CTB_DDL_GATE" not in applied.stdout
        assert rowcheck.missing(rows, conn) == []
        failed = conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE outcome = 'failed'").fetchone()[0]
        assert failed == 0

        before_lock = _lock_rows(conn), _registry_rows(conn)
        shown = run_dag(airflow_env, "ctb_phase_2_leaf_lock", {"mode": "plan"}, twin_db, env)
        assert dag_run_state(shown.stdout) == "success", shown.stdout[-3000:]
        assert "Phase 2 tables missing: none" in shown.stdout and "moot (decided: skip)" in shown.stdout
        assert (_lock_rows(conn), _registry_rows(conn)) == before_lock
        locked = run_dag(airflow_env, "ctb_phase_2_leaf_lock", {"mode": "apply"}, twin_db, env)
        assert dag_run_state(locked.stdout) == "success", locked.stdout[-3000:]
        gated = twin == "twin_2026_03_db"
        assert f"enforcement {'owner_gate' if gated else 'event_trigger'}" in locked.stdout
        assert "CTB_DDL_GATE" not in locked.stdout
        after_lock = _lock_rows(conn), _registry_rows(conn)
        again = run_dag(airflow_env, "ctb_phase_2_leaf_lock", {"mode": "apply"}, twin_db, env)
        assert dag_run_state(again.stdout) == "success", again.stdout[-3000:]
        assert "rows written: 0" in again.stdout and (_lock_rows(conn), _registry_rows(conn)) == after_lock
        assert rowcheck.missing(rows, conn) == []


def _lock_rows(conn) -> list:
    if not conn.execute("SELECT to_regclass('ple_ops.leaf_lock') IS NOT NULL").fetchone()[0]:
        return []
    return conn.execute(
        "SELECT 'lock', schema_name, enforcement FROM ple_ops.leaf_lock UNION ALL "
        "SELECT 'path', table_name, sub_hub || ' ' || ctb_class FROM ple_ops.ctb_path_assignment ORDER BY 1, 2"
    ).fetchall()
