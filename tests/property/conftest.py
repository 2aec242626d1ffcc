"""Shared setup of the property tests: a private decisions directory, and a fresh database per
Hypothesis example (Hypothesis runs many examples inside one test function, so a function-scoped
fixture would be shared by all of them; `fresh_clone` is a context manager the test body enters
once per example)."""

from __future__ import annotations

import contextlib
import os

import psycopg
import pytest

from ple.reorg import decisions
from ple_dev import embedded_pg
from tests.helpers import PRODUCTION_TEMPLATE_DB, TEMPLATE_DB, clone_fixture

# Examples per property: small for CI, `make test-deep` raises it.
EXAMPLES = int(os.environ.get("PLE_PROPERTY_EXAMPLES", "4"))


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    """Every test writes its decisions into its own directory, never include/plan/decisions."""
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    return tmp_path / "decisions"


@pytest.fixture
def fresh_clone(pg_server, request, monkeypatch):
    """`with fresh_clone() as conn:` (pre-plan fixture) or `fresh_clone(twin=True)` (production
    twin): a private database for one example, dropped afterwards; ctb_postgres points at it."""

    @contextlib.contextmanager
    def clone(twin: bool = False):
        request.getfixturevalue("production_template" if twin else "fixture_template")  # built once per session
        dsn = clone_fixture(pg_server, template=PRODUCTION_TEMPLATE_DB if twin else TEMPLATE_DB)
        monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", dsn)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                yield conn
        finally:
            embedded_pg.drop_database(pg_server, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])

    return clone


def property_settings(**overrides):
    """Hypothesis settings of the property tests: EXAMPLES examples, no deadline (each example
    clones a database), and no shrinking unless PLE_PROPERTY_SHRINK=1 (a shrink re-runs whole
    phases for minutes; the minimal examples found so far are kept as tests in test_found_by_the_properties.py);
    PLE_PROPERTY_VERBOSE=1 prints every example (and every step of the state machine)."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings

    phases = list(Phase) if os.environ.get("PLE_PROPERTY_SHRINK") else [p for p in Phase if p != Phase.shrink]
    options = {
        "max_examples": EXAMPLES,
        "deadline": None,
        "phases": phases,
        "suppress_health_check": [
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
        "print_blob": True,
        "verbosity": Verbosity.verbose if os.environ.get("PLE_PROPERTY_VERBOSE") else Verbosity.normal,
    }
    return settings(**(options | overrides))
