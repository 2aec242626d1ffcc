"""Adversarial: revert deletes merged copies from a LIVE target, so every consequence of a DELETE on
that table is in play: ON DELETE CASCADE / SET NULL foreign keys of application tables pointing at
a copy, and the DELETE side of a sync trigger whose INSERT side the merge bypassed. (All three were
reproduced on this branch, then fixed on main in 3e69cd0: a referenced copy is kept, the bypassed
triggers are disabled for the revert's DELETE too.)"""

from tests.reorg_helpers import approve, approve_revert, count, executor, run_phase

SOURCE = "marketing.failed_email_verification"
TARGET = "people.people_errors"


def _notes_on_merged_copies(conn, rule: str) -> int:
    """The application annotates merged errors (a triage note per error), after the merge."""
    conn.execute(
        "CREATE TABLE people.error_notes (note_id serial PRIMARY KEY, error_id uuid "
        f"REFERENCES {TARGET} (error_id) ON DELETE {rule}, note text NOT NULL)"
    )
    return conn.execute(
        f"INSERT INTO people.error_notes (error_id, note) SELECT error_id, 'called the person back' FROM {TARGET} "
        "WHERE ctb_source_table = %s LIMIT 5",
        (SOURCE,),
    ).rowcount


def test_revert_never_deletes_application_rows_through_a_cascade(conn):
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1b")
    notes = _notes_on_merged_copies(conn, "CASCADE")
    assert notes > 0
    approve_revert(conn, "1b")
    reports = ex.revert_phase("1b")
    assert reports[-1].status == "reverted"
    assert count(conn, "people.error_notes") == notes, (
        f"revert of 1b reported {reports[-1].status!r} but deleted "
        f"{notes - count(conn, 'people.error_notes')} of {notes} application rows of people.error_notes "
        "through ON DELETE CASCADE on the merged copies it removed"
    )


def test_revert_never_rewrites_application_rows_through_set_null(conn):
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1b")
    notes = _notes_on_merged_copies(conn, "SET NULL")
    approve_revert(conn, "1b")
    ex.revert_phase("1b")
    orphaned = conn.execute("SELECT count(*) FROM people.error_notes WHERE error_id IS NULL").fetchone()[0]
    assert orphaned == 0, (
        f"revert of 1b set error_id to NULL in {orphaned} of {notes} application rows of people.error_notes "
        "(ON DELETE SET NULL on the merged copies it removed): what they referred to is gone"
    )


def test_revert_does_not_fire_the_sync_trigger_the_merge_bypassed(conn):
    conn.execute("CREATE TABLE public.error_counter (n bigint NOT NULL)")
    conn.execute(f"INSERT INTO public.error_counter SELECT count(*) FROM {TARGET}")
    conn.execute(
        "CREATE FUNCTION public.count_errors() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'INSERT' THEN UPDATE public.error_counter SET n = n + 1; ELSE UPDATE public.error_counter SET n = n - 1; "
        "END IF; RETURN NULL; END $$"
    )
    conn.execute(
        f"CREATE TRIGGER count_errors AFTER INSERT OR DELETE ON {TARGET} FOR EACH ROW EXECUTE FUNCTION public.count_errors()"
    )
    native = count(conn, TARGET)
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1b")
    assert conn.execute("SELECT n FROM public.error_counter").fetchone()[0] == native  # merged rows not counted
    approve_revert(conn, "1b")
    assert ex.revert_phase("1b")[-1].status == "reverted"
    assert count(conn, TARGET) == native
    counted = conn.execute("SELECT n FROM public.error_counter").fetchone()[0]
    assert counted == native, (
        f"after apply and revert of 1b the application's counter of {TARGET} says {counted}, the table holds "
        f"{native}: the revert's DELETE of the copies fired the trigger the merge's INSERT had bypassed"
    )


def test_a_referencing_table_with_an_orm_style_name_is_handled_not_refused(conn):
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1b")
    conn.execute(
        'CREATE TABLE people."ErrorNotes" (note_id serial PRIMARY KEY, "errorId" uuid '
        f"REFERENCES {TARGET} (error_id) ON DELETE CASCADE)"
    )
    notes = conn.execute(
        f'INSERT INTO people."ErrorNotes" ("errorId") SELECT error_id FROM {TARGET} WHERE ctb_source_table = %s LIMIT 3',
        (SOURCE,),
    ).rowcount
    approve_revert(conn, "1b")
    assert ex.revert_phase("1b")[-1].status == "reverted"
    assert conn.execute('SELECT count(*) FROM people."ErrorNotes"').fetchone()[0] == notes
