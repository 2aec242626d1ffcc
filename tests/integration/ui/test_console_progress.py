"""The console's phase table on real PostgreSQL: its counts are the reconcile table's (computed
here independently, with reconcile itself), its state follows from them, and what a phase left
to do is listed until it is resolved."""

import re
from collections import Counter

import psycopg
import pytest

from ple.catalog import read_catalog
from ple.reorg import decisions, pending, progress, reconcile
from ple.reorg.plan import load
from ple.ui import pages
from tests.reorg_helpers import approve, approve_revert, executor, run_phase

PHASE_ROW = re.compile(
    r"<tr><td>(\w+)</td><td>[^<]*</td><td><span class='\w*'>([^<]*)</span></td>((?:<td[^>]*>[^<]*</td>){9})</tr>"
)


def _phase_table(body: str) -> dict[str, tuple[str, dict[str, int]]]:
    """{phase: (state, counts)} as the page shows them."""
    section = body[body.index("<h2>Phases</h2>") : body.index("<h2>What is left</h2>")]
    shown = {}
    for phase, state, cells in PHASE_ROW.findall(section):
        values = re.findall(r"<td[^>]*>([^<]*)</td>", cells)[: len(pages.PHASE_COLUMNS)]
        shown[phase.lower()] = (
            state,
            dict(zip(pages.PHASE_COLUMNS, (int(v.replace(",", "")) for v in values), strict=True)),
        )
    return shown


def _page(conn) -> str:
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        return pages.reorganization(conn)


def _reconcile_counts(conn) -> dict[str, Counter]:
    """Per phase, the reconcile states and the UNDECIDED marks, straight from reconcile."""
    plan = pending.answered(load(), pending.latest(conn))
    decided = decisions.for_connection(conn)
    verdicts = reconcile.reconcile(conn, plan, read_catalog(conn), None, decisions.effective_plan(plan, decided))
    result: dict[str, Counter] = {}
    for v in verdicts:
        counts = result.setdefault(v.step_id.split("__")[0], Counter())
        counts[v.status.value] += 1
        counts["undecided"] += v.needs_decision and not decided.as_table().get(v.action.source)
    return result


def test_the_twins_phase_counts_are_the_reconcile_tables_and_no_conflicted_phase_reads_not_started(twin_db):
    with psycopg.connect(twin_db, autocommit=True) as conn:
        body = _page(conn)
        expected = _reconcile_counts(conn)
    shown = _phase_table(body)
    assert set(shown) == {p.phase for p in load().phases}
    conflicts = 0
    for phase, (state, counts) in shown.items():
        want = expected.get(phase, Counter())
        for key in ("pending", "conflict", "moot", "applied", "adopted"):
            assert counts[key] == want[key], (phase, key, counts, want)
        questions = len(load().phase(phase).pending)
        assert counts["undecided"] == want["undecided"] + questions, (phase, counts, want)
        conflicts += counts["conflict"]
        if counts["conflict"] or counts["undecided"]:
            assert "not started" not in state, (phase, state)
        assert not re.search(r"\d+/\d+", state), state
    assert conflicts == sum(c["conflict"] for c in expected.values()) > 0  # the hand run's copies
    # the page's own reconcile table says the same
    total = sum(sum(c[s] for s in ("pending", "conflict", "moot", "applied", "adopted")) for c in expected.values())
    assert f"Reconcile: {total} actions (" in body
    assert body.count("<span class='bad'>UNDECIDED</span>") == sum(c["undecided"] for c in expected.values())
    assert "nothing yet" not in body  # an empty table says what it is about
    assert "waiting for" in shown["1l"][0]  # three questions nobody answered


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as connection:
        yield connection


