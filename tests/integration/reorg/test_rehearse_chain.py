"""A request for the whole plan rehearses it (issue 19: approve what was rehearsed): every phase in
order in ONE transaction, each on the state the phases before it leave, then ROLLBACK. A phase that
is not clean ends the chain, and the phases after it say they were not rehearsed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ple.errors import RehearsalFailed
from ple.orchestration.reorg_dags import PARAMS, REHEARSAL_XCOM, render_plan
from ple.reorg.rehearse import rehearse_phases
from tests.reorg_helpers import executor, table_fingerprints


def _phases(ex) -> list[str]:
    return [p.phase for p in ex.plan.phases if p.steps]


def test_the_whole_plan_rehearses_in_order_in_one_transaction_and_nothing_stays(conn):
    before = table_fingerprints(conn)
    ex = executor(conn, mode="rehearse", rehearse_budget_seconds=600)
    report = rehearse_phases(ex, _phases(ex))
    assert report.status == "rehearsed", report.text[-4000:]
    assert {p: r["status"] for p, r in report.summary["phases"].items()} == dict.fromkeys(_phases(ex), "rehearsed")
    assert sum(len(r["steps"]) for r in report.summary["phases"].values()) == sum(
        len(ex.plan.phase(p).steps) for p in _phases(ex)
    )
    assert table_fingerprints(conn) == before  # rolled back: every table as it was
    assert (
        conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NULL").fetchone()[0]
        or not conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE run_id = %s", (ex.run_id,)).fetchone()[0]
    )


def test_a_phase_that_fails_its_rehearsal_ends_the_chain(conn):
    """1B merges into people.people_errors; a trigger there refuses every insert (the lint cannot
    read a trigger's body): 1A rehearses clean, 1B fails, nothing after it is rehearsed."""
    conn.execute(
        "CREATE FUNCTION public.refuse_all() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the application'; END $$"
    )
    conn.execute(
        "CREATE TRIGGER refuse_all BEFORE INSERT ON people.people_errors FOR EACH ROW EXECUTE FUNCTION public.refuse_all()"
    )
    before = table_fingerprints(conn)
    ex = executor(conn, mode="rehearse", rehearse_budget_seconds=600)
    phases = _phases(ex)
    report = rehearse_phases(ex, phases)
    statuses = {p: r["status"] for p, r in report.summary["phases"].items()}
    assert report.status in ("failed", "blocked"), report.text[-4000:]
    assert statuses["1a"] == "rehearsed" and statuses["1b"] == report.status, statuses
    assert all(statuses[p] == "not rehearsed" for p in phases[phases.index("1b") + 1 :]), statuses
    assert "not rehearsed after it" in report.text
    assert table_fingerprints(conn) == before


def _context(pushed: dict) -> dict:
    """What the gate's render reads of its task's context: the run's params, its id, XCom."""

    def xcom_push(key: str, value) -> None:
        pushed[key] = value

    params = {name: getattr(param, "value", param) for name, param in PARAMS.items()}
    return {
        "params": {**params, "mode": "apply"},
        "run_id": "manual__chain",
        "ti": SimpleNamespace(xcom_push=xcom_push),
    }


def test_the_whole_plan_request_shows_its_rehearsal_and_records_it_per_phase(conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", conn.info.dsn)
    pushed: dict = {}
    phases = ["1a", "1b", "1c"]
    summary, _body = render_plan(phases)(conn, _context(pushed))
    assert "**rehearsed** (every phase in order" in summary and "3 phases" in summary, summary
    assert {p: r["status"] for p, r in pushed[REHEARSAL_XCOM].items()} == dict.fromkeys(phases, "rehearsed")


def test_a_whole_plan_request_whose_rehearsal_fails_is_red_before_it_asks(conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", conn.info.dsn)
    conn.execute(
        "CREATE FUNCTION public.refuse_all() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the application'; END $$"
    )
    conn.execute(
        "CREATE TRIGGER refuse_all BEFORE INSERT ON people.people_errors FOR EACH ROW EXECUTE FUNCTION public.refuse_all()"
    )
    pushed: dict = {}
    with pytest.raises(RehearsalFailed):
        render_plan(["1a", "1b", "1c"])(conn, _context(pushed))
    assert REHEARSAL_XCOM not in pushed  # nothing recorded, nothing asked
