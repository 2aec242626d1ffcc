"""Rehearse (carry a phase out, verify, roll back) and a pre-plan database whose tables the plan
does not describe have other columns than the fixture's."""

import pytest

from ple.reorg import decisions
from tests import rowcheck
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, assert_nothing_lost, end_state, executor, run_all, table_fingerprints

STEP_STAGES = ("preflight", "verify", "freeze")


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


def test_rehearse_finds_what_the_lint_cannot_with_real_counts_and_writes_nothing(conn):
    conn.execute("ALTER TABLE people.people_errors ADD COLUMN checked_at timestamptz DEFAULT now()")
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT short_error_type "
        "CHECK (checked_at IS NULL OR length(error_type) < 20) NOT VALID"
    )
    lint = executor(conn, mode="plan").lint(["1b"])
    assert lint.ok  # the CHECK reads a column the merge leaves to its default: the lint does not evaluate it
    state = end_state(conn)
    ex = executor(conn, mode="rehearse")
    report = ex.preflight("1b")
    assert report.status == "failed"
    assert "1b__merge__marketing_failed_email_verification: FAILS in rehearsal" in report.text
    assert "short_error_type" in report.text
    assert "1b__merge__marketing_failed_company_match: would apply: rows before" in report.text
    assert ex.run_step("1b__merge__marketing_failed_company_match").status == "rehearsed"
    assert end_state(conn) == state
    assert conn.execute("SELECT to_regnamespace('ple_ops') IS NULL AND to_regnamespace('archive') IS NULL").fetchone()[
        0
    ]


def test_rehearse_of_a_phase_that_fits_passes_and_rolls_back(conn):
    state = end_state(conn)
    report = executor(conn, mode="rehearse").preflight("1g")
    assert report.status == "rehearsed", report.text
    assert "verify people.person_scores -> archive.people_person_scores_ctb" in report.text
    assert "PROBLEM" not in report.text
    assert end_state(conn) == state


def test_a_pre_plan_database_with_other_columns_falls_back_to_the_generic_fold(conn):
    conn.execute("ALTER TABLE people.person_scores RENAME COLUMN score_type TO kind")
    conn.execute("ALTER TABLE people.person_scores RENAME COLUMN scored_at TO measured_on")
    conn.execute("ALTER TABLE bit.phase_state RENAME COLUMN current_phase TO phase_now")
    conn.execute("ALTER TABLE bit.proof_lines RENAME COLUMN created_at TO logged_at")
    errors = executor(conn, mode="plan").lint().errors
    undecided = {e.where for e in errors if e.code == "undecided"}
    assert undecided == {"1g__fold__people_people_master", "1g__fold__outreach_bit_scores"}
    assert any("score_type" in e.message for e in errors) and any("current_phase" in e.message for e in errors)
    decided = decide(conn)
    assert decided["actions"]["people.person_scores"] == decided["actions"]["people.person_scores"] | {
        "fold_as_jsonb": "person_scores"
    }
    assert decided["actions"]["bit.phase_state"]["fold_as_jsonb"] == "phase_state"
    assert decided["actions"]["bit.proof_lines"]["fold_as_jsonb"] == "proof_lines"
    approve(conn)
    rows, tables = rowcheck.take(conn), table_fingerprints(conn)
    reports = run_all(executor(conn))
    assert "failed" not in {r.status for r in reports}
    assert rowcheck.missing(rows, conn) == []
    assert_nothing_lost(conn, tables)
    folded = conn.execute(
        "SELECT coalesce(sum(jsonb_array_length(person_scores)), 0) FROM people.people_master"
    ).fetchone()[0]
    assert folded > 0
    state = end_state(conn)
    again = run_all(executor(conn))
    assert {r.status for r in again if r.step_id.split("__")[1] not in STEP_STAGES} == {"already_done"}
    assert end_state(conn) == state
