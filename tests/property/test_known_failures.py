"""The minimal examples the properties found, one deterministic test each, marked xfail(strict)
until the engine is fixed: each flips to XPASS (and fails the run) the day its fix lands. When one
flips, remove its xfail mark and its entry in phases.KNOWN_FAILURES."""

from __future__ import annotations

import pytest

from tests import rowcheck
from tests.property.phases import apply_phase, chk_status, lint_and_plan


@pytest.mark.xfail(
    strict=True,
    reason="1B: lint/plan call the phase clear, apply stops with CheckViolation on chk_status: guards._constants "
    "takes people.people_errors.status's fill rule {from: [status, resolution_status, validation_status], value: open} "
    "for its fallback constant 'open' and never checks the source values the rule copies",
)
def test_1b_lint_misses_chk_status_against_resolution_status(fresh_clone):
    """Minimal example: one source row with resolution_status = 'closed' (the source's varchar(50)
    allows it; chk_status allows the table's own status values and 'open')."""
    with fresh_clone() as conn:
        chk_status(conn)
        conn.execute(
            "UPDATE marketing.failed_email_verification SET resolution_status = 'closed' "
            "WHERE id = (SELECT min(id) FROM marketing.failed_email_verification)"
        )
        blocking = lint_and_plan(conn, "1b")
        rows = rowcheck.take(conn)
        error = apply_phase(conn, "1b")
        assert rowcheck.missing(rows, conn) == []
        assert blocking or error is None, f"lint and plan mode called 1b clear, apply failed: {error!r}"
