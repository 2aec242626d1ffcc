"""Acceptance on the production twin (the database as it stood on 2026-02-20): plan mode runs to
the end, writes nothing and prints the reconcile table; after `decide --accept proposed` and an
approval the whole reorganization applies, an independent row check finds every row that existed
before (hand copies included), the guards are still in place, and a second apply changes nothing."""

from tests import rowcheck
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, assert_nothing_lost, end_state, executor, run_all, table_fingerprints

STEP_STAGES = ("preflight", "verify", "freeze")
GUARDS = """
SELECT 'trigger', tgrelid::bigint, tgname || ':' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal AND tgname <> 'ple_ctb_frozen'
UNION ALL SELECT 'rls', oid::bigint, relrowsecurity::text || relforcerowsecurity::text FROM pg_class WHERE relrowsecurity
UNION ALL SELECT 'policy', polrelid::bigint, polname FROM pg_policy
UNION ALL SELECT 'check', conrelid::bigint, conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c'
UNION ALL SELECT 'unique', indexrelid::bigint, '' FROM pg_index WHERE indisunique AND NOT indisprimary
UNION ALL SELECT 'view', oid::bigint, '' FROM pg_class WHERE relkind IN ('v', 'm')
  AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')
UNION ALL SELECT 'function', oid::bigint, '' FROM pg_proc
  WHERE pronamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'ple_ops')
"""


def guards_in_place(conn) -> set[tuple]:
    """Every guard by kind and OID (tables keep their OID through a move or an archive)."""
    return set(conn.execute(GUARDS).fetchall())


def test_plan_mode_on_the_twin_runs_to_the_end_writes_nothing_and_prints_the_reconcile_table(twin):
    state, tables = end_state(twin), table_fingerprints(twin)
    reports = run_all(executor(twin, mode="plan"))
    assert {r.status for r in reports} <= {"planned", "already_done"}
    text = "\n".join(r.text for r in reports)
    for state_name in ("pending", "conflict", "moot", "adopted"):
        assert f"  {state_name}  " in text
    assert "archive.company_company_master_ctb_handcopy_20260206" in text
    assert "UNDECIDED" in text
    assert end_state(twin) == state
    assert table_fingerprints(twin) == tables


def test_decided_twin_applies_loses_no_row_keeps_its_guards_and_converges(twin):
    proposed = decide(twin)
    assert proposed["actions"]["company.company_master"]["set_aside"].endswith("_handcopy_20260206")
    approve(twin)
    lint = executor(twin, mode="plan").lint()
    assert lint.ok, lint.render()
    rows_before, tables_before = rowcheck.take(twin), table_fingerprints(twin)
    synced = twin.execute("SELECT count(*) FROM shq.error_master").fetchone()[0]
    guards_before = guards_in_place(twin)
    reports = run_all(executor(twin))
    assert "failed" not in {r.status for r in reports}
    assert rowcheck.missing(rows_before, twin) == []
    assert_nothing_lost(twin, tables_before)
    assert guards_before - guards_in_place(twin) == set()
    enabled = twin.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'D'").fetchone()[0]
    assert enabled == 0  # triggers disabled for a step's transaction are enabled again
    assert twin.execute("SELECT count(*) FROM shq.error_master").fetchone()[0] == synced  # merged rows not fanned out
    state = end_state(twin)
    again = run_all(executor(twin))
    steps = [r for r in again if r.step_id.split("__")[1] not in STEP_STAGES]
    assert {r.status for r in steps} == {"already_done"}
    assert end_state(twin) == state
