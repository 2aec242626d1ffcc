"""ctb_nightly_audit through `airflow dags test`: a breached run asks in Required Actions whether
to accept it as the new baseline, shows the baseline and the breach, and records the answer with
the authenticated user who gave it; "Keep the baseline" leaves the breach standing."""

import psycopg
import pytest

from ple.audit import history
from tests import airflow_api
from tests.helpers import dag_run_state, run_dag
from tests.integration.audit.defects import duplicate_domains

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # four audit runs, each a process

AUDIT = "ctb_nightly_audit"
ACCEPT, KEEP = "Accept this run as the new baseline", "Keep the baseline"
STRICT = {"regression_margin_pct": 0}  # any growth over the baseline is a regression


def test_a_breached_audit_offers_the_new_baseline_and_records_who_accepted(airflow_env, fresh_db):
    clean = run_dag(airflow_env, AUDIT, STRICT, fresh_db)
    assert dag_run_state(clean.stdout) == "success", clean.stdout[-3000:]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        first = history.baseline(conn)
    assert first is not None and first.via == "automatic"

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        duplicate_domains(conn, 3)
    output, request, answers = airflow_api.run_answered(airflow_env, fresh_db, AUDIT, STRICT, [["ada", "admin", KEEP]])
    assert [a["status"] for a in answers] == [200], answers
    assert request["task_id"] == "accept_baseline"
    body = request["body"]
    assert f"Accepted baseline: run {first.run_id}" in body
    base = first.numbers["duplicate_domains_on_spine"]
    assert f"| duplicate_domains_on_spine | {base:,} | {base + 3:,} | <= {base:,} | BREACHED |" in body
    assert dag_run_state(output) == "failed" and "ada kept the baseline" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert history.baseline(conn).run_id == first.run_id  # kept

    output, request, answers = airflow_api.run_answered(
        airflow_env, fresh_db, AUDIT, STRICT, [["viewer", "viewer", ACCEPT], ["ada", "admin", ACCEPT]]
    )
    assert [a["status"] for a in answers] == [403, 200], answers  # a viewer cannot answer
    assert dag_run_state(output) == "success", output[-3000:]
    assert "ACCEPTED as the nightly audit's baseline" in output
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        accepted = history.baseline(conn)
        assert accepted.run_id != first.run_id and accepted.numbers["duplicate_domains_on_spine"] == base + 3
        assert (accepted.accepted_by, accepted.via) == ("ada", "airflow-hitl")

    # judged against the accepted numbers now (no request: a breach here would fail, not wait)
    again = run_dag(airflow_env, AUDIT, {**STRICT, "offer_baseline": False}, fresh_db)
    assert dag_run_state(again.stdout) == "success", again.stdout[-3000:]
