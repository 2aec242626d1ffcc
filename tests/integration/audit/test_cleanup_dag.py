"""ctb_phase_2c_data_quality through `airflow dags test`: preview, refused apply, approval, apply."""

import psycopg
import pytest

from ple.cli import main as cli
from tests.helpers import dag_run_state, run_dag
from tests.integration.audit.conftest import FIXTURES
from tests.reorg_helpers import end_state

pytestmark = pytest.mark.slow


@pytest.fixture
def db(request):
    """The DAG runs on the last fixture only (the production twin when it exists): each run takes
    a minute, and the library tests cover both fixtures."""
    return request.getfixturevalue(FIXTURES[-1])


def test_the_cleanup_dag_previews_refuses_unapproved_and_applies_what_was_approved(airflow_env, db):
    with psycopg.connect(db, autocommit=True) as conn:
        state = end_state(conn)
    refused = run_dag(airflow_env, "ctb_phase_2c_data_quality", {"mode": "apply"}, db)
    assert "dedupe_emails: would touch" in refused.stdout and "apply needs an approval" in refused.stdout
    assert dag_run_state(refused.stdout) == "failed"
    assert "NotApproved" in refused.stdout and "cleanup-approve" in refused.stdout
    assert refused.stdout.count("Task failed with exception") == 1  # refused at once, not retried
    with psycopg.connect(db, autocommit=True) as conn:
        assert end_state(conn) == state
    assert cli(["cleanup-approve", "--approver", "Ada Lovelace"]) == 0
    applied = run_dag(airflow_env, "ctb_phase_2c_data_quality", {"mode": "apply"}, db)
    assert dag_run_state(applied.stdout) == "success", applied.stdout[-3000:]
    with psycopg.connect(db, autocommit=True) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM ple_ops.cleanup_ledger WHERE step = 'dedupe_emails' AND outcome = 'applied'"
            ).fetchone()[0]
            == 1
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM (SELECT email FROM people.people_master WHERE email <> '' GROUP BY email HAVING count(*) > 1) d"
            ).fetchone()[0]
            == 0
        )
