"""Issue 19's revert findings, each on a real PostgreSQL:

(4) a column the application added to a merge target since the merge counts in "unchanged": a
    copy holding a value the merge did not write (filled since, or a DDL default) stays, reported;
(5) a revert run again (after it finished, or killed at a step boundary or inside a step) on the
    production twin, where steps set stale hand copies aside, converges: the set-aside copy back
    under its name is not mistaken for the step's own archive;
(6) re-applying a merge after a revert that kept copies converges (the kept copy is the row's copy
    while its provenance is the source row's), or refuses before writing, naming the copies;
(7) objects the application built on what a revert would drop (a key the tool added or adopted,
    a column it created) are named before the revert's first write, and nothing changes.
"""

import pytest

from ple.errors import PlanRejected
from ple.reorg import decisions
from ple.reorg import revert as revert_module
from ple.reorg.actions import module_for
from ple.reorg.plan import load
from tests import rowcheck
from tests.reconcile_helpers import decide, text_column
from tests.reorg_helpers import (
    approve,
    approve_revert,
    assert_nothing_lost,
    connect,
    count,
    executor,
    phase_status,
    revert_until_done,
    run_phase,
    table_fingerprints,
    terminate_backend,
)

QUEUE = "outreach.entity_resolution_queue"
QUEUE_SOURCE = "people.people_resolution_queue"


def _revert(conn, phase: str, run_id: str | None = None) -> list:
    approve_revert(conn, phase)
    return executor(conn, run_id=run_id).revert_phase(phase)


def _copies(conn, source: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {QUEUE} WHERE ctb_source_table = %s", (source,)).fetchone()[0]


def _ledger_outcomes(conn) -> list[tuple]:
    return conn.execute("SELECT step_id, outcome FROM ple_ops.action_ledger ORDER BY attempt_id").fetchall()


# ---------------------------------------------------------------------------------------------- (4)
def _merged_1e_and_annotated(conn) -> list[tuple]:
    """1e applied; the application adds a column to the merge target and fills it on three merged
    copies. Returns those (provenance key, value)."""
    approve(conn)
    reports = run_phase(executor(conn), "1e")
    assert "failed" not in {r.status for r in reports}
    conn.execute(f"ALTER TABLE {QUEUE} ADD COLUMN app_note text")
    return conn.execute(
        f"UPDATE {QUEUE} SET app_note = 'called back: ' || ctb_source_key WHERE ctid IN "
        f"(SELECT ctid FROM {QUEUE} WHERE ctb_source_table = %s ORDER BY ctb_source_key LIMIT 3) "
        "RETURNING ctb_source_key, app_note",
        (QUEUE_SOURCE,),
    ).fetchall()


def test_a_copy_filled_in_a_column_added_since_the_merge_is_kept_by_revert(conn):
    annotated = _merged_1e_and_annotated(conn)
    reports = _revert(conn, "1e")
    assert reports[-1].status == "reverted", reports[-1].text
    step = next(r for r in reports if r.step_id.endswith("people_resolution_queue"))
    assert step.summary["changed_copies_kept_in_target"] == 3, step.text
    assert sorted(annotated) == sorted(
        conn.execute(
            f"SELECT ctb_source_key, app_note FROM {QUEUE} WHERE app_note IS NOT NULL AND ctb_source_table = %s",
            (QUEUE_SOURCE,),
        ).fetchall()
    )
    assert _copies(conn, QUEUE_SOURCE) == 3  # the copies nobody touched are gone; the source is back


def test_a_column_added_with_a_default_since_the_merge_keeps_every_copy(conn):
    """The DDL wrote 'open' into every copy; the merge did not. Conservative: kept, reported."""
    approve(conn)
    run_phase(executor(conn), "1e")
    merged = _copies(conn, QUEUE_SOURCE)
    conn.execute(f"ALTER TABLE {QUEUE} ADD COLUMN app_state text NOT NULL DEFAULT 'open'")
    reports = _revert(conn, "1e")
    assert reports[-1].status == "reverted", reports[-1].text
    step = next(r for r in reports if r.step_id.endswith("people_resolution_queue"))
    assert step.summary["changed_copies_kept_in_target"] == merged, step.text
    assert _copies(conn, QUEUE_SOURCE) == merged


# ---------------------------------------------------------------------------------------------- (6)
def test_re_apply_after_a_revert_that_kept_copies_converges(conn):
    annotated = _merged_1e_and_annotated(conn)
    _revert(conn, "1e")
    rows = count(conn, QUEUE_SOURCE)
    reports = run_phase(executor(conn), "1e")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports if r.status == "failed"]
    assert _copies(conn, QUEUE_SOURCE) == rows  # one copy per source row, the kept ones included
    assert sorted(annotated) == sorted(
        conn.execute(f"SELECT ctb_source_key, app_note FROM {QUEUE} WHERE app_note IS NOT NULL").fetchall()
    )
    # and round again: the kept copies are kept again, the others removed
    reports = _revert(conn, "1e")
    assert reports[-1].status == "reverted", reports[-1].text
    assert _copies(conn, QUEUE_SOURCE) == 3


