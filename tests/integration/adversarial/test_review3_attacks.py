"""Adversarial (review 3): the fold's recorded order (plugins/ple/reorg/actions/fold.py
`differences` reading `order` from `ledger.applied_details`), snapshot columns renamed away, and
revert's low-lock NOT NULL restore (plugins/ple/reorg/revert.py `_restore_one_not_null`)."""

import contextlib

import psycopg
import pytest
from psycopg import sql

from ple.errors import VerificationFailed
from ple.reorg import revert as revert_module
from tests.integration.adversarial.test_fold_key_order_attacks import (
    SIDE,
    _two_latest_scores_for_one_person,
    _verify_problems,
)
from tests.integration.adversarial.test_revert_not_null_attacks import (
    PLAN_COLUMN,
    TARGET,
    _checks,
    _interrupt_restore,
    _not_null,
    _preflighted,
)
from tests.reorg_helpers import approve, approve_revert, executor, run_phase

# --- the fold's recorded order key -------------------------------------------------------------


def _archive(conn) -> str:
    return executor(conn).plan.archive_name(SIDE)


def _primary_key(conn, table: str):
    return conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (table,)
    ).fetchone()


def test_a_surrogate_key_added_to_a_keyless_archive_does_not_make_verify_find_a_correct_fold_wrong(conn):
    person = _two_latest_scores_for_one_person(conn, keyed=False, second_id=9, delta=-1)
    approve(conn)
    run_phase(executor(conn), "1g")
    folded = conn.execute(
        "SELECT seniority_score FROM people.people_master WHERE unique_id = %s", (person,)
    ).fetchone()[0]
    archived = _archive(conn)
    # the DBA gives the keyless archive a surrogate key: no archived value changes
    conn.execute(f"ALTER TABLE {archived} ADD COLUMN a bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    # the fold picked `folded`; make the surrogate key rank the other tied row higher (DESC)
    other = conn.execute(f"SELECT a FROM {archived} WHERE id = 9 AND score IS DISTINCT FROM %s", (folded,)).fetchone()[
        0
    ]
    mine = conn.execute(f"SELECT a FROM {archived} WHERE id = 9 AND score = %s", (folded,)).fetchone()[0]
    assert other > mine, (other, mine)  # the surrogate key (DESC) now ranks the unfolded row first
    problems = [line for line in _verify_problems(conn).splitlines() if "differ" in line or "PROBLEM" in line]
    assert problems == [], "the archived side rows are unchanged, yet verify finds the fold wrong"


def _folded_then_key_renamed(conn) -> None:
    """1g applied (the side table keyed by id, recorded as its order key), then the archive's id
    renamed: no archived value changes."""
    approve(conn)
    run_phase(executor(conn), "1g")
    recorded = conn.execute(
        "SELECT details->'order'->%s->'key' FROM ple_ops.action_ledger WHERE outcome = 'applied' "
        "AND details->'order' ? %s ORDER BY attempt_id DESC LIMIT 1",
        (SIDE, SIDE),
    ).fetchone()[0]
    assert recorded == ["id"], recorded
    conn.execute(f"ALTER TABLE {_archive(conn)} RENAME COLUMN id TO score_id")


def test_verify_reports_an_archive_column_renamed_after_the_fold_instead_of_crashing(conn):
    _folded_then_key_renamed(conn)
    try:
        text = _verify_problems(conn)
    except psycopg.Error as exc:
        pytest.fail(f"verify crashed: {type(exc).__name__}: {exc}")
    assert "columns ['id'] of the preflight snapshot are gone" in text, text
    assert "no longer has the columns ['id']" in text, text


def test_revert_after_the_recorded_order_key_was_renamed_on_the_archive_does_not_crash(conn):
    _folded_then_key_renamed(conn)
    approve_revert(conn, "1g")
    try:
        executor(conn).revert_phase("1g")
    except VerificationFailed:
        pass  # a refusal that says why is fine
    except psycopg.Error as exc:
        pytest.fail(f"revert crashed: {type(exc).__name__}: {exc}")
    notes = conn.execute(
        "SELECT string_agg(details->>'notes', ' ') FROM ple_ops.action_ledger "
        "WHERE phase = '1g' AND action = 'FOLD' AND outcome = 'reverted'"
    ).fetchone()[0]
    assert "kept" in notes and "no longer has the columns ['id']" in notes, notes
    assert conn.execute("SELECT to_regclass(%s)", (SIDE,)).fetchone()[0] is not None, "the side table is back"


# --- revert's NOT NULL restore -----------------------------------------------------------------


def test_a_revert_whose_relaxed_column_was_dropped_says_so_instead_of_crashing(conn):
    plan = _preflighted(conn, PLAN_COLUMN)
    conn.execute(f"ALTER TABLE {TARGET} DROP COLUMN {PLAN_COLUMN}")
    try:
        reports = executor(conn, plan=plan).revert_phase("1b")
    except Exception as exc:
        pytest.fail(f"revert crashed: {type(exc).__name__}: {exc}")
    assert reports[-1].status == "reverted"
    assert f"{TARGET}.{PLAN_COLUMN}: not restored, the column is gone" in reports[-1].text


def test_a_column_renamed_between_the_restores_transactions_converges(conn, monkeypatch):
    plan = _preflighted(conn, PLAN_COLUMN)
    ex = executor(conn, plan=plan)

    def rename():
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            other.execute(f"ALTER TABLE {TARGET} RENAME COLUMN {PLAN_COLUMN} TO outreach_ref")

    _interrupt_restore(monkeypatch, ex, 2, rename)
    errors = []
    try:
        ex.revert_phase("1b")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    monkeypatch.undo()
    try:
        executor(conn, plan=plan).revert_phase("1b")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    assert not any(e.startswith("TypeError") for e in errors), errors
    assert not any(c.startswith("ctb_not_null_") for c in _checks(conn)), "a helper CHECK was left behind"


def test_a_table_moved_between_the_restores_transactions_leaves_no_helper(conn, monkeypatch):
    plan = _preflighted(conn, PLAN_COLUMN)
    oid = conn.execute("SELECT %s::regclass::oid", (TARGET,)).fetchone()[0]
    ex = executor(conn, plan=plan)

    def move():
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            other.execute(f"ALTER TABLE {TARGET} SET SCHEMA public")

    _interrupt_restore(monkeypatch, ex, 1, move)
    with contextlib.suppress(Exception):
        ex.revert_phase("1b")
    monkeypatch.undo()
    with contextlib.suppress(Exception):
        executor(conn, plan=plan).revert_phase("1b")
    helpers = [
        r[0]
        for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s AND conname LIKE 'ctb_not_null_%%'", (oid,)
        )
    ]
    assert helpers == [], helpers


