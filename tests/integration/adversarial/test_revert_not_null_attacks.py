"""Adversarial: revert's low-lock NOT NULL restore (plugins/ple/reorg/revert.py
`_restore_one_not_null`): a helper CHECK added NOT VALID, validated in its own transaction, then
SET NOT NULL and the helper dropped. Each attack leaves the restore's state between two of its
transactions (a killed run), races a NULL in, or gives the column a long name (the plan's schema
admits only [a-z_][a-z0-9_]{0,62}, so the helper's name, 58 bytes at most, is never truncated); the next revert must converge: NOT NULL restored where no NULL is, no helper left."""

import contextlib
import threading
import time

import psycopg
import pytest
from psycopg import sql

from ple.reorg import revert as revert_module
from tests.reorg_helpers import approve, approve_revert, executor, plan_from, raw_plan

TARGET = "people.people_errors"
PLAN_COLUMN = "outreach_id"  # relaxed by 1b's preflight (ctb_plan.yaml merge_targets)


class Killed(BaseException):
    """The process died: nothing after it runs, nothing catches it."""


def _not_null(conn, column: str) -> bool:
    return conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s", (TARGET, column)
    ).fetchone()[0]


def _checks(conn) -> list[str]:
    return sorted(
        r[0]
        for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'", (TARGET,)
        )
    )


def _preflighted(conn, column: str):
    """1b preflighted (its NOT NULLs relaxed and recorded), the revert approved; the plan relaxes
    `column` too if it is not the plan's own."""
    plan = None
    if column != PLAN_COLUMN:
        conn.execute(f"ALTER TABLE {TARGET} ADD COLUMN \"{column}\" text NOT NULL DEFAULT 'x'")
        raw = raw_plan()
        raw["merge_targets"][TARGET]["relax_not_null"].append(column)
        plan = plan_from(raw)
    approve(conn, plan)
    executor(conn, plan=plan).preflight("1b")
    assert not _not_null(conn, column)
    approve_revert(conn, "1b", plan=plan)
    return plan


def _interrupt_restore(monkeypatch, ex, committed: int, interruption) -> None:
    """Calls `interruption()` once, as the restore of a column of TARGET by `ex` is about to begin
    its transaction number `committed` + 1 (after `committed` of its transactions committed)."""
    real_transaction, real_one = ex.transaction, revert_module._restore_one_not_null
    state = {"inside": False, "began": 0}

    def one(ex_, fp, target, *args, **kwargs):
        state["inside"] = ex_ is ex and target == TARGET  # 1b relaxes other targets' columns too
        try:
            return real_one(ex_, fp, target, *args, **kwargs)
        finally:
            state["inside"] = False

    def transaction(*args, **kwargs):
        if state["inside"]:
            if state["began"] == committed:
                state["inside"] = False
                interruption()
            state["began"] += 1
        return real_transaction(*args, **kwargs)

    monkeypatch.setattr(revert_module, "_restore_one_not_null", one)
    ex.transaction = transaction


def _die():
    raise Killed()


@pytest.mark.parametrize("committed", [1, 2], ids=["killed-before-validate", "killed-before-set-not-null"])
def test_a_restore_killed_between_its_transactions_converges_on_the_next_run(conn, monkeypatch, committed):
    plan = _preflighted(conn, PLAN_COLUMN)
    dying = executor(conn, plan=plan)
    _interrupt_restore(monkeypatch, dying, committed, _die)
    with pytest.raises(Killed):
        dying.revert_phase("1b")
    assert any(c.startswith("ctb_not_null_") for c in _checks(conn))  # the state the kill left
    monkeypatch.undo()
    executor(conn, plan=plan).revert_phase("1b")
    assert _not_null(conn, PLAN_COLUMN)
    assert not any(c.startswith("ctb_not_null_") for c in _checks(conn))


@pytest.mark.parametrize(
    "column",
    ["c" * 63, "a" * 36 + "_first", "a" * 36 + "_second"],
    ids=["63-bytes", "shared-prefix-1", "shared-prefix-2"],
)
def test_odd_column_names_are_restored_and_leave_no_helper(conn, column):
    plan = _preflighted(conn, column)
    executor(conn, plan=plan).revert_phase("1b")
    assert _not_null(conn, column)
    assert _not_null(conn, PLAN_COLUMN)
    assert not any(c.startswith("ctb_not_null_") for c in _checks(conn))


def test_a_constraint_of_the_helpers_name_that_the_tool_did_not_create_is_not_dropped(conn):
    """A table that holds a CHECK of the helper's name for its own reason (another rule). The restore
    takes it for its helper: validates it, relies on it, and drops it."""
    plan = _preflighted(conn, PLAN_COLUMN)
    name = revert_module.not_null_helper(PLAN_COLUMN)
    conn.execute(f'ALTER TABLE {TARGET} ADD CONSTRAINT "{name}" CHECK (length(error_type) < 10000)')
    executor(conn, plan=plan).revert_phase("1b")
    assert _not_null(conn, PLAN_COLUMN)
    assert name in _checks(conn), "the revert dropped a constraint it did not create"


