"""Phase 1L on real PostgreSQL: answers recorded with who and when (append-only), carried out by
the executor under an approval that covers them, proven row by row, idempotent and revertible."""

import psycopg
import pytest

from ple import approval
from ple.errors import BadInput, NotApproved
from ple.reorg import decisions, pending
from ple.reorg.plan import load
from tests import rowcheck
from tests.reorg_helpers import approve, approve_revert, executor, run_phase

ARCHIVED = "company.pipeline_events"
MOVED = "marketing.review_queue"
KEPT = "company.company_source_urls"


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as connection:
        yield connection


def _where(conn, name):
    """The table of that name, if one has it (a compatibility view at an old name is not a table)."""
    found = conn.execute(
        "SELECT to_regclass(%s)::text FROM pg_class WHERE oid = to_regclass(%s) AND relkind IN ('r', 'p')", (name, name)
    ).fetchone()
    return found[0] if found else None


def _answer(conn, table, answer, by):
    return pending.record(conn, load(), table, answer, by, via="test")


def test_questions_offer_each_sub_hub_archive_and_keep_pending(conn):
    plan = load()
    assert [a.source for a in pending.questions(plan)] == [KEPT, ARCHIVED, MOVED]
    offered = pending.choices(plan, pending.question(plan, MOVED))
    assert list(offered) == [*plan.leaf_lock["sub_hubs"], "archive", "keep_pending"]
    assert (offered["people"].action, offered["people"].target) == ("MOVE", "people.review_queue")
    assert (offered["archive"].action, offered["archive"].target) == ("ARCHIVE", "archive.marketing_review_queue_ctb")
    rows = conn.execute("SELECT count(*) FROM marketing.review_queue").fetchone()[0]
    report = pending.report(conn, plan)
    assert f"PENDING {MOVED} ({rows:,} rows)" in report and "answer in force: none" in report


def test_bad_answers_are_refused_and_record_nothing(conn):
    with pytest.raises(BadInput, match="one of company_target, dol"):
        _answer(conn, MOVED, "marketing", "Ada")
    with pytest.raises(BadInput, match="not a pending question"):
        _answer(conn, "company.company_master", "archive", "Ada")
    with pytest.raises(BadInput, match="name of who decided"):
        _answer(conn, MOVED, "archive", " ")
    assert pending.history(conn) == []


def test_answers_are_append_only_the_latest_counts(conn):
    _answer(conn, MOVED, "archive", "Ada")
    _answer(conn, MOVED, "people", "Grace")
    latest = pending.latest(conn)[MOVED]
    assert (latest.answer, latest.decided_by, latest.target) == ("people", "Grace", "people.review_queue")
    assert [(a.answer, a.decided_by) for a in pending.history(conn, MOVED)] == [("archive", "Ada"), ("people", "Grace")]
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE ple_ops.pending_answer SET decided_by = 'Mallory'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("DELETE FROM ple_ops.pending_answer")


def test_a_changed_answer_voids_the_approval_the_same_answer_does_not(conn):
    plan = load()
    before_any = decisions.fingerprint(plan, decisions.for_connection(conn))
    assert "answers_1l" not in before_any.parts  # approvals given before any answer stay valid
    _answer(conn, KEPT, "keep_pending", "Ada")
    assert decisions.fingerprint(plan, decisions.for_connection(conn)) == before_any  # changes nothing
    _answer(conn, MOVED, "people", "Ada")
    approve(conn)
    approved = decisions.fingerprint(plan, decisions.for_connection(conn))
    assert "answers_1l" in approved.parts and approval.current(conn, approved)
    _answer(conn, MOVED, "people", "Grace")  # the same answer again, by someone else
    assert approval.current(conn, decisions.fingerprint(plan, decisions.for_connection(conn)))
    _answer(conn, MOVED, "blog", "Grace")  # another owner (same schema): still another decision
    changed = decisions.fingerprint(plan, decisions.for_connection(conn))
    assert changed.sha256 != approved.sha256 and approval.current(conn, changed) is None
    with pytest.raises(NotApproved):
        run_phase(executor(conn), "1l")
    assert _where(conn, MOVED) == MOVED


def test_plan_mode_shows_the_answers_as_steps_and_writes_nothing(conn):
    _answer(conn, ARCHIVED, "archive", "Ada")
    before = rowcheck.take(conn)
    reports = run_phase(executor(conn, mode="plan"), "1l")
    text = "\n".join(r.text for r in reports)
    assert "1l__archive__company_pipeline_events: would run" in text
    assert "SET SCHEMA" in text
    assert _where(conn, ARCHIVED) == ARCHIVED
    assert rowcheck.missing(before, conn) == []
    assert conn.execute(
        "SELECT to_regclass('ple_ops.action_ledger') IS NULL OR NOT EXISTS (SELECT FROM ple_ops.action_ledger)"
    ).fetchone()[0]


def test_answered_apply_lands_every_row_where_answered_again_changes_nothing_and_reverts(conn):
    before = rowcheck.take(conn)
    counts = pending.live_rows(conn, [ARCHIVED, MOVED, KEPT])
    _answer(conn, ARCHIVED, "archive", "Ada")
    _answer(conn, MOVED, "people", "Grace")
    approve(conn)

    reports = run_phase(executor(conn), "1l")
    assert [r.status for r in reports][1:3] == ["applied", "applied"], [r.text for r in reports]
    assert _where(conn, ARCHIVED) is None and _where(conn, "archive.company_pipeline_events_ctb")
    assert _where(conn, MOVED) is None and _where(conn, "people.review_queue")
    assert _where(conn, KEPT) == KEPT  # unanswered: stays
    assert pending.live_rows(conn, ["archive.company_pipeline_events_ctb", "people.review_queue"]) == {
        "archive.company_pipeline_events_ctb": counts[ARCHIVED],
        "people.review_queue": counts[MOVED],
    }
    assert rowcheck.missing(before, conn) == []
    ledger = conn.execute(
        "SELECT step_id, action, outcome FROM ple_ops.action_ledger WHERE phase = '1l' AND mode = 'apply' "
        "AND action IN ('MOVE', 'ARCHIVE') ORDER BY step_id"
    ).fetchall()
    assert ledger == [
        ("1l__archive__company_pipeline_events", "ARCHIVE", "applied"),
        ("1l__move__marketing_review_queue", "MOVE", "applied"),
    ]
    recorded = conn.execute(
        "SELECT table_name, answer, decided_by, decided_via FROM ple_ops.pending_answer ORDER BY answer_id"
    ).fetchall()
    assert recorded == [(ARCHIVED, "archive", "Ada", "test"), (MOVED, "people", "Grace", "test")]

    moved = rowcheck.take(conn)
    again = run_phase(executor(conn), "1l")
    assert {r.status for r in again[1:3]} == {"already_done"}
    assert rowcheck.missing(moved, conn) == [] and rowcheck.take(conn) == moved

    with pytest.raises(BadInput, match="revert phase 1l first"):
        _answer(conn, MOVED, "archive", "Grace")  # applied: a different answer waits for the revert

    approve_revert(conn, "1l")
    reverted = executor(conn).revert_phase("1l")
    assert reverted[-1].status == "reverted", [r.text for r in reverted]
    assert _where(conn, ARCHIVED) == ARCHIVED and _where(conn, MOVED) == MOVED
    assert rowcheck.missing(before, conn) == []
    _answer(conn, MOVED, "archive", "Grace")  # reverted: it may be decided otherwise now
