"""Adversarial: the compatibility views at old names (plugins/ple/reorg/compat.py) must not
change what the tool proves: a write through a MERGE view leaves the merge's proof intact, and
rows written through FOLD views are folded, returned by the revert and folded again."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from ple.errors import PlanRejected
from ple.reorg.actions import fold_sql
from tests.reorg_helpers import approve, approve_revert, count, executor, insert_valid_row, run_phase, table_shape


def test_a_write_through_a_merge_view_before_the_verify_does_not_turn_the_verify_red(conn):
    """Attack: phase 1B merges marketing.failed_company_match and leaves a compatibility view at its
    name, whose INSERT lands in the target with ctb_source_table = the source (compat.py: that is the
    view's promise: 'an INSERT through it lands in the target as the merge writes rows'). The
    application writes one row through the old name between the merge step and the phase's verify
    task (or before a retry of the verify). merge.verify compares count and checksum of every row
    with ctb_source_table = the source against what the merge stored, so the application's row
    makes the verify fail: 'N+1 rows from ... now, N stored by the merge'. Nothing was lost; the
    task is red and says the merged rows are wrong."""
    approve(conn)
    ex = executor(conn, run_id="run-1b")
    ex.preflight("1b")
    for step in ex.declared.phase("1b").steps:
        ex.run_step(step.step_id)
    source = "marketing.failed_company_match"
    insert_valid_row(conn, source, table_shape(conn, ex.plan.archive_name(source)))
    ex.verify("1b")


def test_rows_written_through_every_fold_view_are_folded_returned_by_the_revert_and_folded_again(conn):
    """Attack: an application keeps inserting through the old name of every side table the plan
    folds (JSONB arrays and objects, a pivot, a COLS fold through a bridge), between the fold and
    its verify, across a revert and a re-apply. After each write the phase's verify is green (every
    folded value is still the aggregate of the archived and written rows); the revert puts the
    written rows back into the side tables and proves it; the re-apply folds them; nothing is
    lost and no row is doubled."""

    approve(conn)
    ex = executor(conn)
    phases = sorted({s.phase for s in ex.plan.steps if s.kind == "FOLD"})
    sides = {a.source: s.phase for s in ex.plan.steps if s.kind == "FOLD" for a in s.actions}
    assert len(sides) >= 4, sides
    before = {side: count(conn, side) for side in sides}
    shapes = {side: table_shape(conn, side) for side in sides}
    for cycle in (1, 2):
        for phase in phases:
            run_phase(executor(conn), phase)
        for side in sides:
            insert_valid_row(conn, side, shapes[side])
            with conn.transaction(), pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="refused"):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(*side.split("."))))
        for phase in phases:
            executor(conn).verify(phase)  # raises if a folded value is not its rows' aggregate
        for phase in reversed(phases):
            approve_revert(conn, phase)
            executor(conn).revert_phase(phase)
        for side in sides:
            assert count(conn, side) == before[side] + cycle, side  # the written rows are back, once each
            writes = fold_sql.writes_table(ex.plan.archive_name(side))
            returned = conn.execute(
                sql.SQL("SELECT count(*) FILTER (WHERE ctb_returned_at IS NOT NULL), count(*) FROM {}").format(
                    sql.Identifier(*writes.split("."))
                )
            ).fetchone()
            assert returned == (cycle, cycle), (side, returned)
        approve(conn)


def test_a_written_row_that_can_no_longer_go_back_stops_the_revert_by_name_and_changes_nothing(conn):
    """Attack: a row written through a fold view names a canonical row (its foreign key), which
    the application deletes before the revert (the writes table has no foreign key, so that it
    never constrains live tables). Returning the row into the side table would break the side
    table's foreign key: the step's revert is refused, naming the rows and the fix; nothing is
    changed; once the operator resolves the row, the revert completes."""

    approve(conn)
    ex = executor(conn)
    side = "people.people_sidecar"
    phase = next(s.phase for s in ex.plan.steps if any(a.source == side for a in s.actions))
    shape = table_shape(conn, side)
    rows_before = count(conn, side)
    run_phase(executor(conn), phase)
    insert_valid_row(conn, side, shape)
    writes = sql.Identifier(*fold_sql.writes_table(ex.plan.archive_name(side)).split("."))
    (person,) = conn.execute(sql.SQL("SELECT person_unique_id FROM {}").format(writes)).fetchone()
    (master,) = conn.execute(
        "SELECT to_jsonb(p) FROM people.people_master AS p WHERE unique_id = %s", (person,)
    ).fetchone()
    conn.execute("DELETE FROM people.company_slot WHERE person_unique_id = %s", (person,))
    conn.execute("DELETE FROM people.people_master WHERE unique_id = %s", (person,))
    approve_revert(conn, phase)
    with pytest.raises(PlanRejected, match="cannot go back into it"):
        executor(conn).revert_phase(phase)
    assert conn.execute("SELECT to_regclass(%s) IS NULL", (ex.plan.archive_name(side),)).fetchone()[0] is False
    assert (
        conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ctb_returned_at IS NULL").format(writes)).fetchone()[0] == 1
    )
    conn.execute(  # the operator puts the person back
        "INSERT INTO people.people_master SELECT * FROM jsonb_populate_record(NULL::people.people_master, %s)",
        (Jsonb(master),),
    )
    executor(conn).revert_phase(phase)
    assert count(conn, side) == rows_before + 1


def test_two_writers_of_one_key_through_a_fold_view_both_end_up_in_its_folded_value(fresh_db):
    """Attack: two sessions insert side rows of the same canonical key through the fold view at
    once. Without a lock, the second to commit computes its aggregate on a snapshot without the
    first's row and overwrites the folded value: verify red, the value missing a row. The view
    locks the canonical row first, so the second waits and folds both."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approve(conn)
        ex = executor(conn)
        side = "outreach.dol_url_enrichment"  # a JSONB array of every side row of a key
        phase = next(s.phase for s in ex.plan.steps if any(a.source == side for a in s.actions))
        shape = table_shape(conn, side)
        run_phase(executor(conn), phase)
        first = psycopg.connect(fresh_db)
        insert_valid_row(first, side, shape)  # open transaction: the canonical row is locked
        second = psycopg.connect(fresh_db, autocommit=True)
        waiting = threading.Thread(target=insert_valid_row, args=(second, side, shape))
        waiting.start()
        deadline = time.monotonic() + 30
        while not conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock')",
            (second.info.backend_pid,),
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the second writer never waited for the first"
            time.sleep(0.1)
        first.commit()
        waiting.join(30)
        first.close()
        second.close()
        executor(conn).verify(phase)  # every folded value is its archived and written rows' aggregate
        writes = sql.Identifier(*fold_sql.writes_table(ex.plan.archive_name(side)).split("."))
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(writes)).fetchone()[0] == 2


