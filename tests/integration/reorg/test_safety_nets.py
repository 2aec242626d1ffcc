"""The engine's safety nets, one test per failure mode an adversarial review reproduced (issue 9):
ADD_PK on an existing key column, a lossless and resumable revert, a verify no option can fool, a
lint that sees mid-phase failures before the first write, lossy casts, locks in every transaction,
NULL timestamps in "latest" folds."""

import threading
import time

import psycopg
import pytest
from psycopg import sql

from ple.errors import NotApproved, PlanRejected, VerificationFailed
from ple.reorg import revert as revert_module
from tests.reorg_helpers import (
    approve,
    approve_revert,
    assert_nothing_lost,
    connect,
    count,
    end_state,
    executor,
    plan_from,
    raw_plan,
    run_phase,
    table_fingerprints,
)

PHASES_WITH_STEPS = ["1a", "1b", "1c", "1d", "1e", "1f", "1g", "1h", "1i", "1j", "1k"]


def _lint_errors(conn, phase: str, plan=None) -> list:
    return executor(conn, plan=plan, mode="plan").lint([phase]).errors


def _names_and_columns(conn) -> dict:
    return {oid: (name, columns) for oid, (name, columns, *_rest) in table_fingerprints(conn).items()}


# ---------------------------------------------------------------- ADD_PK on an existing column


def _existing_serial_key(conn) -> list[int]:
    """As production has it: dol.form_5500_icp_filtered.filter_id is serial, NOT NULL, no key."""
    conn.execute("ALTER TABLE dol.form_5500_icp_filtered ADD COLUMN filter_id serial NOT NULL")
    return [r[0] for r in conn.execute("SELECT filter_id FROM dol.form_5500_icp_filtered ORDER BY filter_id")]


@pytest.mark.parametrize("large_table_rows", [1_000_000, 0], ids=["one-statement", "low-lock"])
def test_add_pk_adopts_an_existing_unique_column_and_revert_keeps_it(conn, large_table_rows):
    values = _existing_serial_key(conn)
    approve(conn)
    ex = executor(conn, large_table_rows=large_table_rows, backfill_batch_pages=1)
    run_phase(ex, "1k")
    assert [r[0] for r in conn.execute("SELECT filter_id FROM dol.form_5500_icp_filtered ORDER BY 1")] == values
    key = conn.execute(
        "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.conrelid = 'dol.form_5500_icp_filtered'::regclass AND c.contype = 'p'"
    ).fetchone()[0]
    assert key == "filter_id"
    # the application's next INSERT takes the next id: the sequence was set past the maximum
    new_id = conn.execute(
        "INSERT INTO dol.form_5500_icp_filtered (sponsor_dfe_ein) VALUES ('123456789') RETURNING filter_id"
    ).fetchone()[0]
    assert new_id == max(values) + 1
    approve_revert(conn, "1k")
    ex.revert_phase("1k")
    ids = [r[0] for r in conn.execute("SELECT filter_id FROM dol.form_5500_icp_filtered ORDER BY 1")]
    assert ids == [*values, new_id]  # the column and every value are still there
    assert not conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = 'dol.form_5500_icp_filtered'::regclass AND contype = 'p'"
    ).fetchone()


@pytest.mark.parametrize("defect", ["nulls", "duplicates"])
def test_add_pk_refuses_an_unfit_existing_column_in_lint_and_changes_nothing(conn, defect):
    conn.execute("ALTER TABLE dol.form_5500_icp_filtered ADD COLUMN filter_id integer")
    conn.execute("UPDATE dol.form_5500_icp_filtered SET filter_id = 7")  # every value duplicated
    if defect == "nulls":
        conn.execute(
            "UPDATE dol.form_5500_icp_filtered SET filter_id = NULL "
            "WHERE ctid IN (SELECT ctid FROM dol.form_5500_icp_filtered LIMIT 3)"
        )
    rows = count(conn, "dol.form_5500_icp_filtered")
    errors = [e for e in _lint_errors(conn, "1k") if e.code == "add-pk"]
    assert errors and "filter_id" in errors[0].message
    expected = "3 NULL values" if defect == "nulls" else f"0 NULL values, {rows - 1} duplicated values"
    assert expected in errors[0].message
    approve(conn)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match="add-pk"):
        executor(conn).preflight("1k")
    with pytest.raises(PlanRejected, match="not fit to be the primary key"):
        executor(conn).run_step("1k__add_pk__dol_form_5500_icp_filtered")
    assert end_state(conn) == state


