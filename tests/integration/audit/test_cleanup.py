"""The Phase 2C cleanup on the fixture: fixes what it addresses, saves everything it changes or
removes, changes nothing the second time, and can be undone."""

import csv

from ple.audit import cleanup
from ple.audit.numbers import compute
from tests.reorg_helpers import end_state


def inject_defects(conn):
    """The defects the fixture (like the plan's audit) has none of: NULL spine domains, orphan slots."""
    conn.execute(
        "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach ORDER BY outreach_id LIMIT 4)"
    )
    fk = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'people.company_slot'::regclass AND contype = 'f'"
    ).fetchone()[0]
    conn.execute(f'ALTER TABLE people.company_slot DROP CONSTRAINT "{fk}"')
    conn.execute(
        "UPDATE people.company_slot SET outreach_id = gen_random_uuid() WHERE slot_id IN (SELECT slot_id FROM people.company_slot ORDER BY slot_id DESC LIMIT 7)"
    )


def run_all(conn, run_id, apply, tmp_path):
    return {step: cleanup.run_step(conn, step, run_id, apply=apply, artifacts=tmp_path) for step in cleanup.STEPS}


def test_plan_mode_counts_and_writes_nothing(conn, tmp_path):
    inject_defects(conn)
    state = end_state(conn)
    results = run_all(conn, "preview", False, tmp_path)
    assert results["backfill_null_domains"].rows_touched == 4
    assert results["remove_orphan_slots"].rows_touched == 7
    assert results["dedupe_emails"].rows_touched == compute(conn)["duplicate_emails_in_people_master"]
    assert end_state(conn) == state
    assert not list(tmp_path.iterdir())


def test_apply_fixes_the_defects_loses_no_row_and_a_second_apply_changes_nothing(conn, tmp_path):
    inject_defects(conn)
    before = compute(conn)
    people_before = conn.execute("SELECT count(*) FROM people.people_master").fetchone()[0]
    slots_before = conn.execute("SELECT count(*) FROM people.company_slot").fetchone()[0]
    results = run_all(conn, "run-1", True, tmp_path)
    after = compute(conn)
    assert after["null_domains_on_spine"] == 0
    assert after["orphan_slots"] == 0
    assert after["duplicate_emails_in_people_master"] == 0
    orphaned_by_slot_removal = conn.execute(
        "SELECT count(DISTINCT a.person_unique_id) FROM archive.people_company_slot_2c a WHERE a.ctb_2c_action = 'delete' "
        "AND NOT EXISTS (SELECT 1 FROM people.company_slot s WHERE s.person_unique_id = a.person_unique_id)"
    ).fetchone()[0]
    attached = results["attach_orphan_people"].rows_touched
    assert attached > 0
    assert (
        after["orphan_people"]
        == results["attach_orphan_people"].details["orphans_left_unattached"] + orphaned_by_slot_removal
    )
    # duplicate domains are exported for a manual merge, not changed
    with open(results["export_duplicate_domains"].artifact, newline="") as handle:
        assert (
            len(list(csv.DictReader(handle)))
            == before["duplicate_domains_on_spine"]
            == after["duplicate_domains_on_spine"]
        )
    # every row removed is in the archive, with the run id
    removed_people = conn.execute(
        "SELECT count(*) FROM archive.people_people_master_2c WHERE ctb_2c_run_id = 'run-1' AND ctb_2c_action = 'delete'"
    ).fetchone()[0]
    assert removed_people == before["duplicate_emails_in_people_master"]
    assert conn.execute("SELECT count(*) FROM people.people_master").fetchone()[0] + removed_people == people_before
    removed_slots = conn.execute(
        "SELECT count(*) FROM archive.people_company_slot_2c WHERE ctb_2c_run_id = 'run-1' AND ctb_2c_action = 'delete'"
    ).fetchone()[0]
    assert (
        removed_slots == 7
        and conn.execute("SELECT count(*) FROM people.company_slot").fetchone()[0] == slots_before - 7
    )
    missing = conn.execute(
        "SELECT count(*) FROM archive.people_people_master_2c a WHERE ctb_2c_action = 'delete' "
        "AND NOT EXISTS (SELECT 1 FROM people.people_master p WHERE p.email = a.email)"
    ).fetchone()[0]
    assert missing == 0  # each removed duplicate's email lives on in its survivor
    state = end_state(conn)
    again = run_all(conn, "run-2", True, tmp_path)
    assert {s: r.rows_touched for s, r in again.items()} == dict.fromkeys(cleanup.STEPS, 0)
    assert end_state(conn) == state


def test_undo_puts_every_row_back(conn, tmp_path):
    inject_defects(conn)
    user_tables = lambda state: {k: v for k, v in state.items() if not k.startswith("archive.")}  # noqa: E731
    original = user_tables(end_state(conn))
    run_all(conn, "run-1", True, tmp_path)
    assert user_tables(end_state(conn)) != original
    restored = cleanup.undo(conn, "run-1")
    assert restored
    assert user_tables(end_state(conn)) == original
