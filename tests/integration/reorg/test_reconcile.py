"""Reconcile and decisions on real-world states built by hand on a fixture clone: stale hand copies
beside growing sources, dropped sources and targets, a table moved by hand, a merge target the
hand run replaced. Plan mode runs to the end and writes nothing; after `decide` + approve the
whole reorganization applies, loses no row (hand copies included) and a second apply changes nothing."""

import pytest
import yaml

from ple.errors import PlanRejected
from ple.reorg import decisions
from ple.reorg.reconcile import Status, reconcile
from tests.reconcile_helpers import decide, production_like, stale_hand_copy
from tests.reorg_helpers import (
    approve,
    assert_nothing_lost,
    count,
    end_state,
    executor,
    run_all,
    run_phase,
    table_fingerprints,
)

STEP_STAGES = ("preflight", "verify", "freeze")


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    return tmp_path / "decisions"


def _verdicts(conn):
    from ple.catalog import read_catalog
    from ple.reorg import plan as plan_module

    return {v.action.source: v for v in reconcile(conn, plan_module.load(), read_catalog(conn))}


def test_every_action_of_the_pre_plan_fixture_is_pending(conn):
    verdicts = _verdicts(conn)
    assert len(verdicts) == 53
    assert {v.status for v in verdicts.values()} == {Status.PENDING}


def test_states_are_classified_with_evidence(conn):
    production_like(conn)
    verdicts = _verdicts(conn)
    stale = verdicts["company.company_master"]
    assert stale.status == Status.CONFLICT
    assert "hand copy" in stale.evidence and "live rows are not in the copy" in stale.evidence
    assert "3 copy rows no longer match" in stale.evidence or "copy rows no longer match" in stale.evidence
    assert stale.proposal == {"set_aside": "archive.company_company_master_ctb_handcopy_20260206"}
    dropped = verdicts["outreach.people_errors"]
    assert dropped.status == Status.MOOT and "dropped on 2026-02-20" in dropped.evidence
    assert "skip" in dropped.proposal
    moved = verdicts["company.url_discovery_failures"]
    assert moved.status == Status.ADOPTED and "checksum" in moved.evidence
    retarget = verdicts["outreach.dol_audit_log"]
    assert retarget.status == Status.CONFLICT and retarget.proposal == {"retarget": "outreach.ctb_audit_log"}
    assert verdicts["bit.movement_events"].status == Status.MOOT
    assert verdicts["people.person_scores"].status == Status.MOOT


def test_plan_mode_runs_to_the_end_writes_nothing_and_prints_the_reconcile_table(conn):
    production_like(conn)
    state = end_state(conn)
    reports = run_all(executor(conn, mode="plan"))
    assert {r.status for r in reports} <= {"planned", "already_done"}
    text = "\n".join(r.text for r in reports)
    for word in ("conflict", "moot", "adopted", "UNDECIDED", "set_aside", "retarget"):
        assert word in text
    assert end_state(conn) == state
    assert conn.execute("SELECT to_regnamespace('ple_ops') IS NULL").fetchone()[0]


def test_apply_refuses_undecided_conflicts_before_any_write(conn):
    production_like(conn)
    approve(conn)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match="undecided"):
        executor(conn).preflight("1a")
    assert end_state(conn) == state


def test_catalog_that_only_looks_done_is_not_reported_done(conn):
    """A table at the archive name with other columns and the source gone: no evidence, not done."""
    conn.execute("CREATE SCHEMA archive")
    conn.execute("ALTER TABLE marketing.people_master ADD COLUMN hand_note text")
    conn.execute("ALTER TABLE marketing.people_master SET SCHEMA archive")
    conn.execute("ALTER TABLE archive.people_master RENAME TO marketing_people_master_ctb")
    verdict = _verdicts(conn)["marketing.people_master"]
    assert verdict.status == Status.MOOT and "no evidence" in verdict.evidence
    approve(conn)
    with pytest.raises(PlanRejected, match="nothing proves"):
        executor(conn).run_step("1a__archive__marketing_people_master")