def test_add_pk_low_lock_batches_hold_the_advisory_lock(fresh_db, conn):
    approve(conn)
    ex_conn = connect(fresh_db)
    ex = executor(ex_conn, large_table_rows=0, backfill_batch_pages=1, lock_timeout="100ms", lock_retries=20)
    result = []
    with connect(fresh_db) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('ple.ctb_reorganization', 0))")
        worker = threading.Thread(target=lambda: result.append(ex.run_step("1k__add_pk__people_people_master_archive")))
        worker.start()
        time.sleep(1.0)  # the step waits for the lock (retrying its lock timeouts) and writes nothing
        assert (
            conn.execute(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'people.people_master_archive'::regclass AND attname = 'archive_id'"
            ).fetchone()[0]
            == 0
        )
        holder.execute("ROLLBACK")
        worker.join(120)
    assert result and result[0].status == "applied"


# ---------------------------------------------------------------- revert: lossless


def test_revert_keeps_merged_rows_edited_after_the_merge(conn):
    approve(conn)
    source_rows = count(conn, "marketing.failed_email_verification")
    ex = executor(conn)
    run_phase(ex, "1b")
    edited = conn.execute(
        "UPDATE people.people_errors SET error_message = 'resolved by hand' WHERE ctid IN (SELECT ctid FROM "
        "people.people_errors WHERE ctb_source_table = 'marketing.failed_email_verification' LIMIT 3) RETURNING ctb_source_key"
    ).fetchall()
    assert len(edited) == 3 < source_rows
    approve_revert(conn, "1b")
    reports = ex.revert_phase("1b")
    kept = conn.execute(
        "SELECT ctb_source_key, error_message FROM people.people_errors WHERE ctb_source_table = 'marketing.failed_email_verification'"
    ).fetchall()
    assert sorted(k for k, _ in kept) == sorted(k for (k,) in edited)
    assert {m for _, m in kept} == {"resolved by hand"}
    assert count(conn, "marketing.failed_email_verification") == source_rows
    assert any("3 rows merged from marketing.failed_email_verification" in r.text for r in reports)


def test_fold_revert_keeps_a_column_holding_values_it_cannot_restore(conn):
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1g")
    conn.execute(
        "UPDATE people.people_master SET seniority_score = 99 WHERE unique_id = (SELECT min(unique_id) FROM people.people_master)"
    )
    approve_revert(conn, "1g")
    ex.revert_phase("1g")
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'people.people_master'::regclass AND NOT attisdropped"
        )
    }
    assert "seniority_score" in columns and "sidecar" not in columns
    assert conn.execute("SELECT count(*) FROM people.people_master WHERE seniority_score = 99").fetchone()[0] == 1
    assert count(conn, "people.person_scores") > 0  # the side table is back


@pytest.mark.parametrize("phase_id", PHASES_WITH_STEPS)
def test_revert_of_every_phase_round_trips_to_the_preflight_state(conn, phase_id):
    approve(conn)
    before = table_fingerprints(conn)
    shape = _names_and_columns(conn)
    keys_before = sorted(
        conn.execute(
            "SELECT conrelid::bigint, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype IN ('f', 'p', 'u')"
        ).fetchall()
    )
    ex = executor(conn)
    run_phase(ex, phase_id)
    approve_revert(conn, phase_id)
    reports = ex.revert_phase(phase_id)
    assert reports[-1].status == "reverted", reports[-1].text
    assert_nothing_lost(conn, before)
    after = _names_and_columns(conn)
    assert {oid: name for oid, (name, _) in after.items() if oid in shape} == {oid: n for oid, (n, _) in shape.items()}
    keys_after = sorted(
        conn.execute(
            "SELECT conrelid::bigint, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype IN ('f', 'p', 'u')"
        ).fetchall()
    )
    assert keys_after == keys_before
    nullable = conn.execute("SELECT count(*) FROM ple_ops.tool_change WHERE change = 'relaxed_not_null'").fetchone()[0]
    assert nullable == 0  # every relaxed NOT NULL is back
    assert ex.revert_phase(phase_id)[-1].status == "reverted"  # again: nothing to do, still proven


