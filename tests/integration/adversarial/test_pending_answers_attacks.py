"""Adversarial: Phase 1L answers. The promise (reorg/pending.py): "the answer in force is always the
one that explains where the table is"; a changed answer voids the approval."""

import pytest

from ple.errors import NotApproved, PlanRejected
from ple.reorg import pending
from ple.reorg.plan import load
from tests.reorg_helpers import approve, executor

MOVED = "marketing.review_queue"


def _where(conn, name):
    return conn.execute("SELECT to_regclass(%s)::text", (name,)).fetchone()[0]


def _answer(conn, table, answer, by):
    return pending.record(conn, load(), table, answer, by, via="test")


def test_an_answer_changed_while_phase_1l_runs_is_never_contradicted_by_the_table(conn):
    _answer(conn, MOVED, "people", "Ada")
    approve(conn)
    ex = executor(conn)  # the carry-out task starts: answers and approval read
    ex.preflight("1l")
    _answer(conn, MOVED, "archive", "Grace")  # meanwhile another person answers otherwise (CLI or the UI)
    try:
        for step in ex.declared.phase("1l").steps:
            ex.run_step(step.step_id)
    except (NotApproved, PlanRejected):
        pass  # refusing the stale answer is a correct outcome
    in_force = pending.latest(conn)[MOVED]
    assert _where(conn, "people.review_queue") is None, (
        f"the answer in force for {MOVED} is {in_force.answer!r} ({in_force.action} -> {in_force.target}), but the run "
        "carried out the earlier answer: the table is now people.review_queue. Re-answering 'people' is refused "
        "(pending.record: 'its answer archive is applied'), and revert of 1l follows the answer in force"
    )


def test_after_a_stale_answer_is_refused_the_answer_in_force_runs_once_approved(conn):
    _answer(conn, MOVED, "people", "Ada")
    approve(conn)
    ex = executor(conn)
    ex.preflight("1l")
    _answer(conn, MOVED, "archive", "Grace")
    with pytest.raises(NotApproved, match="1L answers changed"):
        for step in ex.declared.phase("1l").steps:
            ex.run_step(step.step_id)
    assert _where(conn, MOVED) == MOVED  # nothing of the stale answer was carried out
    approve(conn)  # the answers in force, approved
    ex = executor(conn)
    ex.preflight("1l")
    for step in ex.declared.phase("1l").steps:
        ex.run_step(step.step_id)
    assert ex.verify("1l").status == "applied"
    assert _where(conn, "archive.marketing_review_queue_ctb") == "archive.marketing_review_queue_ctb"


def test_an_answer_for_a_table_that_vanished_is_refused_at_apply_and_changes_nothing(conn):
    from tests.reorg_helpers import end_state

    conn.execute(f"DROP TABLE {MOVED}")  # gone before the answer is carried out
    _answer(conn, MOVED, "people", "Ada")
    approve(conn)
    state = end_state(conn)
    ex = executor(conn)
    with pytest.raises((PlanRejected, NotApproved)) as refused:
        ex.preflight("1l")
        for step in ex.declared.phase("1l").steps:
            ex.run_step(step.step_id)
    assert MOVED in str(refused.value)
    assert end_state(conn) == state
