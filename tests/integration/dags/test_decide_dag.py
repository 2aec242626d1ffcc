"""ctb_decide through Airflow itself: each open decision waits in Required Actions with its
evidence and lossless options, is answered as a logged-in user, and becomes a new version of the
decisions in the database with who answered; the plan then carries it out, and an approval given
before the decision no longer holds. `accept=all_listed` lists what it accepts and takes all or
nothing; plan mode asks and records nothing."""

import psycopg
import pytest

from ple import approval
from ple.orchestration.decide_dags import ACCEPT_ALL
from ple.reorg import decisions, proposals
from ple.reorg.plan import load
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag
from tests.reconcile_helpers import stale_hand_copy

pytestmark = pytest.mark.slow

DAG_ID = "ctb_decide"


@pytest.fixture
def env(airflow_env, tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    return dict(airflow_env, PLE_DECISIONS_DIR=str(tmp_path / "decisions"))


def _versions(dsn):
    with psycopg.connect(dsn) as conn:
        return decisions.history(conn)


def test_one_question_answered_in_the_ui_is_a_new_version_that_voids_the_earlier_approval(env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        stale_hand_copy(conn, "company.company_master", "archive.company_company_master_ctb")
        earlier = decisions.fingerprint(load(), decisions.for_connection(conn))
        approval.approve(conn, earlier, "ada", standing=True)

    output, requests = airflow_api.run_responding(
        env, fresh_db, DAG_ID, {"mode": "apply"}, "answer-each", [["grace", "admin", decisions.ACCEPT]]
    )
    assert dag_run_state(output) == "success", output[-4000:]
    (asked,) = requests
    assert asked["options"] == [decisions.ACCEPT, decisions.SKIP, decisions.LATER]
    assert "company.company_master" in asked["body"] and "set_aside" in asked["body"]
    (version,) = _versions(fresh_db)
    assert version["decided_by"] == "grace" and version["decided_via"] == "airflow-hitl"
    assert version["answers"]["company.company_master"]["by"] == "grace"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        now = decisions.for_connection(conn)
        assert now.version == version["version"]
        assert now.for_action("company.company_master")["set_aside"].startswith("archive.company_company_master_ctb_")
        assert approval.current(conn, decisions.fingerprint(load(), now)) is None  # the decision voided it
        assert approval.current(conn, earlier) is not None


def test_plan_mode_asks_nothing_and_all_listed_accepts_exactly_what_it_lists(env, twin_db):
    planned = run_dag(env, DAG_ID, {"mode": "plan"}, dsn=twin_db).stdout
    assert dag_run_state(planned) == "success" and "open decision(s)" in planned
    assert _versions(twin_db) == []

    output, requests = airflow_api.run_responding(
        env, twin_db, DAG_ID, {"mode": "apply", "accept": "all_listed"}, "answer-each", [["ada", "admin", ACCEPT_ALL]]
    )
    assert dag_run_state(output) == "success", output[-4000:]
    (asked,) = requests
    with psycopg.connect(twin_db, autocommit=True) as conn:
        now = decisions.for_connection(conn)
        proposed = proposals.propose(conn, load(), now)
    listed = {line.split("`")[1] for line in asked["body"].splitlines() if line.startswith("- ")}
    decided = set(now.as_table()) | set(now.targets) | set(now.accepted) | set(now.leaf_lock)
    assert listed == decided  # what it listed is what it accepted
    assert decisions.open_questions(now, proposed) == []  # nothing left open
