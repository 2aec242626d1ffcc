"""Test session: a real PostgreSQL started by the session itself, with the PLE fixture built once.

Tests that change data get their own database cloned from the fixture (CREATE DATABASE ...
TEMPLATE), so every test starts from the same pre-reorganization state in well under a second.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests import airflow_api
from tests.helpers import (
    PRODUCTION_2026_03_TEMPLATE_DB,
    PRODUCTION_TEMPLATE_DB,
    REPO,
    TEMPLATE_DB,
    TEST_SCALE,
    clone_fixture,
    free_port,
)

# Great Expectations validates in an ephemeral context (no Data Docs written) unless a test asks
# for the file context: tests/integration/test_expectations_data_docs.py, tests/browser.
os.environ.setdefault("PLE_GX_DATA_DOCS", "false")


@functools.cache
def _server_major() -> int:
    """Major version of the server the session will start (PLE_PG_BIN, else the pgserver wheel)."""
    from ple_dev import embedded_pg

    return embedded_pg.binaries_major(embedded_pg.binaries_dir())


def pytest_report_header(config):
    from ple_dev import embedded_pg

    return f"PostgreSQL {_server_major()} from {embedded_pg.binaries_dir()} (set PLE_PG_BIN to test another)"


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs the suite on two pytest-xdist workers, each with its own PostgreSQL and
    Airflow home. Each test is a unit of work on its own, but the browser tests are one unit: they
    share one local Airflow (xdist's own `xdist_group` marker has no effect under pytest 9.2, whose
    node ids xdist 3.8 can no longer suffix)."""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/browser" if nodeid.startswith("tests/browser/") else nodeid

    return BrowserTestsTogether(config, log)


@pytest.fixture(scope="session", autouse=True)
def decisions_export_dir(tmp_path_factory):
    """The decisions' YAML export goes to this worker's temporary directory, not to the checkout's
    include/plan/decisions: a file left there by one run is read as the decisions of a database
    with no version recorded (the browser database of the next run). Set before any fixture starts
    Airflow, which inherits it; tests that read the export set their own."""
    if "PLE_DECISIONS_DIR" not in os.environ:
        os.environ["PLE_DECISIONS_DIR"] = str(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="session")
def pg_server():
    """PostgreSQL for this session. Its directory sits outside pytest's 0700 temp tree because
    the server runs as the unprivileged `postgres` user when the tests run as root."""
    from ple_dev import embedded_pg

    parent = Path(tempfile.mkdtemp(prefix="ple-test-pg-"))
    parent.chmod(0o755)
    server = embedded_pg.start(parent / "data", free_port())
    yield server
    embedded_pg.stop(parent / "data")
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def fixture_template(pg_server):
    """The PLE fixture at TEST_SCALE, built once into a template database."""
    from ple_dev import embedded_pg
    from ple_dev.fixture.builder import build

    dsn = embedded_pg.create_database(pg_server, TEMPLATE_DB)
    with psycopg.connect(dsn, autocommit=True) as conn:
        report = build(conn, scale=TEST_SCALE, log=lambda _: None)
    return {"dsn": dsn, "report": report}


@pytest.fixture
def fresh_db(pg_server, fixture_template, monkeypatch):
    """A private copy of the fixture; the connection ctb_postgres points at it for the test."""
    dsn = clone_fixture(pg_server)
    monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", dsn)
    yield dsn
    from ple_dev import embedded_pg

    embedded_pg.drop_database(pg_server, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


def _template(pg_server, name: str, state: str) -> dict:
    """A fixture state at TEST_SCALE, built once into its own template database (as the superuser:
    the 2026-03 state's event triggers need one)."""
    from ple_dev import embedded_pg
    from ple_dev.fixture.builder import build

    dsn = embedded_pg.create_database(pg_server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        report = build(conn, scale=TEST_SCALE, log=lambda _: None, state=state)
    return {"dsn": dsn, "report": report}


def _private_copy(pg_server, template: str, monkeypatch):
    """A private copy of a template; the connection ctb_postgres points at it for the test."""
    from ple_dev import embedded_pg

    dsn = clone_fixture(pg_server, template=template)
    monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", dsn)
    yield dsn
    embedded_pg.drop_database(pg_server, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


@pytest.fixture(scope="session")
def production_template(pg_server):
    """The production twin (the database as it stood on 2026-02-20)."""
    return _template(pg_server, PRODUCTION_TEMPLATE_DB, "production")


@pytest.fixture
def twin_db(pg_server, production_template, monkeypatch):
    yield from _private_copy(pg_server, PRODUCTION_TEMPLATE_DB, monkeypatch)


@pytest.fixture(scope="session")
def production_2026_03_template(pg_server):
    """The production twin as of 2026-03-12 (CTB governance layer with its event triggers enabled,
    Legacy Collapse Phase 3, the March workers' tables), built only by sessions that ask for it."""
    return _template(pg_server, PRODUCTION_2026_03_TEMPLATE_DB, "production-2026-03")


@pytest.fixture
def twin_2026_03_db(pg_server, production_2026_03_template, monkeypatch):
    yield from _private_copy(pg_server, PRODUCTION_2026_03_TEMPLATE_DB, monkeypatch)


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory):
    """Environment for `airflow` commands: a migrated SQLite metadata DB, our dags and plugins."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]),
        "PLE_TASK_RETRY_DELAY_SECONDS": "1",
        "PLE_TASK_MAX_RETRY_DELAY_SECONDS": "2",
        "GX_ANALYTICS_ENABLED": "False",
        # The users and JWT secret tests/airflow_api.py signs in with: every run of this home has
        # the same Airflow settings, so each starts from the one dags test server.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": airflow_api.USERS,
        "AIRFLOW__API_AUTH__JWT_SECRET": airflow_api.JWT_SECRET,
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return env
