"""The decisions' own changes have ledger evidence and revert undoes them: a set-aside hand copy gets
its name back (also on the fold path, which commits the set-aside in a transaction of its own); a
merge target the tool created is dropped by revert only if the ledger says the tool created it and
it is empty again; never a table someone else created, never one that holds rows."""

import threading

import psycopg
import pytest

from ple.catalog import read_catalog
from ple.reorg import decisions
from ple.reorg.actions import create_target
from tests.reconcile_helpers import decide, stale_hand_copy
from tests.reorg_helpers import approve, approve_revert, count, executor, run_phase

HAND_COPY = "archive.bit_phase_state_ctb"
TARGET = "cl.cl_err_existence"  # 1b merges marketing.failed_low_confidence into it, and nothing else does


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


def _oid(conn, table: str):
    return conn.execute("SELECT to_regclass(%s)::oid", (table,)).fetchone()[0]


def _ledger(conn, action: str) -> list[tuple]:
    return conn.execute(
        "SELECT step_id, mode, outcome, target, details FROM ple_ops.action_ledger WHERE action = %s ORDER BY attempt_id",
        (action,),
    ).fetchall()


def _revert(conn, phase: str) -> list:
    approve_revert(conn, phase)
    return executor(conn).revert_phase(phase)


def test_a_set_aside_on_the_fold_path_has_ledger_evidence_and_revert_gives_the_name_back(conn):
    stale_hand_copy(conn, "bit.phase_state", HAND_COPY)
    copy_oid, copy_rows, source_oid = _oid(conn, HAND_COPY), count(conn, HAND_COPY), _oid(conn, "bit.phase_state")
    name = decide(conn)["actions"]["bit.phase_state"]["set_aside"]
    approve(conn)
    reports = run_phase(executor(conn), "1g")
    assert "failed" not in {r.status for r in reports}
    assert _oid(conn, name) == copy_oid and _oid(conn, HAND_COPY) == source_oid
    [(step_id, mode, outcome, target, details)] = _ledger(conn, "SET_ASIDE")
    assert (step_id, mode, outcome, target) == (
        "1g__fold__outreach_bit_scores.set_aside.archive.bit_phase_state_ctb",
        "apply",
        "applied",
        name,
    )
    assert details["set_aside"]["oid"] == copy_oid
    reports = _revert(conn, "1g")
    assert reports[-1].status == "reverted", reports[-1].text
    assert _oid(conn, HAND_COPY) == copy_oid and count(conn, HAND_COPY) == copy_rows  # the hand copy, by OID
    assert _oid(conn, "bit.phase_state") == source_oid and _oid(conn, name) is None
    assert [r[2] for r in _ledger(conn, "SET_ASIDE")] == ["applied", "reverted"]
    assert "set_asides_restored" in next(r for r in reports if r.step_id == "1g__fold__outreach_bit_scores").summary


def _gone_target(conn) -> dict:
    conn.execute(f"DROP TABLE {TARGET} CASCADE")
    definition = decide(conn)["targets"][TARGET]["create"]
    approve(conn)
    return definition


def test_a_created_target_has_ledger_evidence_and_revert_drops_it_once_empty(conn):
    _gone_target(conn)
    ex = executor(conn)
    ex.preflight("1b")
    ex.preflight("1b")  # idempotent: created once
    created = [r for r in _ledger(conn, "CREATE_TARGET") if r[2] == "applied"]
    assert [(r[0], r[3]) for r in created] == [("1b__create__cl_cl_err_existence", TARGET)]
    assert created[0][4]["oid"] == _oid(conn, TARGET)
    reports = run_phase(ex, "1b")
    assert "failed" not in {r.status for r in reports}
    assert count(conn, TARGET) > 0
    reports = _revert(conn, "1b")
    assert reports[-1].status == "reverted", reports[-1].text
    assert "cl.cl_err_existence: created by this tool in phase 1b, empty again: dropped" in reports[-1].text
    assert _oid(conn, TARGET) is None
    assert count(conn, "marketing.failed_low_confidence") > 0  # its rows are back in the source
    assert [r[2] for r in _ledger(conn, "CREATE_TARGET")] == ["applied", "reverted"]


def test_a_created_target_holding_rows_the_tool_did_not_write_is_kept(conn):
    _gone_target(conn)
    run_phase(executor(conn), "1b")
    conn.execute(f"INSERT INTO {TARGET} DEFAULT VALUES")  # the application's row
    reports = _revert(conn, "1b")
    assert reports[-1].status == "reverted", reports[-1].text
    assert "created by this tool, but holds 1 rows the merges' revert did not remove; kept" in reports[-1].text
    assert count(conn, TARGET) == 1


def test_a_target_someone_else_created_is_never_the_tools(conn, fresh_db):
    definition = _gone_target(conn)
    ex = executor(conn)
    statement = create_target.statements(ex.context(read_catalog(conn)), TARGET, definition)[0]
    # another session creates the name while the tool's transaction is deciding: its CREATE waits, then loses
    other = psycopg.connect(fresh_db)
    other.execute(statement.query)
    committer = threading.Timer(0.5, other.commit)
    committer.start()
    try:
        assert create_target.ensure(ex, "1b", TARGET, definition) == "exists"
    finally:
        committer.join()
        other.close()
    assert _ledger(conn, "CREATE_TARGET") == []
    reports = run_phase(ex, "1b")
    assert "failed" not in {r.status for r in reports}
    assert _ledger(conn, "CREATE_TARGET") == []
    reports = _revert(conn, "1b")
    assert reports[-1].status == "reverted", reports[-1].text
    assert _oid(conn, TARGET) is not None  # the other session's table stays
