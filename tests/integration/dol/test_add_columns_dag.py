"""dol_staging_import with the `add_columns` Param on, through Airflow, against the live-shaped DOL
tables (no `extras` column): refused before any import writes until exactly the file's new columns
are approved on the command line; then the DDL runs once, and a second run runs none."""

import os

import psycopg
import pytest

from ple import cli
from ple_dev import embedded_pg
from ple_dev.fixture.production.dol import create_dol_tables
from tests.helpers import dag_run_state, run_dag
from tests.integration.dol.corpus import real_rows, renumbered, write_csv

pytestmark = pytest.mark.slow

NEW = "NEW_DOL_FIELD_2026"


def _columns(dsn) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'new_dol_field_2026' ORDER BY 1"
            ).fetchall()
        ]


def test_adding_columns_through_the_dag_needs_the_approval(airflow_env, pg_server, tmp_path, monkeypatch):
    name = f"dol_add_columns_{os.getpid()}"
    dsn = embedded_pg.create_database(pg_server, name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            create_dol_tables(conn)
        header, rows = real_rows(5)
        rows = renumbered(header, rows, 6_000_000)
        landing = tmp_path / "landing"
        landing.mkdir()
        write_csv(landing / "f_5500_2019_new.csv", [*header, NEW], [[*r, f"v{i}"] for i, r in enumerate(rows)])
        conf = {"landing_dir": str(landing), "add_columns": True, "fetch_efast2": False}

        refused = run_dag(airflow_env, "dol_staging_import", conf, dsn)
        assert dag_run_state(refused.stdout) == "failed", refused.stdout[-4000:]
        assert "--dol-columns" in refused.stdout
        assert _columns(dsn) == []
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM dol.form_5500").fetchone() == (0,)
            if conn.execute("SELECT to_regclass('ple_ops.dol_import')").fetchone()[0]:  # no import started
                assert conn.execute("SELECT count(*) FROM ple_ops.dol_import").fetchone() == (0,)

        monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", dsn)
        assert cli.main(["approve", "--approver", "pat", "--dol-columns", str(landing)]) == 0

        approved = run_dag(airflow_env, "dol_staging_import", conf, dsn)
        assert dag_run_state(approved.stdout) == "success", approved.stdout[-4000:]
        assert _columns(dsn) == ["form_5500", "form_5500_superseded"]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(new_dol_field_2026) FROM dol.form_5500").fetchone() == (5,)

        write_csv(landing / "f_5500_2019_newer.csv", [*header, NEW], [[*r, f"w{i}"] for i, r in enumerate(rows)])
        again = run_dag(airflow_env, "dol_staging_import", conf, dsn)  # nothing left to add: no approval needed
        assert dag_run_state(again.stdout) == "success", again.stdout[-4000:]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM dol.form_5500 WHERE new_dol_field_2026 LIKE 'w%'").fetchone() == (
                5,
            )
    finally:
        embedded_pg.drop_database(pg_server, name)
