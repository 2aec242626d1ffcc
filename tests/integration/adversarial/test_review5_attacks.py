"""Review 5: adversarial tests of scoped approvals, decisions stored in the database and
compatibility views. Each test names the behaviour that should hold; its docstring is the attack."""

from __future__ import annotations

import psycopg
import pytest

from ple import approval
from ple.errors import NotApproved, PlanRejected
from ple.reorg import decisions
from ple.reorg.plan import load
from tests.reorg_helpers import approve, approve_revert, executor, run_phase


def _plan_fp(conn) -> approval.Fingerprint:
    return decisions.fingerprint(load(), decisions.for_connection(conn))


def _phase_fp(conn, phase_id: str) -> approval.Fingerprint:
    return _plan_fp(conn).scoped(approval.phase_scope(phase_id))


def _exists(conn, name: str) -> bool:
    """A table (not a compatibility view) at the name."""
    return conn.execute(
        "SELECT coalesce((SELECT relkind IN ('r', 'p') FROM pg_class WHERE oid = to_regclass(%s)), false)", (name,)
    ).fetchone()[0]


# ---------------------------------------------------------------------------------- approvals
def test_a_once_only_approval_does_not_apply_a_phase_again_after_its_revert(fresh_db):
    """Attack: phase 1a approved once (`make approve --phase 1a`, not standing), applied by run A,
    then reverted (its own revert approval). Re-running run A (an Airflow "Clear" of the finished
    run, or `ple.cli run --run-id A`) applies phase 1a a second time under the same once-only
    approval: `_usable` accepts any run that already used it, whatever happened since."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approval.approve(conn, _phase_fp(conn, "1a"), "ada")
        run_phase(executor(conn, run_id="run-A"), "1a")
        assert not _exists(conn, "company.company_slots") and _exists(conn, "archive.company_company_slots_ctb")
        approve_revert(conn, "1a")
        executor(conn, run_id="revert-R").revert_phase("1a")
        assert _exists(conn, "company.company_slots")
        with pytest.raises(NotApproved):
            executor(conn, run_id="run-A").preflight("1a")


def test_a_new_decisions_version_stops_a_run_that_read_the_earlier_one(conn):
    """Attack: the whole plan approved (standing) under decisions v1; a run starts (its executor
    reads the decisions once: every Airflow task, and `ple.cli run` for all the phases it runs);
    meanwhile someone records v2, deciding to skip company.company_slots. The record says 'in force
    from now: it voids approvals of the earlier one', but the running executor re-checks its cached
    v1 fingerprint, which the v1 approval still matches, and archives company.company_slots against
    the decision in force. (The 1L answers are re-read in every transaction for exactly this
    reason: approval._answers_unchanged; the decisions are not.)"""
    decisions.record(conn, {"database": conn.info.dbname, "actions": {}}, "Ada", via="test")
    approve(conn)  # standing, of the plan under v1
    ex = executor(conn, run_id="run-started-under-v1")
    decisions.record(
        conn,
        {"database": conn.info.dbname, "actions": {"company.company_slots": {"skip": "still in use by billing"}}},
        "Grace",
        via="test",
    )
    assert approval.current(conn, _phase_fp(conn, "1a"), "run-started-under-v1") is None  # voided for a new run
    try:
        with pytest.raises(NotApproved):
            run_phase(ex, "1a")
    finally:
        assert _exists(conn, "company.company_slots"), "archived although the decision in force says skip"


def test_the_whole_plan_is_not_in_force_while_one_of_its_phases_is_rejected(conn):
    """Attack: a standing approval of the whole plan, then a rejection of phase 1c. The
    ctb_reorganization gate asks `approval.current` for the plan scope, whose covering query only
    considers rejections of the scope `plan`: it logs 'in force: standing approval ... not asking
    again' for the whole plan (every phase), although 1c is vetoed; the run then writes phases
    1a and 1b and goes red at 1c. What the gate says is not what holds."""
    approval.approve(conn, _plan_fp(conn), "ada", standing=True)
    approval.reject(conn, _phase_fp(conn, "1c"), "grace")
    assert approval.current(conn, _phase_fp(conn, "1c"), "r") is None  # the executor honours it
    assert approval.current(conn, _plan_fp(conn), "r") is None  # the whole plan's gate does not


def test_recording_earlier_decisions_again_does_not_revive_approvals_they_voided(conn):
    """Attack: decisions v1 (A) approved standing; v2 (B) recorded: 'approvals of earlier
    decisions no longer hold' (ctb_decide's log, decisions.record). v3 re-records A (an import of
    the old file, a revert of the decision): the v1 approval is in force again, without anyone
    approving again, because the fingerprint holds the content's SHA-256, not the version."""
    a = {"database": conn.info.dbname, "actions": {"company.company_slots": {"compat": "none"}}}
    b = {"database": conn.info.dbname, "actions": {"company.company_slots": {"skip": "still in use by billing"}}}
    decisions.record(conn, a, "Ada", via="test")
    approval.approve(conn, _plan_fp(conn), "ada", standing=True)
    decisions.record(conn, b, "Grace", via="test")
    assert approval.current(conn, _phase_fp(conn, "1a"), "r") is None
    decisions.record(conn, a, "Grace", via="test")
    assert approval.current(conn, _phase_fp(conn, "1a"), "r") is None