def _waiting_for_access_exclusive(watch, pid: int) -> bool:
    return (
        watch.execute(
            "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted AND mode = 'AccessExclusiveLock' "
            "AND relation = %s::regclass",
            (pid, TARGET),
        ).fetchone()
        is not None
    )


def test_a_null_written_between_the_count_and_the_helper_is_caught_and_not_null_stays_relaxed(conn, fresh_db):
    """A writer's NULL commits after the restore counted none but before its helper is added NOT
    VALID (so the helper does not check it): the validation must find it, and nothing is left."""
    plan = _preflighted(conn, PLAN_COLUMN)
    writer = psycopg.connect(fresh_db)  # not autocommit: holds its UPDATE open
    writer.execute(f"UPDATE {TARGET} SET outreach_id = NULL WHERE ctid = (SELECT ctid FROM {TARGET} LIMIT 1)")
    reverting = psycopg.connect(fresh_db, autocommit=True)
    pid = reverting.info.backend_pid
    result = {}

    def revert():
        try:
            result["report"] = executor(reverting, plan=plan).revert_phase("1b")
        except Exception as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=revert)
    thread.start()
    with psycopg.connect(fresh_db, autocommit=True) as watch:
        deadline = time.monotonic() + 60
        while not _waiting_for_access_exclusive(watch, pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_for_access_exclusive(watch, pid), "the restore never queued its ADD CONSTRAINT"
    writer.commit()  # the NULL lands after the count, before the NOT VALID helper exists
    writer.close()
    thread.join()
    reverting.close()
    assert "error" not in result, result
    assert conn.execute(f"SELECT count(*) FROM {TARGET} WHERE outreach_id IS NULL").fetchone()[0] == 1
    assert not _not_null(conn, PLAN_COLUMN)
    assert not any(c.startswith("ctb_not_null_") for c in _checks(conn))
    assert "stays nullable" in str(result["report"])


def test_no_transaction_scans_the_table_under_access_exclusive(conn):
    """The validation's transaction holds no ACCESS EXCLUSIVE lock, and SET NOT NULL finds the
    validated helper sufficient (PostgreSQL says so at DEBUG1 instead of scanning)."""
    plan = _preflighted(conn, PLAN_COLUMN)
    ex = executor(conn, plan=plan)
    real_transaction = ex.transaction
    held = []
    messages = []

    class Recording:
        def __init__(self, *args, **kwargs):
            self.inner = real_transaction(*args, **kwargs)

        def __enter__(self):
            return self.inner.__enter__()

        def __exit__(self, *exc):
            if exc[0] is None:
                modes = {
                    r[0]
                    for r in conn.execute(
                        "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = %s::regclass", (TARGET,)
                    )
                }
                valid = conn.execute(
                    "SELECT bool_or(convalidated) FROM pg_constraint WHERE conrelid = %s::regclass "
                    "AND conname LIKE 'ctb_not_null_%%'",
                    (TARGET,),
                ).fetchone()[0]
                held.append((modes, valid))
            return self.inner.__exit__(*exc)

    ex.transaction = Recording
    conn.add_notice_handler(lambda d: messages.append(d.message_primary))
    conn.execute("SET client_min_messages = debug1")
    ex.revert_phase("1b")
    conn.execute("RESET client_min_messages")
    validating = [modes for modes, valid in held if valid]
    assert validating, held
    assert "AccessExclusiveLock" not in validating[0], held
    assert any("sufficient to prove that it does not contain nulls" in m for m in messages), messages


@pytest.mark.parametrize(
    "paused_after",
    [
        pytest.param(1, id="between-add-and-validate"),
        pytest.param(2, id="between-validate-and-set"),
    ],
)
def test_two_reverts_at_once_both_end_reverted_with_not_null_set_and_no_helper(
    conn, fresh_db, monkeypatch, paused_after
):
    """Two reverts of one phase at once (the ctb_revert DAG and an operator's CLI): the advisory lock
    is per transaction, so the second runs whole between two of the first's restore transactions."""
    plan = _preflighted(conn, PLAN_COLUMN)
    first = executor(conn, plan=plan)
    outcome = {}

    def second_revert():
        with psycopg.connect(fresh_db, autocommit=True) as other:
            outcome["second"] = executor(other, plan=plan).revert_phase("1b")[-1].status

    _interrupt_restore(monkeypatch, first, paused_after, second_revert)
    try:
        outcome["first"] = first.revert_phase("1b")[-1].status
    except psycopg.Error as exc:
        outcome["first"] = f"{type(exc).__name__}: {exc}"
    assert outcome == {"first": "reverted", "second": "reverted"}
    assert _not_null(conn, PLAN_COLUMN)
    assert not any(c.startswith("ctb_not_null_") for c in _checks(conn))


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
