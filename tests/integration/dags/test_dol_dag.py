"""dol_staging_import through Airflow: imports the shipped samples, publishes asset events for the
tables it changed; a second run imports nothing and publishes nothing."""

import shutil

import psycopg
import pytest

from ple.config import DOL_SAMPLE_DIR
from tests.helpers import dag_run_state, run_dag

pytestmark = pytest.mark.slow


def test_nightly_import_twice(airflow_env, fresh_db, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(DOL_SAMPLE_DIR, landing)
    conf = {"landing_dir": str(landing), "fetch_efast2": False}

    first = run_dag(airflow_env, "dol_staging_import", conf, fresh_db)
    assert dag_run_state(first.stdout) == "success", first.stdout[-4000:]
    assert "│ dol.form_5500: 3000 rows changed by 3 files" in first.stdout
    assert "│ dol.schedule_a: 1400 rows changed by 1 files" in first.stdout
    with psycopg.connect(fresh_db) as conn:
        counts = conn.execute("SELECT status, count(*) FROM ple_ops.dol_import GROUP BY 1").fetchall()
        assert counts == [("imported", 5)]
        snapshot = conn.execute("SELECT count(*), max(updated_at) FROM dol.form_5500").fetchone()

    second = run_dag(airflow_env, "dol_staging_import", conf, fresh_db)
    assert dag_run_state(second.stdout) == "success", second.stdout[-4000:]
    assert second.stdout.count("already_imported") >= 5
    assert "rows changed by" not in second.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*), max(updated_at) FROM dol.form_5500").fetchone() == snapshot
