"""The Phase 2C cleanup on every fixture: previewed, approved, archive-first under a concurrent
writer, groups of any size, guards reported before anything is written, and an honest undo."""

import csv
import threading
import time

import psycopg
import pytest

from ple import cleanup
from ple.audit.numbers import compute
from ple.errors import NotApproved
from tests.integration.audit.defects import duplicates_to_remove, inject_defects
from tests.reorg_helpers import end_state


def approve(conn) -> cleanup.Preview:
    shown = cleanup.preview(conn)
    cleanup.approve(conn, shown, "pytest", via="test")
    return shown


def approve_and_apply(conn, run_id, tmp_path):
    approve(conn)
    return cleanup.apply(conn, run_id, tmp_path)


def user_tables(state):
    return {k: v for k, v in state.items() if not k.startswith("archive.")}


def stamped_tables(conn) -> list[str]:
    """Tables with a BEFORE UPDATE trigger (the twin's set_updated_at): an undo re-stamps them."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal AND tgtype & 18 = 18"
        )
    ]


def without_updated_at(conn, tables) -> dict[str, tuple]:
    return {
        t: conn.execute(
            f"SELECT count(*), coalesce(sum(hashtextextended((to_jsonb(x) - 'updated_at')::text, 0)), 0) FROM {t} x"
        ).fetchone()
        for t in tables
    }


def snapshot(conn):
    """What an undo must bring back: every user table, and the stamped ones without updated_at."""
    return user_tables(end_state(conn)), without_updated_at(conn, stamped_tables(conn))


def assert_restored(conn, before, report):
    """Every user table as before; a table whose restore fired a BEFORE UPDATE trigger (reported
    in the undo's notes) as before in every column but the updated_at the trigger stamped."""
    tables, stamped = before
    noted = {t for t in stamped if any(f":{t}:" in note for note in report.notes)}
    now = user_tables(end_state(conn))
    assert {k: v for k, v in now.items() if k not in noted} == {k: v for k, v in tables.items() if k not in noted}
    assert without_updated_at(conn, noted) == {t: stamped[t] for t in noted}


def test_the_preview_counts_what_apply_would_touch_and_writes_nothing(conn, tmp_path):
    inject_defects(conn)
    state = end_state(conn)
    shown = cleanup.preview(conn)
    assert shown.results["backfill_null_domains"].rows_touched == 4
    assert shown.results["remove_orphan_slots"].rows_touched == 7
    assert shown.results["dedupe_emails"].rows_touched == duplicates_to_remove(conn)
    assert not any(r.blocked for r in shown.results.values())
    assert end_state(conn) == state
    assert not list(tmp_path.iterdir())
    assert cleanup.preview(conn).fingerprint == shown.fingerprint  # the same data, the same preview


def test_an_unapproved_apply_is_refused_and_changes_nothing(conn, tmp_path):
    inject_defects(conn)
    state = end_state(conn)
    with pytest.raises(NotApproved, match=r"no recorded approval.*approve"):
        cleanup.apply(conn, "unapproved", tmp_path)
    assert end_state(conn) == state
    assert conn.execute("SELECT count(*) FROM ple_ops.cleanup_ledger").fetchone()[0] == 0


def test_an_apply_whose_counts_moved_since_the_approved_preview_is_refused(conn, tmp_path):
    inject_defects(conn)
    approved = approve(conn)
    conn.execute(  # one more duplicate after the approval
        "UPDATE people.people_master SET email = (SELECT min(email) FROM people.people_master WHERE email <> '') "
        "WHERE unique_id = (SELECT max(unique_id) FROM people.people_master)"
    )
    state = end_state(conn)
    with pytest.raises(NotApproved, match=r"no longer match the preview pytest approved.*dedupe_emails.*approve again"):
        cleanup.apply(conn, "stale", tmp_path)
    assert end_state(conn) == state
    results = approve_and_apply(conn, "fresh", tmp_path)
    assert results["dedupe_emails"].rows_touched == approved.results["dedupe_emails"].rows_touched + 1


def test_apply_fixes_the_defects_loses_no_row_and_a_second_apply_changes_nothing(conn, tmp_path):
    inject_defects(conn)
    before = compute(conn)
    to_remove = duplicates_to_remove(conn)
    people_before = conn.execute("SELECT count(*) FROM people.people_master").fetchone()[0]
    slots_before = conn.execute("SELECT count(*) FROM people.company_slot").fetchone()[0]
    results = approve_and_apply(conn, "run-1", tmp_path)
    after = compute(conn)
    assert after["null_domains_on_spine"] == after["orphan_slots"] == after["duplicate_emails_in_people_master"] == 0
    with open(results["export_duplicate_domains"].artifact, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == before["duplicate_domains_on_spine"]
    removed_people = conn.execute(
        "SELECT count(*) FROM archive.people_people_master_2c WHERE ctb_2c_run_id = 'run-1' AND ctb_2c_action = 'delete'"
    ).fetchone()[0]
    assert removed_people == to_remove == results["dedupe_emails"].rows_touched
    assert conn.execute("SELECT count(*) FROM people.people_master").fetchone()[0] + removed_people == people_before
    removed_slots = conn.execute(
        "SELECT count(*) FROM archive.people_company_slot_2c WHERE ctb_2c_run_id = 'run-1' AND ctb_2c_action = 'delete'"
    ).fetchone()[0]
    assert removed_slots == 7
    assert conn.execute("SELECT count(*) FROM people.company_slot").fetchone()[0] == slots_before - 7
    missing = conn.execute(
        "SELECT count(*) FROM archive.people_people_master_2c a WHERE ctb_2c_action = 'delete' "
        "AND NOT EXISTS (SELECT 1 FROM people.people_master p WHERE p.email = a.email)"
    ).fetchone()[0]
    assert missing == 0  # each removed duplicate's email lives on in its survivor
    state = end_state(conn)
    again = cleanup.apply(conn, "run-2", tmp_path)  # nothing to change: no approval needed
    assert {s: r.rows_touched for s, r in again.items()} == dict.fromkeys(cleanup.STEPS, 0)
    assert end_state(conn) == state


def test_groups_of_three_and_four_keep_one_record_each(conn, tmp_path):
    members = [
        r[0]
        for r in conn.execute(
            "SELECT unique_id FROM people.people_master p WHERE email <> '' AND NOT EXISTS "
            "(SELECT 1 FROM people.people_master q WHERE q.email = p.email AND q.unique_id <> p.unique_id) "
            "ORDER BY unique_id LIMIT 7"
        )
    ]
    triple, quad = members[:3], members[3:]
    conn.execute("UPDATE people.people_master SET email = 'triple@example.com' WHERE unique_id = ANY(%s)", (triple,))
    conn.execute("UPDATE people.people_master SET email = 'quad@example.com' WHERE unique_id = ANY(%s)", (quad,))
    ranked = [
        r[0]
        for r in conn.execute(
            "SELECT unique_id FROM people.people_master WHERE email = 'triple@example.com' ORDER BY created_at NULLS LAST, unique_id"
        )
    ]
    sidecar = conn.execute("SELECT to_regclass('people.people_sidecar') IS NOT NULL").fetchone()[0]
    if sidecar:  # both duplicates of the triple have a sidecar row (one per person allowed), the survivor none
        conn.execute("DELETE FROM people.people_sidecar WHERE person_unique_id = ANY(%s)", (members,))
        donors = [r[0] for r in conn.execute("SELECT person_unique_id FROM people.people_sidecar ORDER BY 1 LIMIT 2")]
        for donor, duplicate in zip(donors, ranked[1:], strict=True):
            conn.execute(
                "UPDATE people.people_sidecar SET person_unique_id = %s WHERE person_unique_id = %s", (duplicate, donor)
            )
    original = snapshot(conn)
    groups = compute(conn)["duplicate_emails_in_people_master"]
    to_remove = duplicates_to_remove(conn)
    assert to_remove == groups + 1 + 2  # pairs remove 1 each, the triple 2, the quad 3
    results = approve_and_apply(conn, "run-1", tmp_path)
    assert results["dedupe_emails"].rows_touched == to_remove
    assert results["dedupe_emails"].details["groups"] == groups
    for email, survivor in (("triple@example.com", ranked[0]), ("quad@example.com", None)):
        left = [r[0] for r in conn.execute("SELECT unique_id FROM people.people_master WHERE email = %s", (email,))]
        assert len(left) == 1 and (survivor is None or left == [survivor])
    if sidecar:
        sidecars = conn.execute(
            "SELECT person_unique_id FROM people.people_sidecar WHERE person_unique_id = ANY(%s)", (ranked,)
        ).fetchall()
        assert sidecars == [(ranked[0],)]  # the best-ranked duplicate's row moved to the survivor, the other archived
    report = cleanup.undo(conn, "run-1")
    assert report.complete
    assert_restored(conn, original, report)


# ---------------------------------------------------------------------------------------- concurrency
def wait_until_blocked(watcher, pid: int) -> None:
    deadline = time.monotonic() + 30
    while not watcher.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the cleanup never waited for the writer"
        time.sleep(0.05)


def run_in_thread(db, work):
    """`work(connection)` on its own connection in a thread; returns (thread, outcome, pid)."""
    outcome, ready = {}, threading.Event()

    def target():
        with psycopg.connect(db, autocommit=True) as own:
            outcome["pid"] = own.info.backend_pid
            ready.set()
            try:
                outcome["result"] = work(own)
            except Exception as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    ready.wait(10)
    return thread, outcome


@pytest.mark.parametrize(
    ("step", "table", "make_match"),
    [
        (
            "remove_orphan_slots",
            "people.company_slot",
            "UPDATE people.company_slot SET outreach_id = gen_random_uuid() WHERE slot_id IN "
            "(SELECT slot_id FROM people.company_slot WHERE person_unique_id IS NULL ORDER BY slot_id LIMIT 5) "
            "RETURNING slot_id::text",
        ),
        (
            "backfill_null_domains",
            "outreach.outreach",
            "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN "
            "(SELECT outreach_id FROM outreach.outreach WHERE domain IS NOT NULL ORDER BY outreach_id DESC LIMIT 5) "
            "RETURNING outreach_id::text",
        ),
    ],
)
def test_rows_a_concurrent_writer_makes_match_mid_step_are_never_changed_without_an_archive_copy(
    db, conn, tmp_path, step, table, make_match
):
    inject_defects(conn)
    shown = approve(conn)
    approved = shown.counts[step]
    key = "slot_id" if table == "people.company_slot" else "outreach_id"
    rows_before = {r[0]: r[1] for r in conn.execute(f"SELECT {key}::text, md5(t::text) FROM {table} t")}
    with psycopg.connect(db) as writer:  # a second connection, in a transaction
        writer.execute(f"LOCK TABLE {table} IN SHARE MODE")  # our change statement waits for it ...
        writer_keys = {r[0] for r in writer.execute(make_match)}  # ... while it makes 5 more rows match
        thread, outcome = run_in_thread(
            db,
            lambda own: cleanup.apply_step(
                own, step, "concurrent", tmp_path, "30s", shown.fingerprint.sha256, approved
            ),
        )
        wait_until_blocked(conn, outcome["pid"])
        writer.commit()  # the rows start to match between the step's two statements
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.approved_counts() == approved  # exactly the rows locked and archived were changed
    rows_after = {r[0]: r[1] for r in conn.execute(f"SELECT {key}::text, md5(t::text) FROM {table} t")}
    archived = {
        r[0]
        for r in conn.execute(
            f"SELECT {key}::text FROM archive.{table.replace('.', '_')}_2c WHERE ctb_2c_run_id = 'concurrent'"
        )
    }
    # every row the cleanup changed or removed has its archive copy; the writer's 5 are left as it made them
    removed = {k for k in rows_before if k not in rows_after}
    changed = {k for k, v in rows_after.items() if v != rows_before.get(k)} - writer_keys
    assert len(writer_keys) == 5 and not writer_keys & archived
    assert writer_keys <= set(rows_after)
    assert removed | changed <= archived
    assert len(archived) == approved["archived"] == len(removed | changed)


def test_a_concurrent_writer_during_a_whole_apply_gets_it_refused_with_nothing_changed(db, conn, tmp_path):
    inject_defects(conn)
    approve(conn)
    with psycopg.connect(db) as writer:
        writer.execute("LOCK TABLE people.company_slot IN SHARE MODE")
        writer.execute(
            "UPDATE people.company_slot SET outreach_id = gen_random_uuid() WHERE slot_id IN "
            "(SELECT slot_id FROM people.company_slot WHERE person_unique_id IS NULL ORDER BY slot_id LIMIT 5)"
        )
        thread, outcome = run_in_thread(db, lambda own: cleanup.apply(own, "raced", tmp_path, "30s"))
        wait_until_blocked(conn, outcome["pid"])
        writer.commit()
    thread.join(120)
    assert isinstance(outcome.get("error"), NotApproved), outcome
    assert "remove_orphan_slots: approved" in str(outcome["error"])
    assert compute(conn)["orphan_slots"] == 12  # refused before removing any: every orphan still there
    assert not conn.execute(
        "SELECT count(*) FROM ple_ops.cleanup_ledger WHERE run_id = 'raced' AND step = 'remove_orphan_slots'"
    ).fetchone()[0]
    results = approve_and_apply(conn, "again", tmp_path)
    assert results["remove_orphan_slots"].rows_touched == 12


# ---------------------------------------------------------------------------------------- guards
def test_guards_block_a_step_before_it_writes_and_say_why(conn, tmp_path):
    inject_defects(conn)
    # a RESTRICT foreign key into slots: one orphan slot is referenced
    conn.execute(
        "CREATE TABLE people.slot_assignment (id serial PRIMARY KEY, slot_id uuid NOT NULL "
        "REFERENCES people.company_slot (slot_id) ON DELETE RESTRICT)"
    )
    conn.execute(
        "INSERT INTO people.slot_assignment (slot_id) SELECT slot_id FROM people.company_slot s "
        "WHERE NOT EXISTS (SELECT 1 FROM outreach.outreach o WHERE o.outreach_id = s.outreach_id) LIMIT 1"
    )
    # a write-once guard, like cl.company_identity's pointers: a set slot pointer never changes
    conn.execute(
        "CREATE FUNCTION people.write_once_slot() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF OLD.company_slot_unique_id IS NOT NULL AND NEW.company_slot_unique_id IS DISTINCT FROM OLD.company_slot_unique_id THEN "
        "RAISE EXCEPTION 'company_slot_unique_id is write-once and already set for person %', OLD.unique_id; END IF; "
        "RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER write_once_slot BEFORE UPDATE ON people.people_master "
        "FOR EACH ROW EXECUTE FUNCTION people.write_once_slot()"
    )
    # an updated_at trigger (the twin has it already): harmless, reported
    if not conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'outreach.outreach'::regclass AND tgname = 'set_updated_at'"
    ).fetchone()[0]:
        conn.execute(
            "CREATE FUNCTION outreach.trigger_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "NEW.updated_at = now(); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER set_updated_at BEFORE UPDATE ON outreach.outreach "
            "FOR EACH ROW EXECUTE FUNCTION outreach.trigger_set_updated_at()"
        )
    state = end_state(conn)
    shown = cleanup.preview(conn)
    blocked = {name: r.blocked for name, r in shown.results.items() if r.blocked}
    assert set(blocked) == {"remove_orphan_slots", "attach_orphan_people"}
    assert "people.slot_assignment" in blocked["remove_orphan_slots"]
    assert "ON DELETE RESTRICT" in blocked["remove_orphan_slots"]
    assert "write-once" in blocked["attach_orphan_people"]
    assert shown.results["backfill_null_domains"].details["triggers fired"] == {
        "outreach.outreach": ["set_updated_at (BEFORE, trigger_set_updated_at)"]
    }
    assert end_state(conn) == state  # the preview wrote nothing
    cleanup.approve(conn, shown, "pytest", via="test")
    results = cleanup.apply(conn, "guarded", tmp_path)
    assert results["remove_orphan_slots"].blocked and results["attach_orphan_people"].blocked
    assert compute(conn)["orphan_slots"] == 7  # blocked: nothing removed
    assert results["backfill_null_domains"].rows_touched == 4
    assert (
        conn.execute(
            "SELECT count(*) FROM archive.people_company_slot_2c WHERE ctb_2c_step = 'remove_orphan_slots'"
        ).fetchone()[0]
        == 0
    )
    outcomes = dict(
        conn.execute("SELECT step, outcome FROM ple_ops.cleanup_ledger WHERE run_id = 'guarded'").fetchall()
    )
    assert outcomes["remove_orphan_slots"] == outcomes["attach_orphan_people"] == "failed"


def test_row_level_security_without_a_delete_policy_blocks_the_step(db, conn, tmp_path):
    inject_defects(conn)
    role = f"ple_cleaner_{conn.info.dbname}"  # roles are cluster-wide: one per test database
    conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute("CREATE SCHEMA IF NOT EXISTS archive")
    conn.execute(f"GRANT USAGE ON SCHEMA people, outreach, cl, archive TO {role}")
    conn.execute(f"GRANT CREATE ON SCHEMA archive TO {role}")
    conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA people, outreach, cl TO {role}")
    conn.execute("ALTER TABLE people.company_slot ENABLE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY slot_read ON people.company_slot FOR SELECT USING (true)")
    conn.execute("CREATE POLICY slot_write ON people.company_slot FOR UPDATE USING (true)")
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(db, user=role), autocommit=True) as cleaner:
            shown = cleanup.preview(cleaner, steps=["remove_orphan_slots"])
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    assert (
        "row-level security on people.company_slot has no DELETE policy" in shown.results["remove_orphan_slots"].blocked
    )


