"""ctb_phase_1l through Airflow itself (`airflow dags test`): each pending question waits in
Required Actions and is answered through Airflow's REST API (in-process, as a logged-in user) from
another process, as it would be from the UI; then the approval of the plan with the answers; then
the executor carries them out. A second apply asks nothing and changes nothing; phase 1l reverts
from the command line; an answer changed afterwards voids the approval."""

import subprocess
import sys

import psycopg
import pytest

from ple import approval
from ple.reorg import decisions
from ple.reorg.plan import load
from tests import airflow_api, rowcheck
from tests.helpers import dag_run_state, run_dag

pytestmark = pytest.mark.slow

DAG_ID = "ctb_phase_1l"


def _apply_answering(airflow_env, dsn, answers):
    return airflow_api.run_responding(airflow_env, dsn, DAG_ID, {"mode": "apply"}, "answer-each", answers)


def _cli(airflow_env, dsn, *args):
    env = dict(airflow_env, AIRFLOW_CONN_CTB_POSTGRES=dsn)
    return subprocess.run(
        [sys.executable, "-m", "ple.cli", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_questions_answered_in_the_ui_are_carried_out_under_approval(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        before = rowcheck.take(conn)

    output, requests = _apply_answering(
        airflow_env,
        fresh_db,
        [
            ["ada", "admin", "keep_pending"],
            ["ada", "admin", "archive"],
            ["grace", "admin", "people"],
            ["ada", "admin", "Approve"],
        ],
    )
    assert [(r["task_id"], r["status"]) for r in requests] == [
        ("decide__company_company_source_urls", 200),
        ("decide__company_pipeline_events", 200),
        ("decide__marketing_review_queue", 200),
        ("approve", 200),
    ], requests
    question = requests[1]
    assert question["options"] == [*load().leaf_lock["sub_hubs"], "archive", "keep_pending"]
    for part in ("Which pipeline do these events track?", "rows now", "ARCHIVE company.pipeline_events"):
        assert part in question["body"], part
    assert "| answers_1l |" in requests[3]["body"] and "1l__move__marketing_review_queue" in requests[3]["body"]
    assert dag_run_state(output) == "success", output[-4000:]

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        where = conn.execute(
            "SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass('company.pipeline_events')) = 'v', "  # compat view
            "to_regclass('archive.company_pipeline_events_ctb') IS NOT NULL, "
            "to_regclass('people.review_queue') IS NOT NULL, to_regclass('company.company_source_urls') IS NOT NULL"
        ).fetchone()
        assert where == (True, True, True, True)
        assert rowcheck.missing(before, conn) == []
        answers = conn.execute(
            "SELECT table_name, answer, decided_by, decided_via FROM ple_ops.pending_answer ORDER BY answer_id"
        ).fetchall()
        assert answers == [
            ("company.company_source_urls", "keep_pending", "ada", "airflow-hitl"),
            ("company.pipeline_events", "archive", "ada", "airflow-hitl"),
            ("marketing.review_queue", "people", "grace", "airflow-hitl"),
        ]
        assert conn.execute("SELECT approver, approved_via FROM ple_ops.approval").fetchall() == [
            ("ada", "airflow-hitl")
        ]
        applied = rowcheck.take(conn)

    # answered: no question again; the approval authorised that run only: asked again, for this one
    again, asked = _apply_answering(airflow_env, fresh_db, [["ada", "admin", "Approve"]])
    assert dag_run_state(again) == "success", again[-4000:]
    assert [(r["task_id"], r["status"]) for r in asked] == [("approve", 200)]
    assert again.count("not asking again") == 3
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert rowcheck.take(conn) == applied
        latest = conn.execute(
            "SELECT DISTINCT ON (step_id) outcome FROM ple_ops.action_ledger WHERE step_id IN "
            "('1l__archive__company_pipeline_events', '1l__move__marketing_review_queue') ORDER BY step_id, attempt_id DESC"
        ).fetchall()
        assert latest == [("already_done",), ("already_done",)]

    assert _cli(airflow_env, fresh_db, "approve", "--revert", "1l", "--approver", "Ada").returncode == 0
    reverted = _cli(airflow_env, fresh_db, "revert", "--phase", "1l", "--mode", "apply")
    assert reverted.returncode == 0, reverted.stderr[-3000:]
    changed = _cli(
        airflow_env, fresh_db, "decide-1l", "--table", "company.pipeline_events", "--answer", "bit", "--by", "Grace"
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "MOVE -> outreach.pipeline_events" in changed.stdout
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('company.pipeline_events') IS NOT NULL").fetchone()[0]
        assert rowcheck.missing(before, conn) == []
        assert approval.current(conn, decisions.fingerprint(load(), decisions.for_connection(conn))) is None


def test_plan_mode_asks_nothing_and_writes_nothing(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        before = rowcheck.take(conn)
    planned = run_dag(airflow_env, DAG_ID, None, fresh_db)  # the default mode: plan
    assert dag_run_state(planned.stdout) == "success", planned.stdout[-4000:]
    assert planned.stdout.count("not asking, nothing recorded") == 3
    assert "What is being reviewed and by which sub-hub?" in planned.stdout
    assert "no answer decides an action" in planned.stdout
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert rowcheck.take(conn) == before
        assert conn.execute("SELECT to_regclass('ple_ops.pending_answer') IS NULL").fetchone()[0]
