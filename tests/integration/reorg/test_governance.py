"""Issue 20: the owner's CTB governance layer (the 2026-03-12 twin, its DDL gate enabled). The tool
registers every name it gives a table before its DDL, records what it wrote, names what the gate
would refuse or what the owner froze before any write, and reports the registry's drift."""

import psycopg
import pytest

from ple import governance
from ple.ops import ensure_schema
from ple.reorg import decisions
from tests.reconcile_helpers import decide
from tests.reorg_helpers import (
    approve,
    approve_revert,
    assert_nothing_lost,
    executor,
    insert_valid_row,
    run_phase,
    table_fingerprints,
    table_shape,
)


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


@pytest.fixture
def gated(twin_2026_03_db):
    with psycopg.connect(twin_2026_03_db, autocommit=True) as connection:
        yield connection


def _registered(conn, name: str):
    schema, table = name.split(".")
    return conn.execute(
        "SELECT leaf_type, registered_by FROM ctb.table_registry WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    ).fetchone()


def test_the_tool_registers_its_own_tables_before_creating_them(gated):
    gate = governance.detect(gated)
    assert gate and "ctb_enforce_table_registration" in gate.triggers
    ensure_schema(gated)  # refused by the gate before: "ple_ops.approval is not registered"
    assert _registered(gated, "ple_ops.action_ledger") == ("SYSTEM", governance.REGISTERED_BY)
    recorded = gated.execute("SELECT count(*) FROM ple_ops.registry_change WHERE step_id = 'ple_ops'").fetchone()[0]
    assert recorded == len(governance.OPS_TABLES)
    ensure_schema(gated)  # again: nothing new
    assert gated.execute("SELECT count(*) FROM ple_ops.registry_change").fetchone()[0] == recorded


def test_lint_names_frozen_tables_a_step_would_alter_and_the_drift(gated):
    report = executor(gated, mode="plan").lint(["1c"])
    frozen = [f for f in report.errors if f.code == "guard-governance" and "outreach.people is frozen" in f.message]
    assert frozen and frozen[0].where == "1c__move__outreach_people", report.errors
    assert any(f.code == "governance" and "CTB governance layer" in f.message for f in report.info)
    drift = [f for f in report.warnings if f.code == "governance-drift"]
    assert drift and "UNREGISTERED_CTB_TABLE: 5 (5 objects: ctb.audit_log" in drift[0].message, drift
    assert "ROGUE_TABLE: 0" in drift[0].message and "COLUMN_DRIFT: not computed" in drift[0].message


def test_an_archive_phase_passes_the_gate_and_its_names_are_registered_and_recorded(gated):
    before = table_fingerprints(gated)
    planned = executor(gated, mode="plan")
    decide(gated)
    texts = "\n".join(r.text for r in run_phase(planned, "1j"))
    assert "register archive." in texts, texts
    approve(gated)
    reports = run_phase(executor(gated), "1j")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    written = gated.execute(
        "SELECT table_name, leaf_type FROM ple_ops.registry_change WHERE step_id LIKE '1j%%'"
    ).fetchall()
    assert written and all(leaf == "ARCHIVE" for _, leaf in written)
    for name, _ in written:  # every name the tool registered exists: intermediates were removed
        assert gated.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0], name
        assert _registered(gated, name)[1] == governance.REGISTERED_BY
    assert_nothing_lost(gated, before)
    again = run_phase(executor(gated), "1j")
    assert "failed" not in {r.status for r in again}


def test_plan_mode_does_not_call_done_what_the_owner_dropped(gated):
    """Phase 3 dropped company.company_master; a stale hand copy holds its archive name. Plan mode
    said `done; would change nothing` on the catalog's word (24 steps on this twin); apply refuses
    such a step, so plan mode says what apply would."""
    texts = {r.step_id: r.text for r in run_phase(executor(gated, mode="plan"), "1a")}
    text = texts["1a__archive__company_company_master"]
    assert "done; would change nothing" not in text, text
    assert "BLOCKED" in text and "nothing proves" in text and "company.company_master" in text


def test_a_trigger_left_dangling_is_reported(gated):
    """dol.bridge_renewal_calendar() still inserts into dol.pressure_signals, dropped in Phase 3."""
    report = executor(gated, mode="plan").lint(["1h"])
    found = [f for f in report.warnings if f.code == "dangling-trigger"]
    assert any(f.where == "dol.renewal_calendar" and "dol.pressure_signals" in f.message for f in found), found


