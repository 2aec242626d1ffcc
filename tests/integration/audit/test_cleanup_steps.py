"""Each Phase 2C cleanup step on its own (issue 21: fixing NULL domains must not approve removing
duplicate people): a step's preview has its own fingerprint and counts, its approval covers that
step only, and applying it leaves every other step's rows as they were."""

import psycopg
import pytest

from ple import cleanup
from ple.cli import main as cli
from ple.errors import BadInput, NotApproved
from tests.integration.audit.defects import duplicates_to_remove, inject_defects

BACKFILL, DEDUPE = "backfill_null_domains", "dedupe_emails"


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as connection:
        yield connection


def _null_domains(conn) -> int:
    return conn.execute("SELECT count(*) FROM outreach.outreach WHERE domain IS NULL").fetchone()[0]


def test_one_step_is_previewed_approved_and_applied_alone(conn, tmp_path):
    inject_defects(conn)
    duplicates = duplicates_to_remove(conn)
    assert duplicates > 0 and _null_domains(conn) == 4

    alone = cleanup.preview(conn, steps=[BACKFILL])
    everything = cleanup.preview(conn)
    assert list(alone.results) == [BACKFILL] and alone.counts[BACKFILL] == everything.counts[BACKFILL]
    assert alone.fingerprint.sha256 != everything.fingerprint.sha256
    assert alone.fingerprint.sha256 != cleanup.preview(conn, steps=[DEDUPE]).fingerprint.sha256

    assert cli(["cleanup-approve", "--approver", "Ada", "--step", BACKFILL]) == 0
    with pytest.raises(NotApproved):  # the approval of one step approves nothing of the others
        cleanup.apply(conn, "all_steps", tmp_path)
    with pytest.raises(NotApproved):
        cleanup.apply(conn, "dedupe_only", tmp_path, steps=[DEDUPE])
    assert _null_domains(conn) == 4 and duplicates_to_remove(conn) == duplicates

    results = cleanup.apply(conn, "backfill_only", tmp_path, steps=[BACKFILL])
    assert list(results) == [BACKFILL] and results[BACKFILL].rows_touched == 4
    assert _null_domains(conn) == 0
    assert duplicates_to_remove(conn) == duplicates  # nobody was moved to the archive
    ledger = conn.execute("SELECT step, outcome FROM ple_ops.cleanup_ledger WHERE run_id = 'backfill_only'").fetchall()
    assert ledger == [(BACKFILL, "applied")]
    assert cleanup.apply(conn, "backfill_only", tmp_path, steps=[BACKFILL]) == {}  # done in this run: nothing again


def test_an_unknown_step_is_refused_by_name(conn):
    with pytest.raises(BadInput, match="no cleanup step nope; the steps are backfill_null_domains"):
        cleanup.preview(conn, steps=["nope"])


@pytest.mark.slow
def test_the_cleanup_dag_applies_only_the_steps_chosen_in_its_form(airflow_env, fresh_db, conn):
    from tests.helpers import dag_run_state, run_dag

    inject_defects(conn)
    duplicates = duplicates_to_remove(conn)
    assert cli(["cleanup-approve", "--approver", "Ada", "--step", BACKFILL]) == 0
    run = run_dag(airflow_env, "ctb_phase_2c_data_quality", {"mode": "apply", "steps": [BACKFILL]}, fresh_db)
    assert dag_run_state(run.stdout) == "success", run.stdout[-3000:]
    assert "(cleanup " in run.stdout and "not asking again" in run.stdout  # the approval in force, named
    assert f"{DEDUPE}:" not in run.stdout  # neither previewed nor applied
    assert _null_domains(conn) == 0 and duplicates_to_remove(conn) == duplicates
    steps = conn.execute("SELECT DISTINCT step FROM ple_ops.cleanup_ledger WHERE mode = 'apply'").fetchall()
    assert steps == [(BACKFILL,)]