def test_revert_needs_its_own_approval(conn):
    approve(conn)
    ex = executor(conn)
    run_phase(ex, "1h")
    state = end_state(conn)
    with pytest.raises(NotApproved, match="approve --revert 1h"):
        ex.revert_phase("1h")
    assert end_state(conn) == state
    plan_mode = executor(conn, mode="plan").revert_phase("1h")
    assert "NOT approved" in plan_mode[-1].text and end_state(conn) == state


# ---------------------------------------------------------------- revert: resumable


def test_a_revert_killed_at_every_step_boundary_converges(conn, monkeypatch):
    approve(conn)
    before = table_fingerprints(conn)
    ex = executor(conn)
    run_phase(ex, "1g")
    approve_revert(conn, "1g")
    real = revert_module._revert_step
    died_after: list[str] = []

    def dies_after_each_commit(ex_, step, fp):
        outcome = real(ex_, step, fp)
        if outcome.status == "reverted" and step.step_id not in died_after:
            died_after.append(step.step_id)
            raise RuntimeError(f"killed after {step.step_id} committed")
        return outcome

    monkeypatch.setattr(revert_module, "_revert_step", dies_after_each_commit)
    runs = 0
    while True:
        runs += 1
        try:
            reports = ex.revert_phase("1g")
            break
        except RuntimeError:
            status = conn.execute("SELECT status FROM ple_ops.phase_status WHERE phase = '1g'").fetchone()[0]
            assert status == "frozen"  # nothing is marked reverted before everything is
    assert runs == len(ex.plan.phase("1g").steps) + 1
    assert reports[-1].status == "reverted"
    assert_nothing_lost(conn, before)


def test_a_revert_killed_inside_a_step_leaves_that_step_untouched(conn, monkeypatch):
    approve(conn)
    before = table_fingerprints(conn)
    ex = executor(conn)
    run_phase(ex, "1b")
    approve_revert(conn, "1b")
    from ple.reorg.actions import merge

    real = merge.revert
    calls = []

    def dies_before_commit(ctx, step):
        outcome = real(ctx, step)
        calls.append(step.step_id)
        if len(calls) == 2:  # the second merge's revert ran, but its transaction never commits
            raise psycopg.OperationalError("terminating connection due to administrator command")
        return outcome

    monkeypatch.setattr(merge, "revert", dies_before_commit)
    with pytest.raises(psycopg.OperationalError):
        ex.revert_phase("1b")
    monkeypatch.undo()
    # one merge was reverted, the second rolled back whole: its source is still archived
    archived = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace WHERE nspname = 'archive'"
        )
    ]
    assert len([a for a in archived if a.startswith("marketing_")]) == 4
    ex.revert_phase("1b")
    assert_nothing_lost(conn, before)


def test_freezing_again_under_another_plan_forgets_no_detached_key(conn):
    approve(conn)
    keys_before = sorted(
        conn.execute(
            "SELECT conrelid::bigint, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
    )
    ex = executor(conn)
    run_phase(ex, "1g")
    assert conn.execute("SELECT count(*) FROM ple_ops.detached_fk WHERE phase = '1g'").fetchone()[0] >= 2
    raw = raw_plan()
    raw["phases"][6]["title"] += " (edited)"
    edited = plan_from(raw)
    approve(conn, edited)
    assert executor(conn, plan=edited).freeze("1g").status == "applied"
    approve_revert(conn, "1g", edited)
    executor(conn, plan=edited).revert_phase("1g")
    keys_after = sorted(
        conn.execute(
            "SELECT conrelid::bigint, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
    )
    assert keys_after == keys_before


def test_not_null_relaxed_in_preflight_is_restored_even_if_the_phase_stopped_there(conn):
    approve(conn)
    ex = executor(conn)
    ex.preflight("1b")  # relaxes people.people_errors.outreach_id; the phase goes no further
    assert not conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'people.people_errors'::regclass AND attname = 'outreach_id'"
    ).fetchone()[0]
    approve_revert(conn, "1b")
    ex.revert_phase("1b")
    assert conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'people.people_errors'::regclass AND attname = 'outreach_id'"
    ).fetchone()[0]


def _not_null(conn, table: str, column: str) -> bool:
    return conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s", (table, column)
    ).fetchone()[0]


def _helper_checks(conn, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND conname LIKE 'ctb_not_null_%%'",
            (table,),
        )
    ]