def test_decided_production_like_state_applies_loses_nothing_and_converges(conn, decisions_dir):
    production_like(conn)
    copy_rows = count(conn, "archive.company_company_master_ctb")
    decided = decide(conn)
    text = (decisions_dir / f"{conn.info.dbname}.yaml").read_text()
    assert yaml.safe_load(text) == decided
    assert decided["actions"]["company.company_master"]["set_aside"].endswith("_handcopy_20260206")
    assert decided["actions"]["outreach.people_errors"]["skip"].startswith("source gone")
    assert "source_table" in decided["targets"]["outreach.ctb_audit_log"]["fill"]
    approve(conn)
    before = table_fingerprints(conn)
    reports = run_all(executor(conn))
    assert "failed" not in {r.status for r in reports}
    assert_nothing_lost(conn, before)
    assert count(conn, "archive.company_company_master_ctb_handcopy_20260206") == copy_rows
    assert count(conn, "archive.company_company_master_ctb") == count(conn, "archive.company_company_master_ctb")
    outcomes = dict(
        conn.execute(
            "SELECT step_id, outcome FROM ple_ops.action_ledger WHERE outcome IN ('adopted', 'skipped')"
        ).fetchall()
    )
    assert outcomes["1c__move__company_url_discovery_failures"] == "adopted"
    assert outcomes["1c__merge__outreach_people_errors"] == "skipped"
    assert outcomes["1g__fold__people_people_master.people_person_scores"] == "skipped"
    merged = conn.execute(
        "SELECT count(*) FROM outreach.ctb_audit_log WHERE ctb_source_table = 'outreach.dol_audit_log'"
    ).fetchone()[0]
    assert merged == count(conn, "archive.outreach_dol_audit_log_ctb")
    state = end_state(conn)
    again = run_all(executor(conn))
    steps = [r for r in again if r.step_id.split("__")[1] not in STEP_STAGES]
    assert {r.status for r in steps} == {"already_done"}
    assert end_state(conn) == state


def test_editing_the_decisions_voids_the_approval(conn, decisions_dir):
    from ple.errors import NotApproved

    stale_hand_copy(conn, "company.company_master", "archive.company_company_master_ctb")
    decide(conn)
    approve(conn)
    path = decisions_dir / f"{conn.info.dbname}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["actions"]["company.company_master"]["set_aside"] = "archive.company_master_other_name"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(NotApproved):
        run_phase(executor(conn), "1a")


def test_an_invalid_decisions_file_is_refused_with_its_path(conn, decisions_dir):
    decisions_dir.mkdir()
    (decisions_dir / f"{conn.info.dbname}.yaml").write_text(
        yaml.safe_dump(
            {"database": conn.info.dbname, "actions": {"company.company_master": {"skip": "x; DROP"}, "bad": {}}}
        )
    )
    with pytest.raises(decisions.DecisionsRejected, match="does not match"):
        executor(conn)


def test_an_empty_look_alike_is_never_adopted_and_no_adoption_happens_undecided(conn):
    """Found by review: an empty table with the inventory's column names, where someone dropped
    the source with its rows, was recorded as `adopted` by apply without any decision."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS archive")
    conn.execute("CREATE TABLE archive.company_company_slots_ctb (LIKE company.company_slots)")
    conn.execute("DROP TABLE company.company_slots CASCADE")
    verdict = _verdicts(conn)["company.company_slots"]
    assert verdict.status != Status.ADOPTED
    approve(conn)
    with pytest.raises(PlanRejected):
        executor(conn).run_step("1a__archive__company_company_slots")
    adopted = conn.execute("SELECT count(*) FROM ple_ops.action_ledger WHERE outcome = 'adopted'").fetchone()[0]
    assert adopted == 0