def test_a_constraint_with_the_tools_comment_but_another_definition_is_not_dropped(conn):
    plan = _preflighted(conn, PLAN_COLUMN)
    name = revert_module.not_null_helper(PLAN_COLUMN)
    conn.execute(f'ALTER TABLE {TARGET} ADD CONSTRAINT "{name}" CHECK (length(error_type) < 10000)')
    conn.execute(
        sql.SQL("COMMENT ON CONSTRAINT {} ON people.people_errors IS {}").format(
            sql.Identifier(name), sql.Literal(revert_module.HELPER_COMMENT)
        )
    )
    executor(conn, plan=plan).revert_phase("1b")
    assert _not_null(conn, PLAN_COLUMN)
    assert name in _checks(conn), "the revert dropped a constraint that is not its helper"


@pytest.mark.xfail(
    strict=True,
    reason="low, left as is: a fold applied by a version before the order was recorded (its ledger "
    "details have no 'order') is recomputed in its archive's order now; a key dropped from that archive "
    "since makes verify report the correct fold wrong (a false alarm, never a false pass)",
)
def test_a_fold_recorded_without_the_order_survives_its_archives_key_being_dropped(conn):
    _two_latest_scores_for_one_person(conn, keyed=True)
    approve(conn)
    run_phase(executor(conn), "1g")
    # the ledger row as the version before order_keys wrote it
    conn.execute(
        "UPDATE ple_ops.action_ledger SET details = details - 'order' "
        "WHERE outcome = 'applied' AND details->'order' ? %s",
        (SIDE,),
    )
    archived = _archive(conn)
    conn.execute(f'ALTER TABLE {archived} DROP CONSTRAINT "{_primary_key(conn, archived)[0]}"')
    problems = [line for line in _verify_problems(conn).splitlines() if "differ" in line or "PROBLEM" in line]
    assert problems == [], "the archived side rows are unchanged, yet verify finds the fold wrong"
