"""ctb_nightly_audit through `airflow dags test`: a breached run asks in Required Actions whether
to accept it as the new baseline, shows the baseline and the breach, and records the answer with
the authenticated user who gave it; "Keep the baseline" leaves the breach standing."""

import psycopg
import pytest

from ple.audit import history
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag

pytestmark = pytest.mark.slow

AUDIT = "ctb_nightly_audit"
ACCEPT, KEEP = "Accept this run as the new baseline", "Keep the baseline"


def _blank_domains(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE outreach.outreach SET domain = '' WHERE outreach_id IN "
            "(SELECT outreach_id FROM outreach.outreach WHERE domain <> '' ORDER BY outreach_id LIMIT %s)",
            (rows,),
        )


def test_a_breached_audit_offers_the_new_baseline_and_records_who_accepted(airflow_env, fresh_db):
    clean = run_dag(airflow_env, AUDIT, {}, fresh_db)
    assert dag_run_state(clean.stdout) == "success", clean.stdout[-3000:]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        first = history.baseline(conn)
    assert first is not None and first.via == "automatic"

    _blank_domains(fresh_db, 3)
    output, request, answers = airflow_api.run_answered(airflow_env, fresh_db, AUDIT, {}, [["ada", "admin", KEEP]])
    assert [a["status"] for a in answers] == [200], answers
    assert request["task_id"] == "accept_baseline"
    body = request["body"]
    assert f"Accepted baseline: run {first.run_id}" in body
    assert "| null_domains_on_spine | 0 | 3 |" in body and "BREACHED" in body
    assert dag_run_state(output) == "failed" and "ada kept the baseline" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert history.baseline(conn).run_id == first.run_id  # kept

    output, request, answers = airflow_api.run_answered(
        airflow_env, fresh_db, AUDIT, {}, [["viewer", "viewer", ACCEPT], ["ada", "admin", ACCEPT]]
    )
    assert [a["status"] for a in answers] == [403, 200], answers  # a viewer cannot answer
    assert dag_run_state(output) == "success", output[-3000:]
    assert "ACCEPTED as the nightly audit's baseline" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        accepted = history.baseline(conn)
        assert accepted.run_id != first.run_id and accepted.numbers["null_domains_on_spine"] == 3
        assert (accepted.accepted_by, accepted.via) == ("ada", "airflow-hitl")

    again = run_dag(airflow_env, AUDIT, {}, fresh_db)  # judged against the accepted numbers now
    assert dag_run_state(again.stdout) == "success", again.stdout[-3000:]