def test_not_null_restore_killed_after_its_helper_check_was_added_converges(conn):
    """The restore validates a helper CHECK while the table stays writable, then sets NOT NULL
    without a scan; a run killed after adding the helper leaves it, and the next run finishes."""
    approve(conn)
    ex = executor(conn)
    ex.preflight("1b")
    helper = revert_module.not_null_helper("outreach_id")
    conn.execute(
        f'ALTER TABLE people.people_errors ADD CONSTRAINT "{helper}" CHECK (outreach_id IS NOT NULL) NOT VALID'
    )
    conn.execute(
        sql.SQL("COMMENT ON CONSTRAINT {} ON people.people_errors IS {}").format(
            sql.Identifier(helper), sql.Literal(revert_module.HELPER_COMMENT)
        )
    )
    approve_revert(conn, "1b")
    ex.revert_phase("1b")
    assert _not_null(conn, "people.people_errors", "outreach_id")
    assert _helper_checks(conn, "people.people_errors") == []


def test_not_null_stays_relaxed_while_a_null_is_there_and_no_helper_is_left(conn):
    approve(conn)
    ex = executor(conn)
    ex.preflight("1b")
    conn.execute(
        "UPDATE people.people_errors SET outreach_id = NULL WHERE ctid = (SELECT ctid FROM people.people_errors LIMIT 1)"
    )
    approve_revert(conn, "1b")
    report = ex.revert_phase("1b")
    assert not _not_null(conn, "people.people_errors", "outreach_id")
    assert _helper_checks(conn, "people.people_errors") == []
    assert "people.people_errors.outreach_id stays nullable: 1 rows hold NULL" in str(report)


# ---------------------------------------------------------------- verify


def test_verify_fails_on_a_lost_tool_owned_row_whatever_the_options(conn):
    approve(conn)
    ex = executor(conn)
    ex.preflight("1b")
    for step in ex.plan.phase("1b").steps:
        ex.run_step(step.step_id)
    conn.execute(
        "DELETE FROM people.people_errors WHERE ctid = (SELECT ctid FROM people.people_errors WHERE ctb_source_table = 'marketing.failed_slot_assignment' LIMIT 1)"
    )
    with pytest.raises(VerificationFailed, match="failed_slot_assignment"):
        ex.verify("1b")


def test_a_phase_completes_on_a_database_taking_writes_and_reports_them(conn):
    approve(conn)
    ex = executor(conn)
    ex.preflight("1c")
    for step in ex.plan.phase("1c").steps:
        ex.run_step(step.step_id)
    conn.execute(
        "INSERT INTO outreach.url_discovery_failures (failure_id, company_unique_id, failure_reason) "
        "VALUES (gen_random_uuid(), 'written-by-the-application', 'timeout')"
    )
    columns = conn.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'people.people_errors'::regclass "
        "AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE 'ctb%%' AND attname NOT IN ('error_id')"
    ).fetchone()[0]
    conn.execute(
        f"INSERT INTO people.people_errors (error_id, {columns}) SELECT gen_random_uuid(), {columns} FROM people.people_errors "
        "WHERE ctb_source_table IS NULL LIMIT 1"
    )
    report = ex.verify("1c")
    assert report.status == "applied"
    assert "live table changed by other sessions: people.people_errors" in report.text


def test_verify_does_not_count_merges_reverted_since(conn):
    approve(conn)
    run_phase(executor(conn), "1e")
    approve_revert(conn, "1e")
    executor(conn).revert_phase("1e")
    reports = run_phase(executor(conn), "1e")
    assert reports[-2].status == "applied"


# ---------------------------------------------------------------- lint sees mid-phase failures


def test_lint_sees_two_tables_moved_into_one_schema_with_the_same_index_name(conn):
    # legal in two schemas; both tables are archived into `archive` by phase 1a
    conn.execute("CREATE INDEX idx_company ON company.company_master (company_unique_id)")
    conn.execute("CREATE INDEX idx_company ON marketing.company_master (company_unique_id)")
    errors = [e for e in _lint_errors(conn, "1a") if e.code == "name-collision"]
    assert errors and "archive.idx_company" in errors[0].message
    approve(conn)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match="name-collision"):
        executor(conn).preflight("1a")
    assert end_state(conn) == state


