"""Helpers shared by tests: cloning the fixture database and running DAGs with `airflow dags test`."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import socket
from pathlib import Path

from ple_dev import embedded_pg
from tests import airflow_dags_test

REPO = Path(__file__).resolve().parents[1]
TEST_SCALE = float(os.environ.get("PLE_TEST_SCALE", "0.01"))

TEMPLATE_DB = "ple_fixture_template"
PRODUCTION_TEMPLATE_DB = "ple_production_template"
PRODUCTION_2026_03_TEMPLATE_DB = "ple_production_2026_03_template"
_db_counter = itertools.count(1)


def free_port() -> int:
    """A TCP port nobody listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clone_fixture(pg_server, name: str | None = None, template: str = TEMPLATE_DB) -> str:
    """A private copy of a fixture database (CREATE DATABASE ... TEMPLATE); returns its DSN.
    `template`: TEMPLATE_DB (pre-plan) or PRODUCTION_TEMPLATE_DB (the production twin)."""
    return embedded_pg.create_database(pg_server, name or f"ple_test_{os.getpid()}_{next(_db_counter)}", template)


_DAGS_TEST_SERVERS: dict[str, airflow_dags_test.Server] = {}  # Airflow home -> its server


def run_dag(
    airflow_env: dict, dag_id: str, conf: dict | None = None, dsn: str | None = None, extra_env: dict | None = None
):
    """`airflow dags test` in a child process of this Airflow home's server (tests/airflow_dags_test.py);
    returns the CompletedProcess (stdout and stderr merged)."""
    env = dict(airflow_env)
    if dsn:
        env["AIRFLOW_CONN_CTB_POSTGRES"] = dsn
    env.update(extra_env or {})
    args = ["dags", "test", dag_id]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    return dags_test_server(airflow_env).run(args, env)


def dags_test_server(airflow_env: dict) -> airflow_dags_test.Server:
    """The `airflow dags test` server of this Airflow home, started on first use."""
    home = airflow_env["AIRFLOW_HOME"]
    if home not in _DAGS_TEST_SERVERS:
        _DAGS_TEST_SERVERS[home] = server = airflow_dags_test.Server(airflow_env)
        atexit.register(server.close)
    return _DAGS_TEST_SERVERS[home]


def dag_run_state(output: str) -> str | None:
    for line in reversed(output.splitlines()):
        if "DagRun Finished" in line:
            return "success" if "state=success" in line else "failed"
    return None
