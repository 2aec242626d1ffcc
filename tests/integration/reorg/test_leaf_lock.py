"""Phase 2, the leaf lock, on real PostgreSQL after the whole of Phase 1 (1L answered included):
every Phase 2 table and every table a 1L answer moved is assigned; a new table in a leaf schema
without an assignment is refused; plan mode writes nothing."""

import psycopg
import pytest

from ple.reorg import leaf_lock, pending
from ple.reorg.plan import load
from tests import rowcheck
from tests.reorg_helpers import approve, executor, run_all

MOVED = "marketing.review_queue"


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as connection:
        yield connection


def test_leaf_lock_assigns_phase_2_and_1l_tables_and_refuses_a_new_table(conn):
    plan = load()
    pending.record(conn, plan, MOVED, "people", "Grace", via="test")
    refused = leaf_lock.run(conn, plan, "lock_early", apply=False)
    assert "Phase 1 phases not yet frozen: 1a" in refused and "1l" in refused

    approve(conn)
    reports = run_all(executor(conn))
    assert {r.status for r in reports} <= {"ok", "applied", "verified", "frozen", "already_done"}, [
        r.text for r in reports if r.status not in {"ok", "applied", "verified", "frozen", "already_done"}
    ]
    before = rowcheck.take(conn)
    shown = leaf_lock.run(conn, plan, "lock_plan", apply=False)
    assert "Phase 1 phases not yet frozen: none" in shown and "DECIDED_1L" in shown and "people.review_queue" in shown
    assert "plan mode: nothing written" in shown
    assert conn.execute(
        "SELECT to_regclass('ple_ops.leaf_lock') IS NULL OR NOT EXISTS (SELECT FROM ple_ops.leaf_lock)"
    ).fetchone()[0]

    text = leaf_lock.run(conn, plan, "lock_apply", apply=True)
    assert "enforcement event_trigger" in text
    assigned = dict(
        conn.execute("SELECT table_name, sub_hub || ' ' || ctb_class FROM ple_ops.ctb_path_assignment").fetchall()
    )
    assert assigned["people.review_queue"] == "people DECIDED_1L"
    assert assigned["people.people_master"] == "people CANONICAL"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no CTB path assignment"):
        conn.execute("CREATE TABLE people.unassigned_scratch (id int)")
    conn.execute("CREATE TABLE public.scratch_outside_the_leaves (id int)")  # not a leaf schema
    assert rowcheck.missing(before, conn) == []