def test_re_apply_refuses_before_writing_when_a_kept_copy_no_longer_matches_its_source_row(conn):
    annotated = _merged_1e_and_annotated(conn)
    _revert(conn, "1e")
    key = annotated[0][0]
    # the application edits the source row (live again) whose copy the revert kept
    column = text_column(conn, QUEUE_SOURCE)
    edited = conn.execute(
        f"UPDATE {QUEUE_SOURCE} AS s SET {column} = coalesce({column}, '') || ' (edited)' WHERE to_jsonb(s.*) = "
        f"(SELECT ctb_source_row FROM {QUEUE} WHERE ctb_source_table = %s AND ctb_source_key = %s)",
        (QUEUE_SOURCE, key),
    ).rowcount
    assert edited == 1
    ex = executor(conn)
    before = _ledger_outcomes(conn)
    with pytest.raises(PlanRejected) as refused:
        run_phase(ex, "1e")
    message = str(refused.value)
    assert QUEUE in message and key in message and QUEUE_SOURCE in message
    assert "skip" in message  # the decision the operator can make
    assert count(conn, QUEUE_SOURCE) > 0 and _copies(conn, QUEUE_SOURCE) == 3
    assert [o for o in _ledger_outcomes(conn)[len(before) :] if o[1] == "applied"] == []


# ---------------------------------------------------------------------------------------------- (7)
def _applied(conn, phase: str) -> None:
    approve(conn)
    reports = run_phase(executor(conn), phase)
    assert "failed" not in {r.status for r in reports}


def _refused_and_unchanged(conn, phase: str, *names: str) -> str:
    tables, before = table_fingerprints(conn), _ledger_outcomes(conn)
    keys = conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint ORDER BY 1, 2").fetchall()
    with pytest.raises(PlanRejected) as refused:
        _revert(conn, phase)
    message = str(refused.value)
    for name in names:
        assert name in message, message
    assert table_fingerprints(conn) == tables
    assert conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint ORDER BY 1, 2").fetchall() == keys
    assert [o for o in _ledger_outcomes(conn)[len(before) :] if o[1] == "reverted"] == []
    return message


def test_a_foreign_key_onto_a_key_the_tool_added_or_adopted_is_named_before_any_write(conn):
    _applied(conn, "1k")
    conn.execute(
        "CREATE TABLE public.app_archive_note (archive_id integer "
        "CONSTRAINT app_archive_note_fk REFERENCES people.people_master_archive (archive_id))"
    )
    conn.execute(
        "CREATE TABLE public.app_filter_note (filter_id integer "
        "CONSTRAINT app_filter_note_fk REFERENCES dol.form_5500_icp_filtered (filter_id))"
    )
    message = _refused_and_unchanged(conn, "1k", "app_archive_note_fk", "app_filter_note_fk")
    assert "then revert again" in message
    conn.execute("DROP TABLE public.app_archive_note, public.app_filter_note")
    reports = _revert(conn, "1k")
    assert reports[-1].status == "reverted", reports[-1].text


def test_a_view_or_an_index_on_a_column_the_tool_created_is_named_before_any_write(conn):
    _applied(conn, "1k")
    conn.execute("CREATE VIEW public.app_archive_ids AS SELECT archive_id FROM people.people_master_archive")
    conn.execute("CREATE INDEX app_archive_id_idx ON people.people_master_archive (archive_id DESC)")
    _refused_and_unchanged(conn, "1k", "public.app_archive_ids", "app_archive_id_idx")


