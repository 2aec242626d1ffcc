"""What an approval authorises (plugins/ple/approval.py), on a real database: its scope, one run
unless standing, a rejection's veto until a later approval, revocation; and the executor writing
only under an approval in force for the phase it applies."""

import psycopg
import pytest

from ple import approval
from ple.errors import NotApproved
from ple.reorg import decisions
from ple.reorg.plan import load
from tests.reorg_helpers import executor, run_phase


def _plan_fp(conn) -> approval.Fingerprint:
    return decisions.fingerprint(load(), decisions.for_connection(conn))


def _phase_fp(conn, phase_id: str) -> approval.Fingerprint:
    return _plan_fp(conn).scoped(approval.phase_scope(phase_id))


def test_a_phase_approval_covers_that_phase_only_and_the_whole_plan_covers_every_phase(conn):
    approval.approve(conn, _phase_fp(conn, "1c"), "ada")
    assert approval.current(conn, _phase_fp(conn, "1c")) is not None
    assert approval.current(conn, _phase_fp(conn, "1b")) is None
    assert approval.current(conn, _plan_fp(conn)) is None  # a phase never authorises the plan
    approval.approve(conn, _plan_fp(conn), "ada")
    assert approval.current(conn, _phase_fp(conn, "1b"))["scope"] == "plan"


def test_an_approval_authorises_one_run_per_scope_unless_standing(conn):
    fp = _phase_fp(conn, "1c")
    approval.approve(conn, fp, "ada")
    approval.require(conn, fp, run_id="run-1")
    approval.require(conn, fp, run_id="run-1")  # the same run, again: a retry, a resumed task
    with pytest.raises(NotApproved, match="once, for run run-1; a later run asks again"):
        approval.require(conn, fp, run_id="run-2")
    standing = approval.approve(conn, fp, "ada", standing=True)
    assert approval.require(conn, fp, run_id="run-2")["approval_id"] == standing
    assert approval.require(conn, fp, run_id="run-3")["approval_id"] == standing


def test_a_plan_approval_authorises_each_phase_once(conn):
    approval.approve(conn, _plan_fp(conn), "ada")
    approval.require(conn, _phase_fp(conn, "1a"), run_id="run-1")
    approval.require(conn, _phase_fp(conn, "1b"), run_id="run-2")  # another phase: its own first use
    with pytest.raises(NotApproved):
        approval.require(conn, _phase_fp(conn, "1a"), run_id="run-3")


def test_an_approval_answering_a_request_is_bound_to_that_run(conn):
    fp = _phase_fp(conn, "1c")
    approval.approve(conn, fp, "ada", for_run="asked-here")
    assert approval.current(conn, fp, "another-run") is None
    with pytest.raises(NotApproved, match="the run whose request it answered"):
        approval.require(conn, fp, run_id="another-run")
    approval.require(conn, fp, run_id="asked-here")


def test_a_rejection_vetoes_its_scope_until_approved_again(conn):
    approval.approve(conn, _plan_fp(conn), "ada", standing=True)
    approval.reject(conn, _phase_fp(conn, "1l"), "grace")
    with pytest.raises(NotApproved, match="phase 1l was rejected by grace"):
        approval.require(conn, _phase_fp(conn, "1l"), run_id="r")
    approval.require(conn, _phase_fp(conn, "1c"), run_id="r")  # the plan approval still covers 1c
    approval.approve(conn, _phase_fp(conn, "1l"), "ada")
    approval.require(conn, _phase_fp(conn, "1l"), run_id="r")
    approval.reject(conn, _plan_fp(conn), "grace")  # rejecting the whole plan vetoes every phase
    for phase_id in ("1c", "1l"):
        assert approval.current(conn, _phase_fp(conn, phase_id), "r") is None


def test_revoking_an_approval_stops_the_next_check_and_revoking_a_rejection_lifts_the_veto(conn):
    fp = _phase_fp(conn, "1c")
    given = approval.approve(conn, fp, "ada", standing=True)
    approval.revoke(conn, given, "grace", "wrong database")
    with pytest.raises(NotApproved):
        approval.require(conn, fp, run_id="r")
    again = approval.approve(conn, fp, "ada", standing=True)
    veto = approval.reject(conn, fp, "grace")
    assert approval.current(conn, fp, "r") is None
    approval.revoke(conn, veto, "grace")
    assert approval.current(conn, fp, "r")["approval_id"] == again
    listed = {row["approval_id"]: row for row in approval.listing(conn)}
    assert listed[given]["revoked_by"] == "grace" and listed[given]["revoke_reason"] == "wrong database"
    assert [u["run_id"] for u in listed[again]["used"]] == []


def test_the_executor_applies_a_phase_only_under_its_approval_and_records_the_run_that_used_it(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approval.approve(conn, _phase_fp(conn, "1a"), "ada")
        with pytest.raises(NotApproved):
            executor(conn, mode="apply", run_id="apply-1b").preflight("1b")
        run_phase(executor(conn, mode="apply", run_id="apply-1a"), "1a")
        used = approval.listing(conn)[0]["used"]
        assert {u["run_id"] for u in used} == {"apply-1a"} and {u["scope"] for u in used} == {"phase 1a"}
        with pytest.raises(NotApproved, match="once"):  # a second run of 1a asks again
            executor(conn, mode="apply", run_id="apply-1a-again").preflight("1a")


def test_an_approval_given_on_a_rehearsal_covers_only_the_steps_it_rehearsed(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ex = executor(conn, mode="apply", run_id="apply-1a")
        first, second, *_ = [s.step_id for s in ex.plan.phase("1a").steps]
        approval.approve(
            conn,
            _phase_fp(conn, "1a"),
            "ada",
            details={"rehearsal": {"1a": {"status": "rehearsed", "steps": {first: "applied"}}}},
        )
        ex.preflight("1a")
        ex.run_step(first)
        with pytest.raises(NotApproved, match=f"{second} was not rehearsed"):
            ex.run_step(second)
        failed = approval.approve(
            conn, _phase_fp(conn, "1b"), "ada", details={"rehearsal": {"1b": {"status": "failed", "steps": {}}}}
        )
        with pytest.raises(NotApproved, match=f"approval {failed} was given on a rehearsal of phase 1b that failed"):
            executor(conn, mode="apply", run_id="apply-1b").preflight("1b")


def test_the_whole_plan_is_in_force_for_a_run_only_if_no_other_run_used_its_approval(conn):
    approval.approve(conn, _plan_fp(conn), "ada")
    approval.require(conn, _phase_fp(conn, "1a"), run_id="run-1")
    assert approval.current(conn, _plan_fp(conn), "run-1") is not None  # the run that used it goes on
    assert approval.current(conn, _plan_fp(conn), "run-2") is None  # a later whole-plan run asks again
    assert approval.current(conn, _phase_fp(conn, "1b"), "run-2") is not None  # a phase it has not applied
