"""dol_staging_import fetching from a local EFAST2 server through Airflow: one mapped fetch and one
mapped import per archive; the first night imports every served archive (a missing year is
reported, the run succeeds); the second night, nothing changed, writes nothing."""

import psycopg
import pytest

from tests.helpers import dag_run_state, run_dag
from tests.integration.dol.dol_server import DolServer, served_archives

pytestmark = pytest.mark.slow


def test_two_nights_through_airflow(airflow_env, live_db, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    with DolServer() as server, psycopg.connect(live_db, autocommit=True) as conn:
        for (dataset, year), body in served_archives().items():
            server.publish(dataset, year, body)
        conf = {"landing_dir": str(landing), "base_url": server.base_url, "years": [2021, 2023]}
        first = run_dag(airflow_env, "dol_staging_import", conf, live_db)
        assert dag_run_state(first.stdout) == "success", first.stdout[-6000:]
        assert "6 EFAST2 archives: plan years 2021, 2023; F_5500, F_5500_SF, F_SCH_A" in first.stdout
        assert "F_5500_2021_Latest.zip: changed (1 requests). downloaded" in first.stdout
        assert "F_5500_2023_Latest.zip: missing (1 requests). HTTP 404" in first.stdout
        assert "│ dol.form_5500: 1000 rows changed by 1 files" in first.stdout
        assert "│ dol.schedule_a: 1400 rows changed by 1 files" in first.stdout
        assert "│ dol.form_5500_sf: 400 rows changed by 1 files" in first.stdout
        assert conn.execute("SELECT count(*) FROM ple_ops.dol_import WHERE status = 'imported'").fetchone()[0] == 3
        requests = len(server.requests)
        tuples = conn.execute(
            "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_all_tables WHERE schemaname IN ('dol', 'ple_ops')"
        ).fetchone()[0]

        second = run_dag(airflow_env, "dol_staging_import", conf, live_db)
        assert dag_run_state(second.stdout) == "success", second.stdout[-6000:]
        assert len(server.requests) - requests == 6
        assert second.stdout.count("unchanged, already imported: nothing to do") == 3
        assert "rows changed by" not in second.stdout
        conn.execute("SELECT pg_stat_clear_snapshot()")
        assert (
            conn.execute(
                "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_all_tables WHERE schemaname IN ('dol', 'ple_ops')"
            ).fetchone()[0]
            == tuples
        )