def test_a_view_on_a_folded_column_is_named_before_any_write(conn):
    _applied(conn, "1g")
    table, column = conn.execute(
        "SELECT table_name, column_name FROM ple_ops.tool_change WHERE change = 'created_column' ORDER BY 1, 2 LIMIT 1"
    ).fetchone()
    conn.execute(f"CREATE VIEW public.app_folded AS SELECT {column} FROM {table}")
    _refused_and_unchanged(conn, "1g", "public.app_folded", column)


def test_a_view_on_a_merge_target_the_tool_created_keeps_the_target_and_is_named(conn, tmp_path, monkeypatch):
    """A created target is dropped only at the end, once the merges' revert emptied it: a view on it
    (or a foreign key into it) keeps it, reported by name; the revert itself completes. Never a
    traceback, and the merge target's discriminator and provenance columns are never dropped."""
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    target = "cl.cl_err_existence"
    conn.execute(f"DROP TABLE {target} CASCADE")
    decide(conn)
    _applied(conn, "1b")
    conn.execute(f"CREATE VIEW public.app_errors AS SELECT * FROM {target}")
    reports = _revert(conn, "1b")
    assert reports[-1].status == "reverted", reports[-1].text
    assert "view app_errors depends on table cl.cl_err_existence" in reports[-1].text, reports[-1].text
    assert count(conn, target) == 0 and count(conn, "public.app_errors") == 0


# ---------------------------------------------------------------------------------------------- (5)
def _twin_applied(conn, phase: str) -> tuple[dict, dict, str]:
    decide(conn)
    approve(conn)
    before, rows_before = table_fingerprints(conn), rowcheck.take(conn)
    ex = executor(conn)
    reports = run_phase(ex, phase)
    assert "failed" not in {r.status for r in reports}
    assert conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE action = 'SET_ASIDE'").fetchone()[0]
    approve_revert(conn, phase)
    return before, rows_before, ex.run_id


@pytest.mark.parametrize("phase", ["1a", "1d", "1b", "1e", "1g", "1h"])
def test_a_revert_run_again_after_it_restored_a_set_aside_copy_converges(twin, phase):
    before, rows_before, run_id = _twin_applied(twin, phase)
    first = executor(twin, run_id=run_id).revert_phase(phase)
    assert first[-1].status == "reverted", first[-1].text
    again = executor(twin, run_id=run_id).revert_phase(phase)
    assert again[-1].status == "reverted", again[-1].text
    assert all(r.status == "already_done" for r in again[:-1]), [(r.step_id, r.status) for r in again]
    assert_nothing_lost(twin, before)
    assert rowcheck.missing(rows_before, twin) == []


def test_a_revert_of_1a_killed_at_every_step_boundary_and_inside_every_step_converges(twin, twin_db, monkeypatch):
    phase = "1a"
    before, rows_before, run_id = _twin_applied(twin, phase)
    steps = [s.step_id for s in load().phase(phase).steps]
    real_step = revert_module._revert_step
    modules = {module_for(s) for s in load().phase(phase).steps}
    originals = {m: m.revert for m in modules}
    killed: list[str] = []
    state = {"pid": None}
    kills = ["start"] + [f"inside {s}" for s in reversed(steps)] + [f"after {s}" for s in reversed(steps)]

    def arm(pid: int) -> bool:
        state["pid"] = pid
        return len(killed) < len(kills)

    def kill(point: str) -> None:
        if point in kills and point not in killed:
            killed.append(point)
            terminate_backend(twin_db, state["pid"])

    def step_then_killed(ex_, step, fp):
        kill("start")
        outcome = real_step(ex_, step, fp)
        kill(f"after {step.step_id}")
        return outcome

    def killed_before_commit(module):
        def revert(ctx, step):
            outcome = originals[module](ctx, step)
            if outcome.status == "reverted":
                kill(f"inside {step.step_id}")
            return outcome

        return revert

    monkeypatch.setattr(revert_module, "_revert_step", step_then_killed)
    for module in modules:
        monkeypatch.setattr(module, "revert", killed_before_commit(module))
    reports, _runs = revert_until_done(twin_db, phase, run_id, arm)
    assert sorted(killed) == sorted(kills)
    assert reports[-1].status == "reverted", reports[-1].text
    with connect(twin_db) as conn:
        assert phase_status(twin_db, phase) == "reverted"
        assert_nothing_lost(conn, before)
        assert rowcheck.missing(rows_before, conn) == []
        assert conn.execute("SELECT to_regclass('company.company_master') IS NOT NULL").fetchone()[0]
