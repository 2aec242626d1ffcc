"""The minimal examples the properties found, one deterministic test each: each failed before the
engine's fix (issue 19) and guards it since."""

from __future__ import annotations

import psycopg
import pytest

from ple.reorg import revert as revert_module
from ple.reorg.actions import fold as fold_module
from tests import rowcheck
from tests.property import rows
from tests.property.phases import apply_phase, chk_status, lint_and_plan
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve_revert, end_state, executor


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


def test_1g_lint_crashes_on_a_text_side_key_joined_through_a_uuid_bridge(fresh_clone):
    """Minimal example: the side table's key column as text (the same values)."""
    with fresh_clone() as conn:
        conn.execute("ALTER TABLE bit.phase_state ALTER COLUMN company_unique_id TYPE text")
        _lint_clear_means_apply(conn, "1g")


def test_revert_keeps_the_values_of_a_column_the_application_added_to_a_merge_target(fresh_clone):
    """Apply 1B; the application adds people.people_errors.app_note and writes a value into it
    on every row, merged copies included; revert 1B: every one of those values is still somewhere
    (in the table, or in a JSONB copy of its row)."""
    with fresh_clone() as conn:
        assert apply_phase(conn, "1b") is None
        conn.execute("ALTER TABLE people.people_errors ADD COLUMN app_note text")
        conn.execute("UPDATE people.people_errors SET app_note = 'app-note-' || error_id::text")
        oid = conn.execute("SELECT 'people.people_errors'::regclass::oid").fetchone()[0]
        written = [
            r[0] for r in conn.execute("SELECT app_note FROM people.people_errors WHERE ctb_source_table IS NOT NULL")
        ]
        assert written
        before = rows.take(conn, ["1b"])
        approve_revert(conn, "1b")
        reports = executor(conn).revert_phase("1b")
        assert reports[-1].status == "reverted", reports[-1].text
        assert rowcheck.missing(before, conn) == []
        lost = [v for v in written if rows.tag_count(conn, oid, "app_note", v) == 0]
        assert lost == [], f"{len(lost)} of {len(written)} app_note values written into merged copies are gone"


def test_a_set_aside_put_back_by_revert_converges(fresh_clone):
    """Minimal example: on the twin, decided (decide --accept proposed: the hand copies of
    company.company_master and company.company_slots set aside), apply 1A, revert 1A (the set-aside
    copies get their names back), revert 1A again: it must have nothing to do; apply 1A again."""
    with fresh_clone(twin=True) as conn:
        decide(conn)
        assert apply_phase(conn, "1a") is None
        before = rows.take(conn, ["1a"])
        approve_revert(conn, "1a")
        assert executor(conn).revert_phase("1a")[-1].status == "reverted"
        assert rowcheck.missing(before, conn) == []
        state = end_state(conn)
        again = executor(conn).revert_phase("1a")
        assert [r.status for r in again[:-1]] == ["already_done"] * (len(again) - 1), [r.text for r in again]
        assert end_state(conn) == state
        assert apply_phase(conn, "1a") is None
        assert rowcheck.missing(before, conn) == []


def test_a_killed_revert_resumes_after_a_set_aside_was_put_back(fresh_clone, monkeypatch):
    """Minimal example (found by the state machine: revert 1b killed at statement 197): on the
    twin, decided, apply 1B; revert 1B, its backend terminated right after the first step
    commits; run the revert again: it must finish."""
    with fresh_clone(twin=True) as conn:
        decide(conn)
        assert apply_phase(conn, "1b") is None
        before = rows.take(conn, ["1b"])
        approve_revert(conn, "1b")
        dsn = conn.info.dsn
        real_step = revert_module._revert_step
        killed = []

        def step_then_killed(ex, step, fp):
            outcome = real_step(ex, step, fp)
            if not killed:
                killed.append(step.step_id)
                with psycopg.connect(dsn, autocommit=True) as killer:
                    killer.execute("SELECT pg_terminate_backend(%s, 5000)", (ex.conn.info.backend_pid,))
            return outcome

        monkeypatch.setattr(revert_module, "_revert_step", step_then_killed)
        with psycopg.connect(dsn, autocommit=True) as victim, pytest.raises(psycopg.OperationalError):
            executor(victim).revert_phase("1b")
        assert killed == ["1b__merge__marketing_failed_slot_assignment"]
        monkeypatch.setattr(revert_module, "_revert_step", real_step)
        with psycopg.connect(dsn, autocommit=True) as again:
            assert executor(again).revert_phase("1b")[-1].status == "reverted"
            assert rowcheck.missing(before, again) == []


@pytest.mark.parametrize("twin", [False, True], ids=["pre-plan", "twin-decided"])
def test_a_fold_killed_before_its_update_resumes(fresh_clone, monkeypatch, twin):
    """Apply 1G with the backend terminated right before the fold of outreach.dol updates (its new
    column committed and, on the decided twin, its set-aside too); apply 1G again: it must finish.
    Pre-plan: reconcile took the fold's own created column for a conflict. Twin (found by the state
    machine at statement 193): the re-run's lint crashed with KeyError('occupant')."""
    with fresh_clone(twin=twin) as conn:
        if twin:
            decide(conn)
        before = rows.take(conn, ["1g"])
        dsn = conn.info.dsn
        real_fold = fold_module._fold
        killed = []

        def killed_before_the_update(ctx, step):
            if step.target == "outreach.dol" and not killed:
                killed.append(step.step_id)
                with psycopg.connect(dsn, autocommit=True) as killer:
                    killer.execute("SELECT pg_terminate_backend(%s, 5000)", (ctx.conn.info.backend_pid,))
            return real_fold(ctx, step)

        monkeypatch.setattr(fold_module, "_fold", killed_before_the_update)
        with psycopg.connect(dsn, autocommit=True) as victim:
            assert isinstance(apply_phase(victim, "1g"), psycopg.OperationalError)
        assert killed == ["1g__fold__outreach_dol"]
        monkeypatch.setattr(fold_module, "_fold", real_fold)
        with psycopg.connect(dsn, autocommit=True) as again:
            error = apply_phase(again, "1g")
            assert error is None, f"apply 1G after the kill: {error!r}"
            assert rowcheck.missing(before, again) == []


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_1b_lint_misses_a_numeric_infinity_going_into_an_integer(fresh_clone, value):
    """Minimal example (found by the 1B property): one source row with fuzzy_score = 'Infinity'
    (the source's numeric column allows it)."""
    with fresh_clone() as conn:
        conn.execute(
            "UPDATE marketing.failed_low_confidence SET fuzzy_score = %s::numeric "
            "WHERE id = (SELECT min(id) FROM marketing.failed_low_confidence)",
            (value,),
        )
        _lint_clear_means_apply(conn, "1b")