def test_states_follow_apply_1l_answers_revert_and_a_function_a_phase_broke(conn):
    before = _phase_table(_page(conn))
    assert before["1a"][0] == "not started" and before["1a"][1]["pending"] > 0
    assert before["1l"][1]["undecided"] == len(load().phase("1l").pending)

    conn.execute(
        "CREATE FUNCTION public.reads_moved_table() RETURNS bigint LANGUAGE sql AS "
        "$$ SELECT count(*) FROM marketing.review_queue $$"
    )
    for question in load().phase("1l").pending:
        pending.record(conn, load(), question.source, "archive", "Ada", via="test")
    # no compatibility view at its old name (the default would keep the function working)
    decisions.record(
        conn,
        {"database": conn.info.dbname, "actions": {"marketing.review_queue": {"compat": "none"}}},
        "Ada",
        via="test",
    )
    approve(conn)
    run_phase(executor(conn), "1a")
    run_phase(executor(conn), "1l")
    after = _phase_table(_page(conn))
    state, counts = after["1a"]
    assert state == "frozen" and counts["applied"] == before["1a"][1]["pending"] and counts["pending"] == 0
    state, counts = after["1l"]
    assert state == "frozen" and counts["undecided"] == 0, after["1l"]
    assert counts["applied"] == len(load().phase("1l").pending)
    body = _page(conn)
    left = body[body.index("<h2>What is left</h2>") : body.index("<h2>Ledger")]
    assert "public.reads_moved_table() names marketing.review_queue" in left and "UndefinedTable" in left

    conn.execute(
        "CREATE OR REPLACE FUNCTION public.reads_moved_table() RETURNS bigint LANGUAGE sql AS "
        "$$ SELECT count(*) FROM archive.marketing_review_queue_ctb $$"
    )
    body = _page(conn)
    assert "reads_moved_table" not in body[body.index("<h2>What is left</h2>") : body.index("<h2>Ledger")]

    approve_revert(conn, "1a")
    executor(conn).revert_phase("1a")
    state, counts = _phase_table(_page(conn))["1a"]
    assert state == "reverted" and counts["reverted"] == before["1a"][1]["pending"] and counts["applied"] == 0


def test_progress_state_words_never_show_ratios():
    zero = dict.fromkeys(progress.COUNTED, 0)
    assert progress.state_of({**zero, "pending": 4}, 4, 0, None) == ("not started", "")
    assert progress.state_of({**zero, "conflict": 2, "undecided": 2}, 4, 0, None)[0] == "waiting for 2 decision(s)"
    assert progress.state_of({**zero, "applied": 3, "pending": 1}, 4, 3, None)[0] == "partly applied: 3 of 4 actions"
    assert progress.state_of({**zero, "applied": 3, "moot": 1}, 4, 4, "frozen") == ("frozen", "ok")
    assert progress.state_of({**zero, "pending": 4, "reverted": 4}, 4, 0, "reverted")[0] == "reverted"
    adopted_undecided = {**zero, "pending": 2, "adopted": 2, "undecided": 2}
    assert progress.state_of(adopted_undecided, 4, 0, None)[0] == "waiting for 2 decision(s)"


def test_the_data_quality_page_judges_against_the_accepted_baseline_as_the_audit_does(conn):
    """The page's text is the audit's behaviour: a run that regressed from the accepted baseline
    is breached even when the previous run was just as bad, and the page shows that baseline."""
    from ple.audit import history
    from ple.audit.numbers import compute

    history.record(conn, "night_1", compute(conn), 0.1)
    assert history.judge(conn, "night_1", 1.0, 0)[1] == []  # clean: the first baseline
    conn.execute(
        "UPDATE outreach.outreach SET domain = '' WHERE outreach_id IN "
        "(SELECT outreach_id FROM outreach.outreach ORDER BY outreach_id LIMIT 3)"
    )
    for night in ("night_2", "night_3"):
        history.record(conn, night, compute(conn), 0.1)
        assert history.judge(conn, night, 1.0, 0)[1], night  # night 3 equals night 2, and still breaches
    body = pages.data_quality(conn)
    assert "against the <strong>accepted baseline</strong> (not the previous run)" in body
    assert f"Accepted baseline: {history.baseline(conn).describe()}" in body
    assert "Latest run <code>night_3</code>: <span class='bad'>breached</span>" in body
    assert "accept_baseline" in body
    assert "<td>null_domains_on_spine</td><td class=n>0</td><td class=n>3</td><td><span class='bad'>+3</span>" in body