# ---------------------------------------------------------------------------------------- undo
def test_undo_puts_every_row_back(conn, tmp_path):
    inject_defects(conn)
    original = snapshot(conn)
    approve_and_apply(conn, "run-1", tmp_path)
    assert user_tables(end_state(conn)) != original[0]
    report = cleanup.undo(conn, "run-1")
    assert report.complete and report.restored
    assert_restored(conn, original, report)
    assert cleanup.undo(conn, "run-1").restored == 0  # a second undo finds nothing left to do


def test_undo_reports_conflicts_and_rows_edited_since_instead_of_skipping_or_overwriting(conn, tmp_path):
    inject_defects(conn)
    approve_and_apply(conn, "run-1", tmp_path)
    removed_slot = conn.execute(
        "SELECT slot_id FROM archive.people_company_slot_2c WHERE ctb_2c_step = 'remove_orphan_slots' ORDER BY slot_id LIMIT 1"
    ).fetchone()[0]
    # a new slot took the removed slot's key since the cleanup
    conn.execute(
        "INSERT INTO people.company_slot (slot_id, outreach_id, company_unique_id, slot_type) "
        "SELECT %s, outreach_id, company_unique_id, 'NEW' FROM people.company_slot LIMIT 1",
        (removed_slot,),
    )
    # a slot the de-duplication moved was edited since
    edited_slot = conn.execute(
        "SELECT slot_id FROM archive.people_company_slot_2c WHERE ctb_2c_step = 'dedupe_emails' AND ctb_2c_action = 'update' "
        "ORDER BY slot_id LIMIT 1"
    ).fetchone()[0]
    conn.execute("UPDATE people.company_slot SET slot_type = 'EDITED' WHERE slot_id = %s", (edited_slot,))
    report = cleanup.undo(conn, "run-1")
    assert not report.complete
    assert report.tables["remove_orphan_slots:people.company_slot:delete"] == {"restored": 6, "conflict": 1}
    assert report.tables["dedupe_emails:people.company_slot:update"]["edited_since"] == 1
    assert any("key is taken again" in line for line in report.unresolved)
    assert any("edited (or removed) since the cleanup" in line for line in report.unresolved)

    def slot_type(slot):
        return conn.execute("SELECT slot_type FROM people.company_slot WHERE slot_id = %s", (slot,)).fetchone()[0]

    assert (slot_type(removed_slot), slot_type(edited_slot)) == ("NEW", "EDITED")  # neither overwritten
    # once the conflict is resolved (the new slot moved to another key), undo again restores the row
    conn.execute("UPDATE people.company_slot SET slot_id = gen_random_uuid() WHERE slot_type = 'NEW'")
    again = cleanup.undo(conn, "run-1")
    assert again.tables["remove_orphan_slots:people.company_slot:delete"] == {"restored": 1}
    assert slot_type(removed_slot) != "NEW"


def test_undo_restores_tables_without_a_primary_key(conn, tmp_path):
    conn.execute("ALTER TABLE people.company_slot DROP CONSTRAINT company_slot_pkey")
    inject_defects(conn)
    original = snapshot(conn)
    results = approve_and_apply(conn, "run-1", tmp_path)
    assert results["remove_orphan_slots"].rows_touched == 7
    assert results["dedupe_emails"].details["slots_reassigned"] > 0
    report = cleanup.undo(conn, "run-1")
    assert report.complete
    assert report.tables["remove_orphan_slots:people.company_slot:delete"] == {"restored": 7}
    assert report.tables["dedupe_emails:people.company_slot:update"]["restored"] > 0
    assert_restored(conn, original, report)
    assert cleanup.undo(conn, "run-1").restored == 0  # restored once, never twice