def test_lint_sees_duplicate_keys_inside_a_keyless_source(conn):
    conn.execute("ALTER TABLE outreach.outreach_orphan_archive DROP CONSTRAINT outreach_orphan_archive_pkey")
    conn.execute(
        "INSERT INTO outreach.outreach_orphan_archive SELECT * FROM outreach.outreach_orphan_archive o "
        "WHERE NOT EXISTS (SELECT 1 FROM outreach.outreach_archive a WHERE a.outreach_id = o.outreach_id) LIMIT 2"
    )
    errors = [e for e in _lint_errors(conn, "1j") if e.code == "duplicate-source-key"]
    assert errors and "4 rows of outreach.outreach_orphan_archive share 2 values" in errors[0].message


# ---------------------------------------------------------------- casts


def test_a_lossy_cast_is_refused_unless_the_plan_accepts_it(conn):
    raw = raw_plan()
    del raw["merge_targets"]["cl.cl_err_existence"]["accept_lossy_casts"]["name_match_score"]
    strict = plan_from(raw)
    errors = [e for e in _lint_errors(conn, "1b", strict) if e.code == "lossy-cast"]
    assert errors and "fuzzy_score -> cl.cl_err_existence.name_match_score" in errors[0].message
    approve(conn, strict)
    with pytest.raises(PlanRejected, match="would lose information"):
        executor(conn, plan=strict).run_step("1b__merge__marketing_failed_low_confidence")
    # the shipped plan accepts it, with its reason; the exact value stays in the provenance
    approve(conn)
    run_phase(executor(conn), "1b")
    row = conn.execute(
        "SELECT name_match_score, ctb_source_row ->> 'fuzzy_score' FROM cl.cl_err_existence "
        "WHERE ctb_source_row ->> 'fuzzy_score' = '627.49'"
    ).fetchone()
    assert row == (627, "627.49")


def test_a_timestamp_merge_does_not_depend_on_the_session_time_zone(pg_server, conn, fresh_db):
    from tests.helpers import clone_fixture

    approve(conn)
    run_phase(executor(conn), "1b")
    utc = conn.execute(
        "SELECT ctb_source_key, created_at FROM people.people_errors WHERE ctb_source_row ->> 'created_at' IS NOT NULL ORDER BY 1"
    ).fetchall()
    assert utc
    other = clone_fixture(pg_server)
    with psycopg.connect(other, autocommit=True, options="-c TimeZone=America/New_York") as ny:
        approve(ny)
        run_phase(executor(ny), "1b")
        ny.execute("SET TimeZone = 'UTC'")
        assert (
            ny.execute(
                "SELECT ctb_source_key, created_at FROM people.people_errors WHERE ctb_source_row ->> 'created_at' IS NOT NULL ORDER BY 1"
            ).fetchall()
            == utc
        )


# ---------------------------------------------------------------- folds


def test_fold_latest_puts_null_timestamps_last(conn):
    person, latest = conn.execute(
        "SELECT person_unique_id, score FROM people.person_scores WHERE score_type = 'seniority' AND scored_at IS NOT NULL "
        "ORDER BY scored_at DESC LIMIT 1"
    ).fetchone()
    conn.execute("ALTER TABLE people.person_scores ALTER COLUMN scored_at DROP NOT NULL")  # as other databases allow
    conn.execute(
        "INSERT INTO people.person_scores (id, person_unique_id, score_type, score, scored_at) "
        "SELECT max(id) + 1, %s, 'seniority', -1, NULL FROM people.person_scores",
        (person,),
    )
    approve(conn)
    run_phase(executor(conn), "1g")
    folded = conn.execute(
        "SELECT seniority_score FROM people.people_master WHERE unique_id = %s", (person,)
    ).fetchone()[0]
    assert (
        folded
        == conn.execute(
            "SELECT score FROM archive.people_person_scores_ctb WHERE person_unique_id = %s AND score_type = 'seniority' "
            "ORDER BY scored_at DESC NULLS LAST, id DESC LIMIT 1",
            (person,),
        ).fetchone()[0]
    )
    assert folded != -1 and latest is not None


def test_a_folded_value_changed_after_the_fold_fails_verify(conn):
    approve(conn)
    ex = executor(conn)
    ex.preflight("1g")
    for step in ex.plan.phase("1g").steps:
        ex.run_step(step.step_id)
    conn.execute(
        "UPDATE outreach.bit_scores SET bit_phase = 'tampered' WHERE outreach_id = (SELECT outreach_id FROM outreach.bit_scores WHERE bit_phase IS NOT NULL ORDER BY 1 LIMIT 1)"
    )
    with pytest.raises(VerificationFailed, match=r"bit\.phase_state"):
        ex.verify("1g")