def test_a_gone_source_is_explained_from_the_live_evidence(gated):
    """Phase 3's drops are not on the list of 2026-02-20 (and the owner's registry was synchronised
    with the catalog after them): the live rows say where the table went, the vendor copies that
    record their origin in source_table."""
    report = executor(gated, mode="plan").lint(["1a"])
    about = [f.message for f in report.errors if f.message.startswith("company.company_master:")]
    assert about and "its rows live on in vendor.ct (" in about[0], about


def test_a_gone_table_the_registry_still_lists_was_dropped_after_it_was_registered(gated):
    gated.execute(
        "INSERT INTO ctb.table_registry (table_schema, table_name, leaf_type, registered_by) "
        "VALUES ('marketing', 'failed_company_match', 'ERROR', 'ctb_phase3')"
    )
    report = executor(gated, mode="plan").lint(["1b"])
    about = [f.message for f in report.errors if f.message.startswith("marketing.failed_company_match:")]
    assert (
        about and "the owner's registry lists it (ERROR" in about[0] and "dropped after it was registered" in about[0]
    )


def test_the_leaf_lock_adopts_the_owner_gate_instead_of_adding_a_second(gated):
    from ple.reorg import leaf_lock
    from ple.reorg import plan as plan_module

    text = leaf_lock.run(gated, plan_module.load(), "test", apply=False)
    assert "adopted: the owner's CTB governance layer" in text and "ctb_enforce_table_registration" in text, text
    assert "plan mode: nothing written" in text
    assert not gated.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = 'ple_leaf_lock'").fetchone()


def test_a_frozen_table_is_altered_only_as_decided_and_frozen_again(gated):
    """1C moves outreach.people, which the owner froze. Without a decision the lint blocks it; the
    proposal (accept) lets the step unfreeze it inside its own transaction, register the new name
    first and freeze both again before it commits."""
    before = table_fingerprints(gated)
    decided = decide(gated)
    assert "outreach.people.frozen" in decided["guards"]["accept"]
    assert not [f for f in executor(gated, mode="plan").lint(["1c"]).errors if f.code == "guard-governance"]
    approve(gated)
    reports = run_phase(executor(gated), "1c")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    assert gated.execute("SELECT to_regclass('people.people_outreach_link') IS NOT NULL").fetchone()[0]
    frozen = dict(
        gated.execute(
            "SELECT format('%s.%s', table_schema, table_name), is_frozen FROM ctb.table_registry "
            "WHERE format('%s.%s', table_schema, table_name) IN ('outreach.people', 'people.people_outreach_link')"
        ).fetchall()
    )
    assert frozen == {"outreach.people": True, "people.people_outreach_link": True}
    recorded = gated.execute(
        "SELECT details FROM ple_ops.action_ledger WHERE step_id = '1c__move__outreach_people' AND outcome = 'applied'"
    ).fetchone()[0]
    assert recorded["unfrozen_in_transaction"] == ["outreach.people"]
    assert recorded["frozen_after"] == ["people.people_outreach_link"]
    assert_nothing_lost(gated, before)


def test_the_nightly_audit_reports_dangling_triggers_and_registry_drift(gated):
    from ple.audit.structure import findings

    found = findings(gated)
    assert any("dangling trigger" in f and "dol.pressure_signals" in f for f in found), found
    assert any(f.startswith("registry drift UNREGISTERED_CTB_TABLE: 5 ") for f in found), found
    assert any(f.startswith("registry drift PHANTOM_TABLE: 0") for f in found), found


def test_a_role_that_cannot_register_is_told_before_any_write(gated):
    gated.execute("CREATE ROLE ple_no_registry NOLOGIN")
    gated.execute("GRANT USAGE ON SCHEMA ctb TO ple_no_registry")
    gated.execute("GRANT SELECT ON ctb.table_registry TO ple_no_registry")
    gated.execute("SET ROLE ple_no_registry")
    try:
        from ple.catalog import read_catalog
        from ple.reorg import gate
        from ple.reorg import plan as plan_module

        plan = plan_module.load()
        step = plan.step("1j__merge__outreach_outreach_orphan_archive")
        found = gate.guards(gated, plan, read_catalog(gated), step, {})
    finally:
        gated.execute("RESET ROLE")
    refusal = [f for f in found if f[0] == "ctb.table_registry.privileges"]
    assert refusal and "lacks INSERT" in refusal[0][2] and refusal[0][4], found