def test_an_insert_through_a_merge_view_that_leaves_out_its_serial_key_draws_the_next_value(conn):
    """Attack: the application inserts through the old name of a merged source without its
    serial key, as it did into the table. The view takes the table's default, naming the sequence
    by OID: the step moved the table and the sequence it owns to the archive schema, so a default
    copied by name would name a sequence that no longer exists there."""
    source = "outreach.company_target_orphaned_archive"
    conn.execute(f"ALTER TABLE {source} ADD COLUMN rid bigserial")  # a serial key, its sequence owned by the table
    approve(conn)
    ex = executor(conn)
    phase = next(s.phase for s in ex.plan.steps if any(a.source == source for a in s.actions))
    run_phase(executor(conn), phase)
    (default,) = conn.execute(
        "SELECT column_default FROM information_schema.columns WHERE table_schema = 'outreach' "
        "AND table_name = 'company_target_orphaned_archive' AND column_name = 'rid'"
    ).fetchone()
    assert default.startswith("nextval('archive."), default  # the sequence, where it is now
    columns = [
        c
        for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'outreach' "
            "AND table_name = 'company_target_orphaned_archive' AND column_name <> 'rid' ORDER BY ordinal_position"
        ).fetchall()
    ]
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = sql.SQL(", ").join(  # a copy of a row with a key of its own
        sql.SQL("gen_random_uuid()") if c == "target_id" else sql.Identifier(c) for c in columns
    )
    (rid,) = conn.execute(
        sql.SQL(
            "WITH made AS (INSERT INTO outreach.company_target_orphaned_archive ({c}) "
            "SELECT {v} FROM outreach.company_target_orphaned_archive LIMIT 1 RETURNING rid) SELECT rid FROM made"
        ).format(c=listed, v=values)
    ).fetchone()
    assert rid is not None
