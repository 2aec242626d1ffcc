"""Adversarial: a revert is approved over the plan, the code and the phase, not over the decisions;
and it undoes each step as the decisions file says NOW, not as the ledger says it was applied."""

from __future__ import annotations

import pytest

from ple.errors import PlanRejected
from ple.reorg import decisions
from tests.reorg_helpers import approve, approve_revert, count, executor, run_phase, table_at

SOURCE = "outreach.dol_audit_log"
HAND_TARGET = "outreach.ctb_audit_log"


VALUES_BY_TYPE = {
    "uuid": "gen_random_uuid()",
    "integer": "g",
    "bigint": "g",
    "boolean": "true",
    "jsonb": "'{}'::jsonb",
    "timestamp with time zone": "now()",
    "timestamp without time zone": "now()::timestamp",
}


def add_rows(conn, table: str, rows: int) -> None:
    """`rows` rows into a table whose columns the test does not know: NOT NULL columns get a value by type."""
    schema, name = table.split(".")
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL ORDER BY ordinal_position",
        (schema, name),
    ).fetchall()
    names = ", ".join(f'"{c}"' for c, _ in columns)
    values = ", ".join(VALUES_BY_TYPE.get(t, "'x' || g") for _, t in columns)
    conn.execute(f"INSERT INTO {table} ({names}) SELECT {values} FROM generate_series(1, {rows}) AS g")


HAND_TARGET_DDL = (
    "CREATE TABLE outreach.ctb_audit_log (audit_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
    "source_hub varchar(50) NOT NULL DEFAULT 'hand', source_table text NOT NULL, log_data jsonb NOT NULL, "
    "original_id text, original_created_at timestamptz, ctb_merged_at timestamptz NOT NULL DEFAULT now())"
)


def test_editing_the_decisions_after_apply_never_makes_revert_double_rows(conn, decisions_dir):
    add_rows(conn, SOURCE, 7)
    conn.execute(HAND_TARGET_DDL)
    path = decisions.path_for(conn.info.dbname)
    raw = {
        "database": conn.info.dbname,
        "actions": {SOURCE: {"retarget": HAND_TARGET}},
        "targets": {
            HAND_TARGET: {"fill": {"source_table": {"discriminator": True}, "log_data": {"generate": "source_row"}}}
        },
    }
    decisions.write(raw, path)
    approve(conn)
    run_phase(executor(conn), "1d")
    merged = conn.execute(f"SELECT count(*) FROM {HAND_TARGET} WHERE ctb_source_table = %s", (SOURCE,)).fetchone()[0]
    assert merged == count(conn, "archive.outreach_dol_audit_log_ctb") == 7
    # later, someone edits the decisions file: the retarget is taken out again
    del raw["actions"][SOURCE]
    decisions.write(raw, path)
    approve_revert(conn, "1d")  # the same revert approval as before the edit: decisions are not part of it
    try:
        outcome = executor(conn).revert_phase("1d")[-1].status
    except Exception as exc:
        outcome = f"refused: {type(exc).__name__}: {str(exc)[:200]}"
    restored = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SOURCE,)).fetchone()[0]
    copies = conn.execute(f"SELECT count(*) FROM {HAND_TARGET} WHERE ctb_source_table = %s", (SOURCE,)).fetchone()[0]
    assert not (restored and copies), (
        f"revert of 1d ({outcome}) put {SOURCE} back ({count(conn, SOURCE)} rows) and left {copies} unchanged copies "
        f"of those rows in {HAND_TARGET}: each of them is now in two places"
    )


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
    assert table_at(conn, "company.company_slots")


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
    assert not table_at(conn, "marketing.company_master"), "reverted half way before the refusal"
