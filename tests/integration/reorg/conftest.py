"""Shared setup of the reorganization tests."""

import psycopg
import pytest

from ple.reorg import decisions


@pytest.fixture
def twin(twin_db, tmp_path, monkeypatch):
    """An autocommit connection to a fresh copy of the 2026-02-20 production twin, its decisions
    exported to a temporary folder."""
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    with psycopg.connect(twin_db, autocommit=True) as connection:
        yield connection
