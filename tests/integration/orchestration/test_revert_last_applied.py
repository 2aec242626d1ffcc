"""The revert form's default, 'last applied', is resolved by the run from the ledger: the phase
applied most recently that still stands; with none standing the run refuses, naming the field."""

import pytest

from ple import ops
from ple.errors import BadInput
from ple.orchestration import revert_dags

LEDGER_ROW = """
INSERT INTO ple_ops.action_ledger (run_id, phase, step_id, action, mode, plan_sha256, started_at, duration_ms, outcome)
VALUES ('r', %s, %s, 'MOVE', %s, 'sha', now(), 1, %s)
"""


def _context(phase: str) -> dict:
    return {"params": {"phase": phase}}


def test_last_applied_is_the_latest_phase_still_standing(conn):
    with pytest.raises(BadInput, match=r"^phase: 'last applied' names no phase"):
        revert_dags._phase(conn, _context(revert_dags.LAST_APPLIED))  # no ple_ops schema yet
    ops.ensure_schema(conn)
    with pytest.raises(BadInput, match=r"^phase: 'last applied' names no phase"):
        revert_dags._phase(conn, _context(revert_dags.LAST_APPLIED))  # an empty ledger
    for phase, step, mode, outcome in (
        ("1a", "1a__x", "apply", "applied"),
        ("1b", "1b__x", "apply", "applied"),
        ("1c", "1c__x", "apply", "failed"),  # tried, never applied
        ("1b", "1b__x", "revert", "reverted"),  # 1B applied later than 1A, then reverted
    ):
        conn.execute(LEDGER_ROW, (phase, step, mode, outcome))
    assert revert_dags._phase(conn, _context(revert_dags.LAST_APPLIED)) == "1a"
    assert revert_dags._phase(conn, _context("1b")) == "1b"  # a phase chosen in the form is taken as is
    assert "'last applied'" in revert_dags._resolved("1a", _context(revert_dags.LAST_APPLIED))
