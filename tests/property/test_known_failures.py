"""The minimal examples the properties found, one deterministic test each, marked xfail(strict)
until the engine is fixed: each flips to XPASS (and fails the run) the day its fix lands. When one
flips, remove its xfail mark and its entry in phases.KNOWN_FAILURES."""

from __future__ import annotations

import pytest

from tests import rowcheck
from tests.property import rows
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
        before = rows.take(conn, ["1b"])
        error = apply_phase(conn, "1b")
        assert rowcheck.missing(before, conn) == []
        assert blocking or error is None, f"lint and plan mode called 1b clear, apply failed: {error!r}"


def _lint_clear_means_apply(conn, phase_id: str) -> None:
    """Rule one and rule zero for one phase: lint and plan mode run (no crash); if they call the
    phase clear, apply runs through; no row is lost either way."""
    blocking = lint_and_plan(conn, phase_id)
    before = rows.take(conn, [phase_id])
    error = apply_phase(conn, phase_id)
    assert rowcheck.missing(before, conn) == []
    assert blocking or error is None, f"lint and plan mode called {phase_id} clear, apply failed: {error!r}"


@pytest.mark.xfail(
    strict=True,
    reason="1G: lint crashes with UndefinedFunction 'operator does not exist: uuid = text' in fold.side_counts "
    "(lint._lint_fold) when the side table bit.phase_state keeps company_unique_id as text while the bridge "
    "cl.company_identity.company_unique_id is uuid; lint checks only the bridge's target type against the canonical key",
)
def test_1g_lint_crashes_on_a_text_side_key_joined_through_a_uuid_bridge(fresh_clone):
    """Minimal example: the side table's key column as text (the same values)."""
    with fresh_clone() as conn:
        conn.execute("ALTER TABLE bit.phase_state ALTER COLUMN company_unique_id TYPE text")
        _lint_clear_means_apply(conn, "1g")
