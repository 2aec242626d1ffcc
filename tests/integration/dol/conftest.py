"""Fixtures shared by the DOL tests: the live-shaped DOL tables in a database of their own, and a
landing folder holding the sample files."""

from __future__ import annotations

import itertools
import os
import shutil

import psycopg
import pytest

from ple_dev import embedded_pg
from ple_dev.fixture.production.dol import create_dol_tables
from tests.integration.dol.live_tables import add_ddl_counter

_databases = itertools.count(1)


@pytest.fixture
def live_db(pg_server, monkeypatch):
    """An empty database holding only the live-shaped DOL tables with every guard."""
    name = f"dol_live_{os.getpid()}_{next(_databases)}"
    dsn = embedded_pg.create_database(pg_server, name)
    monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_dol_tables(conn)
        add_ddl_counter(conn)
    yield dsn
    embedded_pg.drop_database(pg_server, name)


@pytest.fixture
def live(live_db):
    with psycopg.connect(live_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def samples(tmp_path):
    from ple.config import DOL_SAMPLE_DIR

    landing = tmp_path / "landing"
    shutil.copytree(DOL_SAMPLE_DIR, landing)
    return landing
