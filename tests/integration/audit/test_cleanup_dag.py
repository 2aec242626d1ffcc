"""ctb_phase_2c_data_quality through `airflow dags test`: a plan run previews and writes nothing;
an apply approved on the command line runs without asking. (An unapproved apply asks in Required
Actions: tests/integration/orchestration/test_cleanup_and_revert_gates.py answers it.)"""

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


def test_the_cleanup_dag_previews_and_applies_what_was_approved_without_asking(airflow_env, db):
    with psycopg.connect(db, autocommit=True) as conn:
        state = end_state(conn)
    planned = run_dag(airflow_env, "ctb_phase_2c_data_quality", {"mode": "plan"}, db)
    assert "dedupe_emails: would touch" in planned.stdout and "apply needs an approval" in planned.stdout
    assert dag_run_state(planned.stdout) == "success"
    with psycopg.connect(db, autocommit=True) as conn:
        assert end_state(conn) == state
    assert cli(["cleanup-approve", "--approver", "Ada Lovelace"]) == 0
    applied = run_dag(airflow_env, "ctb_phase_2c_data_quality", {"mode": "apply"}, db)
    assert dag_run_state(applied.stdout) == "success", applied.stdout[-3000:]
    assert "(cleanup " in applied.stdout and "not asking again" in applied.stdout  # the approval in force, named
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
