"""Each action type on the real fixture: apply, prove, apply again (changes nothing), revert."""

import pytest

from tests.reorg_helpers import (
    approve,
    approve_revert,
    assert_nothing_lost,
    count,
    end_state,
    executor,
    run_phase,
    table_fingerprints,
)

STEP_REPORT_STATUSES = {"applied", "already_done"}


@pytest.mark.parametrize(
    ("phase_id", "kinds"),
    [
        ("1a", {"ARCHIVE"}),
        ("1b", {"MERGE"}),
        ("1c", {"MERGE", "MOVE"}),
        ("1g", {"KEEP_AS_MV", "MOVE", "MERGE", "FOLD"}),
        ("1j", {"MERGE"}),
        ("1k", {"ADD_PK"}),
    ],
)
def test_phase_applies_proves_and_reapplies_as_a_no_op(conn, phase_id, kinds):
    approve(conn)
    before = table_fingerprints(conn)
    ex = executor(conn)
    assert {s.kind for s in ex.plan.phase(phase_id).steps} == kinds
    reports = run_phase(ex, phase_id)
    step_reports = reports[1:-2]
    assert {r.status for r in step_reports} == {"applied"}
    assert reports[-2].status == "applied"  # verify: the tool's rows proven against the snapshot
    assert_nothing_lost(conn, before)
    state = end_state(conn)

    again = run_phase(executor(conn), phase_id)
    assert {r.status for r in again[1:-2]} == {"already_done"}
    assert again[-1].status == "already_done"
    assert end_state(conn) == state


def test_merge_keeps_every_source_row_with_its_full_content(conn):
    approve(conn)
    sources = {
        "marketing.failed_email_verification": ("people.people_errors", "failed_email_verification"),
        "marketing.failed_company_match": ("outreach.company_target_errors", "failed_company_match"),
    }
    counts = {source: count(conn, source) for source in sources}
    run_phase(executor(conn), "1b")
    for source, (target, value) in sources.items():
        archived = "archive." + source.replace(".", "_") + "_ctb"
        schema, table = archived.split(".")
        target_schema, target_table = target.split(".")
        merged = conn.execute(
            f'SELECT count(*) FROM "{target_schema}"."{target_table}" WHERE error_type = %s AND ctb_source_table = %s',
            (value, source),
        ).fetchone()[0]
        missing = conn.execute(
            f'SELECT count(*) FROM (SELECT to_jsonb(a) FROM "{schema}"."{table}" a '
            f'EXCEPT ALL SELECT ctb_source_row FROM "{target_schema}"."{target_table}" WHERE ctb_source_table = %s) d',
            (source,),
        ).fetchone()[0]
        assert merged == counts[source] == count(conn, archived)
        assert missing == 0


def test_duplicate_archive_keys_stay_in_the_archived_source(conn):
    approve(conn)
    source_rows = count(conn, "outreach.outreach_orphan_archive")
    target_rows = count(conn, "outreach.outreach_archive")
    run_phase(executor(conn), "1j")
    merged = conn.execute(
        "SELECT count(*) FROM outreach.outreach_archive WHERE ctb_source_table = 'outreach.outreach_orphan_archive'"
    ).fetchone()[0]
    kept = conn.execute(
        "SELECT count(*) FROM archive.outreach_outreach_orphan_archive_ctb a "
        "WHERE EXISTS (SELECT 1 FROM outreach.outreach_archive t WHERE t.outreach_id = a.outreach_id AND t.ctb_source_table IS NULL)"
    ).fetchone()[0]
    assert kept > 0
    assert merged + kept == source_rows == count(conn, "archive.outreach_outreach_orphan_archive_ctb")
    assert count(conn, "outreach.outreach_archive") == target_rows + merged


def test_folds_aggregate_side_rows_and_report_the_unmatched(conn):
    approve(conn)
    sidecar_rows = count(conn, "people.people_sidecar")
    scores = conn.execute("SELECT count(DISTINCT person_unique_id) FROM people.person_scores").fetchone()[0]
    run_phase(executor(conn), "1g")
    assert conn.execute("SELECT count(sidecar) FROM people.people_master").fetchone()[0] == sidecar_rows
    assert (
        conn.execute(
            "SELECT count(*) FROM people.people_master WHERE seniority_score IS NOT NULL AND engagement_score IS NOT NULL AND fit_score IS NOT NULL"
        ).fetchone()[0]
        == scores
    )
    proofs = conn.execute(
        "SELECT coalesce(sum(jsonb_array_length(proof_lines)), 0) FROM outreach.bit_scores"
    ).fetchone()[0]
    details = conn.execute(
        "SELECT details FROM ple_ops.action_ledger WHERE step_id = '1g__fold__outreach_bit_scores' AND outcome = 'applied'"
    ).fetchone()[0]
    side = details["side_tables"]["bit.proof_lines"]
    assert side["unmatched"] > 0  # companies without a bit_scores row: reported, kept in the archive
    assert proofs == side["rows"] - side["unmatched"]
    assert count(conn, "archive.bit_proof_lines_ctb") == side["rows"]


def test_add_pk_low_lock_path_backfills_in_batches(conn):
    approve(conn)
    rows = count(conn, "people.people_master_archive")
    ex = executor(conn, large_table_rows=10, backfill_batch_pages=1)
    report = ex.run_step("1k__add_pk__people_people_master_archive")
    assert report.status == "applied"
    details = conn.execute(
        "SELECT details FROM ple_ops.action_ledger WHERE step_id = '1k__add_pk__people_people_master_archive'"
    ).fetchone()[0]
    assert details["path"] == "low-lock" and details["batches"] > 1 and details["rows_backfilled"] == rows
    pk = conn.execute(
        "SELECT array_agg(a.attname) FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.conrelid = 'people.people_master_archive'::regclass AND c.contype = 'p'"
    ).fetchone()[0]
    assert pk == ["archive_id"]
    conn.execute("INSERT INTO people.people_master_archive (archived_at) VALUES (now())")
    assert conn.execute("SELECT count(DISTINCT archive_id), count(*) FROM people.people_master_archive").fetchone() == (
        rows + 1,
        rows + 1,
    )
    assert ex.run_step("1k__add_pk__people_people_master_archive").status == "already_done"


def test_revert_puts_everything_back(conn):
    approve(conn)
    before = table_fingerprints(conn)
    names = {oid: name for oid, (name, *_rest) in before.items()}
    ex = executor(conn)
    run_phase(ex, "1g")
    approve_revert(conn, "1g")
    ex.revert_phase("1g")
    assert_nothing_lost(conn, before)
    after = table_fingerprints(conn)
    assert {oid: name for oid, (name, *_rest) in after.items() if oid in names} == names
    assert conn.execute("SELECT status FROM ple_ops.phase_status WHERE phase = '1g'").fetchone()[0] == "reverted"
    reverted = conn.execute(
        "SELECT count(*) FROM ple_ops.action_ledger WHERE phase = '1g' AND outcome = 'reverted' AND action <> 'REVERT'"
    ).fetchone()[0]
    assert reverted == len(ex.plan.phase("1g").steps)
