"""Fixtures of the adversarial tests: a private decisions directory for every test, and 1B's
batched-merge setting (a bypassed sync trigger on the live target, a slow row trigger, a keyed
source over many pages)."""

import pytest

from ple.reorg import decisions
from tests.reorg_helpers import batched_merge_setting


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    return tmp_path / "decisions"


@pytest.fixture
def synced(conn):
    """1B's batched-merge setting (tests/reorg_helpers.py batched_merge_setting)."""
    return batched_merge_setting(conn)
