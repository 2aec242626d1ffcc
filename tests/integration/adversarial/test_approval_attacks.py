"""Adversarial: approvals mean what they showed. A once-only approval covers one uninterrupted
run; a new decisions version stops a run that read the earlier one; the whole plan is not in force
while one of its phases is rejected; earlier decisions recorded again do not revive approvals."""

from __future__ import annotations

import psycopg
import pytest

from ple import approval
from ple.errors import NotApproved
from ple.reorg import decisions
from ple.reorg.plan import load
from tests.reorg_helpers import approve, approve_revert, executor, run_phase, table_at


def _plan_fp(conn) -> approval.Fingerprint:
    return decisions.fingerprint(load(), decisions.for_connection(conn))


def _phase_fp(conn, phase_id: str) -> approval.Fingerprint:
    return _plan_fp(conn).scoped(approval.phase_scope(phase_id))


def test_a_once_only_approval_does_not_apply_a_phase_again_after_its_revert(fresh_db):
    """Attack: phase 1a approved once (`make approve --phase 1a`, not standing), applied by run A,
    then reverted (its own revert approval). Re-running run A (an Airflow "Clear" of the finished
    run, or `ple.cli run --run-id A`) applies phase 1a a second time under the same once-only
    approval: `_usable` accepts any run that already used it, whatever happened since."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approval.approve(conn, _phase_fp(conn, "1a"), "ada")
        run_phase(executor(conn, run_id="run-A"), "1a")
        assert not table_at(conn, "company.company_slots") and table_at(conn, "archive.company_company_slots_ctb")
        approve_revert(conn, "1a")
        executor(conn, run_id="revert-R").revert_phase("1a")
        assert table_at(conn, "company.company_slots")
        with pytest.raises(NotApproved):
            executor(conn, run_id="run-A").preflight("1a")


def test_a_new_decisions_version_stops_a_run_that_read_the_earlier_one(conn):
    """Attack: the whole plan approved (standing) under decisions v1; a run starts (its executor
    reads the decisions once: every Airflow task, and `ple.cli run` for all the phases it runs);
    meanwhile someone records v2, deciding to skip company.company_slots. The record says 'in force
    from now: it voids approvals of the earlier one', but the running executor re-checks its cached
    v1 fingerprint, which the v1 approval still matches, and archives company.company_slots against
    the decision in force. (The 1L answers are re-read in every transaction for exactly this
    reason: approval._answers_unchanged; the decisions are not.)"""
    decisions.record(conn, {"database": conn.info.dbname, "actions": {}}, "Ada", via="test")
    approve(conn)  # standing, of the plan under v1
    ex = executor(conn, run_id="run-started-under-v1")
    decisions.record(
        conn,
        {"database": conn.info.dbname, "actions": {"company.company_slots": {"skip": "still in use by billing"}}},
        "Grace",
        via="test",
    )
    assert approval.current(conn, _phase_fp(conn, "1a"), "run-started-under-v1") is None  # voided for a new run
    try:
        with pytest.raises(NotApproved):
            run_phase(ex, "1a")
    finally:
        assert table_at(conn, "company.company_slots"), "archived although the decision in force says skip"


def test_the_whole_plan_is_not_in_force_while_one_of_its_phases_is_rejected(conn):
    """Attack: a standing approval of the whole plan, then a rejection of phase 1c. The
    ctb_reorganization gate asks `approval.current` for the plan scope, whose covering query only
    considers rejections of the scope `plan`: it logs 'in force: standing approval ... not asking
    again' for the whole plan (every phase), although 1c is vetoed; the run then writes phases
    1a and 1b and goes red at 1c. What the gate says is not what holds."""
    approval.approve(conn, _plan_fp(conn), "ada", standing=True)
    approval.reject(conn, _phase_fp(conn, "1c"), "grace")
    assert approval.current(conn, _phase_fp(conn, "1c"), "r") is None  # the executor honours it
    assert approval.current(conn, _plan_fp(conn), "r") is None  # the whole plan's gate does not


def test_recording_earlier_decisions_again_does_not_revive_approvals_they_voided(conn):
    """Attack: decisions v1 (A) approved standing; v2 (B) recorded: 'approvals of earlier
    decisions no longer hold' (ctb_decide's log, decisions.record). v3 re-records A (an import of
    the old file, a revert of the decision): the v1 approval is in force again, without anyone
    approving again, because the fingerprint holds the content's SHA-256, not the version."""
    a = {"database": conn.info.dbname, "actions": {"company.company_slots": {"compat": "none"}}}
    b = {"database": conn.info.dbname, "actions": {"company.company_slots": {"skip": "still in use by billing"}}}
    decisions.record(conn, a, "Ada", via="test")
    approval.approve(conn, _plan_fp(conn), "ada", standing=True)
    decisions.record(conn, b, "Grace", via="test")
    assert approval.current(conn, _phase_fp(conn, "1a"), "r") is None
    decisions.record(conn, a, "Grace", via="test")
    assert approval.current(conn, _phase_fp(conn, "1a"), "r") is None