# ---------------------------------------------------------------------------------- compatibility views
def _insert_through(conn, name: str, keyed_like: str) -> None:
    """An INSERT through the old name `name` of a copy of one of its rows, its primary key (that of
    the table `keyed_like`) made new: what the application keeps doing once the name is a view."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    ident = sql.Identifier(*name.split("."))
    row = conn.execute(sql.SQL("SELECT to_jsonb(x) FROM {} AS x LIMIT 1").format(ident)).fetchone()[0]
    keys = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'p' AND c.conrelid = to_regclass(%s)",
        (keyed_like,),
    ).fetchall()
    # no primary key: the view's INSERT makes a key of its own (md5 of the row + '#compat-' + a uuid)
    for column, kind in keys:
        if kind == "uuid":
            row[column] = conn.execute("SELECT gen_random_uuid()::text").fetchone()[0]
        elif kind in ("integer", "bigint", "smallint", "numeric"):
            row[column] = int(
                conn.execute(
                    sql.SQL("SELECT coalesce(max({}), 0) + 1000 FROM {}").format(sql.Identifier(column), ident)
                ).fetchone()[0]
            )
        else:
            row[column] = f"compat-{conn.execute('SELECT gen_random_uuid()').fetchone()[0]}"
    conn.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM jsonb_populate_record(NULL::{}, %s::jsonb)").format(
            ident, sql.Identifier(*keyed_like.split("."))
        ),
        (Jsonb(row),),
    )


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
    _insert_through(conn, source, ex.plan.archive_name(source))
    ex.verify("1b")


# ---------------------------------------------------------------------------------- decisions and revert
def test_a_revert_undoes_every_step_the_ledger_applied_even_one_the_decisions_skip_now(conn):
    """Attack: phase 1A applied (four tables archived); then a new decisions version skips
    company.company_slots (`make decide`, ctb_decide: a 'lossless' answer). The revert approval
    covers plan, code and phase, not the decisions, and its plan mode says 'would undo' three steps
    and 'approved'. The revert walks the phase as the decisions shape it NOW, so it thaws and renames
    back three tables, never undoes the skipped step, then fails its proof ('company.company_slots
    is at archive.company_company_slots_ctb'): half reverted, red, phase still 'frozen', and no revert
    can ever finish while the decision stands."""
    approve(conn)
    run_phase(executor(conn), "1a")
    decisions.record(
        conn,
        {"database": conn.info.dbname, "actions": {"company.company_slots": {"skip": "changed our mind"}}},
        "Grace",
        via="test",
    )
    approve_revert(conn, "1a")
    planned = "\n".join(r.text for r in executor(conn, mode="plan").revert_phase("1a"))
    assert "company_slots" in planned, planned  # plan mode names every step the revert has to undo
    executor(conn).revert_phase("1a")
    assert _exists(conn, "company.company_slots")


def test_a_view_built_on_a_compatibility_view_is_refused_before_the_revert_writes_anything(conn):
    """Attack: phase 1A applied; company.company_master is now a compatibility view over its
    archive. During the grace period a report view is created over the old name (what the
    compatibility view is there for). revert._built_on asks each action's revert_blockers, none of
    which looks at the compatibility views the revert drops: plan mode says 'would undo' and
    'approved', and the apply reverts the three other steps, then stops half way on
    `DROP VIEW company.company_master` (DependentObjectsStillExist, a raw database error): the
    named refusal before the first write that revert.py promises does not happen."""
    approve(conn)
    run_phase(executor(conn), "1a")
    conn.execute("CREATE VIEW public.v_company_count AS SELECT count(*) AS n FROM company.company_master")
    approve_revert(conn, "1a")
    planned = "\n".join(r.text for r in executor(conn, mode="plan").revert_phase("1a"))
    assert "v_company_count" in planned, planned
    with pytest.raises(PlanRejected, match="v_company_count"):
        executor(conn).revert_phase("1a")
    assert not _exists(conn, "marketing.company_master"), "reverted half way before the refusal"