def test_the_whole_reorganization_applies_under_the_owner_gate_and_converges(gated):
    """The acceptance path on the 2026-03-12 twin, gate enabled: `decide ACCEPT=proposed`, approve,
    apply 1A-1K: no DDL refused, no row lost, every registry row the tool wrote in its ledger, and a
    second apply changes nothing. (Phases every action of which the owner's drops made moot verify
    as having nothing to prove.)"""
    before = table_fingerprints(gated)
    decide(gated)
    approve(gated)
    ex = executor(gated)
    phases = [p.phase for p in ex.declared.phases if p.steps]
    for phase in phases:
        reports = run_phase(ex, phase)
        assert "failed" not in {r.status for r in reports}, (phase, [r.text for r in reports])
    assert_nothing_lost(gated, before)
    ours = set(
        gated.execute(
            "SELECT format('%%s.%%s', table_schema, table_name) FROM ctb.table_registry WHERE registered_by = %s",
            (governance.REGISTERED_BY,),
        ).fetchall()
    )
    recorded = set(gated.execute("SELECT table_name FROM ple_ops.registry_change").fetchall())
    assert ours == recorded and ours
    after = table_fingerprints(gated)
    again = executor(gated)
    for phase in phases:
        assert "failed" not in {r.status for r in run_phase(again, phase)}
    assert table_fingerprints(gated) == after


def test_revert_under_the_owner_gate_removes_exactly_the_registry_rows_the_tool_wrote(gated):
    """Apply then revert 1C (a frozen table moved, as decided) and 1J (archives): the gate refuses
    nothing, every table is back, the registry holds exactly the rows it held before (the owner's
    frozen flags included), and the tool's record of its rows is empty again."""
    before = table_fingerprints(gated)
    registry = set(gated.execute("SELECT table_schema, table_name, leaf_type, is_frozen FROM ctb.table_registry"))
    decide(gated)
    approve(gated)
    for phase in ("1c", "1j"):
        assert "failed" not in {r.status for r in run_phase(executor(gated), phase)}
    for phase in ("1j", "1c"):
        approve_revert(gated, phase)
        reports = executor(gated).revert_phase(phase)
        assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    assert_nothing_lost(gated, before)
    ours = gated.execute("SELECT table_name FROM ple_ops.registry_change WHERE step_id <> 'ple_ops'").fetchall()
    assert ours == []
    now = set(gated.execute("SELECT table_schema, table_name, leaf_type, is_frozen FROM ctb.table_registry"))
    assert registry <= now  # every row the owner had, with its leaf type and frozen flag
    assert {r[:2] for r in now - registry} <= {tuple(t.split(".")) for t in governance.OPS_TABLES}


def test_a_frozen_merge_target_gets_its_provenance_columns_only_as_decided(gated):
    """The preflight adds the discriminator and provenance columns to each merge target (an ALTER
    the gate refuses on a frozen table): as decided, unfrozen for that statement only."""
    gated.execute(
        "UPDATE ctb.table_registry SET is_frozen = true WHERE table_schema = 'outreach' AND table_name = 'outreach_archive'"
    )
    blocking = [f.message for f in executor(gated, mode="plan").lint(["1j"]).errors if f.code == "guard-governance"]
    assert any("outreach.outreach_archive is frozen" in m for m in blocking), blocking
    decide(gated)
    approve(gated)
    reports = run_phase(executor(gated), "1j")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    assert gated.execute(
        "SELECT is_frozen FROM ctb.table_registry WHERE table_schema = 'outreach' AND table_name = 'outreach_archive'"
    ).fetchone()[0]


def test_a_fold_view_its_writes_table_and_the_revert_that_returns_them_pass_the_gate(twin_db):
    """The 2026-02-20 twin (which still has a fold to do) under the owner's gate: the fold's
    compatibility view and the table of rows written through it are registered before they are
    made; a write through the old name, the phase's verify and its revert all pass the gate."""
    from ple.reorg.actions import fold_sql
    from ple_dev.fixture.production.twin_2026_03 import install_governance

    side = "outreach.dol_url_enrichment"
    with psycopg.connect(twin_db, autocommit=True) as conn:
        install_governance(conn)
        assert governance.detect(conn) is not None
        before = table_fingerprints(conn)
        shape = table_shape(conn, side)
        decide(conn)
        approve(conn)
        ex = executor(conn)
        phase = next(s.phase for s in ex.plan.steps if any(a.source == side for a in s.actions))
        run_phase(executor(conn), phase)
        writes = fold_sql.writes_table(ex.plan.archive_name(side))
        assert _registered(conn, writes)[0] == "DEPRECATED"  # the old name keeps the owner's registration
        insert_valid_row(conn, side, shape)
        executor(conn).verify(phase)
        approve_revert(conn, phase)
        executor(conn).revert_phase(phase)  # its proof: the side table holds its rows and the one written
        (oid,) = [oid for oid, (name, *_) in before.items() if name == side]
        rows_before = before.pop(oid)[2]
        assert_nothing_lost(conn, before)
        assert conn.execute(f"SELECT count(*) FROM {side}").fetchone()[0] == rows_before + 1
