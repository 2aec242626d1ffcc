"""Adversarial (review 4): the merge's mapped-rows guard (plugins/ple/reorg/guards.py
`_mapped_rows`), the fold's keys compared as text, the owner's DDL gate, reconcile's evidence."""

import psycopg
import pytest

from ple.reorg import decisions  # noqa: F401
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, executor, run_phase


def _blocking(conn, phase: str) -> list[str]:
    return [f.message for f in executor(conn, mode="plan").lint([phase]).errors]


def _failed(conn, phase: str) -> list[str]:
    approve(conn)
    try:
        return [r.text for r in run_phase(executor(conn), phase) if r.status == "failed"]
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}"]


def _lint_clear_then_apply(conn, phase: str, needle: str) -> None:
    blocking = _blocking(conn, phase)
    failed = _failed(conn, phase)
    about = [b for b in blocking if needle in b]
    assert about or not failed, f"lint was clear of {needle} ({blocking}) but apply failed: {failed}"


def test_a_fill_constant_longer_than_the_target_varchar_is_measured(conn):
    conn.execute("ALTER TABLE people.people_errors ALTER COLUMN error_stage TYPE varchar(8) USING left(error_stage, 8)")
    _lint_clear_then_apply(conn, "1b", "error_stage")


def test_a_discriminator_longer_than_the_target_varchar_is_measured(conn):
    conn.execute("ALTER TABLE people.people_errors ALTER COLUMN error_type TYPE varchar(12) USING left(error_type, 12)")
    _lint_clear_then_apply(conn, "1b", "error_type")


def test_a_check_on_the_whole_row_is_evaluated(conn):
    conn.execute(
        "CREATE FUNCTION public.row_ok(r people.people_errors) RETURNS boolean LANGUAGE sql IMMUTABLE "
        "AS $$ SELECT r.error_type IS DISTINCT FROM 'x' AND length(r.error_message) < 5 $$"
    )
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT whole_row CHECK (public.row_ok(people_errors.*)) NOT VALID"
    )
    _lint_clear_then_apply(conn, "1b", "whole_row")


def test_a_check_reading_no_column_is_evaluated(conn):
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT no_cols CHECK (current_setting('ple.never', true) IS NOT NULL) NOT VALID"
    )
    _lint_clear_then_apply(conn, "1b", "no_cols")


def test_plan_mode_lint_does_not_commit_a_checks_side_effects(conn):
    conn.execute("CREATE TABLE public.side_effects (n int)")
    conn.execute(
        "CREATE FUNCTION public.noisy(t text) RETURNS boolean LANGUAGE plpgsql VOLATILE "
        "AS $$ BEGIN INSERT INTO public.side_effects VALUES (1); RETURN true; END $$"
    )
    conn.execute("ALTER TABLE people.people_errors ADD CONSTRAINT noisy CHECK (public.noisy(error_message)) NOT VALID")
    _blocking(conn, "1b")
    assert conn.execute("SELECT count(*) FROM public.side_effects").fetchone()[0] == 0


def test_a_match_full_foreign_key_with_a_null_column_is_counted(conn):
    conn.execute("CREATE TABLE public.kinds (code text, outreach uuid, UNIQUE (code, outreach))")
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT fk_full FOREIGN KEY (error_code, outreach_id) "
        "REFERENCES public.kinds (code, outreach) MATCH FULL NOT VALID"
    )
    _lint_clear_then_apply(conn, "1b", "fk_full")


# --- the fold's keys compared as text -----------------------------------------------------------


def _uuid_matches(conn) -> int:
    return conn.execute(
        "SELECT count(DISTINCT b.outreach_id) FROM outreach.bit_scores b "
        "JOIN cl.company_identity c ON c.outreach_id = b.outreach_id "
        "JOIN bit.phase_state s ON s.company_unique_id::uuid = c.company_unique_id"
    ).fetchone()[0]


def test_a_side_key_holding_an_uppercase_uuid_text_is_folded(conn):
    conn.execute(
        "ALTER TABLE bit.phase_state ALTER COLUMN company_unique_id TYPE text USING upper(company_unique_id::text)"
    )
    expected = _uuid_matches(conn)
    assert expected
    report = executor(conn, mode="plan").lint(["1g"])
    assert not report.errors, report.errors
    approve(conn)
    reports = run_phase(executor(conn), "1g")
    statuses = {r.status for r in reports}
    folded = conn.execute("SELECT count(*) FROM outreach.bit_scores WHERE bit_phase IS NOT NULL").fetchone()[0]
    assert "failed" in statuses or folded == expected, (folded, expected)


# --- the owner's DDL gate (2026-03-12 twin) -----------------------------------------------------


@pytest.fixture
def gated(twin_2026_03_db):
    with psycopg.connect(twin_2026_03_db, autocommit=True) as connection:
        yield connection


def _frozen(conn, *names: str) -> dict:
    return dict(
        conn.execute(
            "SELECT format('%%s.%%s', table_schema, table_name), is_frozen FROM ctb.table_registry "
            "WHERE format('%%s.%%s', table_schema, table_name) = ANY(%s)",
            (list(names),),
        ).fetchall()
    )


def test_a_revert_of_a_move_of_a_frozen_table_is_not_refused_by_the_gate(gated):
    decide(gated)
    approve(gated)
    reports = run_phase(executor(gated), "1c")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    approve_revert(gated, "1c")
    try:
        executor(gated).revert_phase("1c")
    except Exception as exc:
        pytest.fail(f"revert failed: {type(exc).__name__}: {exc}")
    assert gated.execute("SELECT to_regclass('outreach.people') IS NOT NULL").fetchone()[0]
    assert _frozen(gated, "outreach.people")["outreach.people"] is True


def test_a_frozen_merge_target_accepted_by_a_person_passes_the_preflight(gated):
    target = "outreach.company_target_archive"
    gated.execute(
        "UPDATE ctb.table_registry SET is_frozen = true "
        "WHERE table_schema = 'outreach' AND table_name = 'company_target_archive'"
    )
    decided = decide(gated)
    assert f"{target}.frozen" in decided["guards"]["accept"], decided["guards"]
    assert not [f for f in executor(gated, mode="plan").lint(["1j"]).errors if f.code == "guard-governance"]
    approve(gated)
    try:
        reports = run_phase(executor(gated), "1j")
    except Exception as exc:
        pytest.fail(f"apply failed: {type(exc).__name__}: {exc}")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    assert gated.execute(
        "SELECT count(*) FROM outreach.company_target_archive WHERE ctb_source_table IS NOT NULL"
    ).fetchone()[0]
    assert _frozen(gated, target)[target] is True


def test_a_rehearsal_under_the_owner_gate_rehearses_what_apply_does(gated):
    decide(gated)
    report = executor(gated, mode="rehearse").preflight("1j")
    assert "CTB_DDL_GATE" not in report.text, report.text
    assert report.status not in ("failed", "incomplete"), report.text


# --- reconcile's evidence for a gone table ------------------------------------------------------


def test_a_materialized_view_with_a_source_table_column_does_not_crash_the_lint(conn):
    conn.execute(
        "CREATE MATERIALIZED VIEW public.copies AS SELECT 'marketing.failed_email_verification'::text AS source_table "
        "WITH NO DATA"
    )
    conn.execute("DROP TABLE marketing.failed_email_verification CASCADE")
    try:
        report = executor(conn, mode="plan").lint(["1b"])
    except psycopg.Error as exc:
        pytest.fail(f"lint crashed: {type(exc).__name__}: {exc}")
    assert any("failed_email_verification" in f.message for f in report.errors + report.warnings + report.info)


def test_a_view_with_a_source_table_column_that_cannot_be_read_does_not_crash_the_lint(conn):
    conn.execute(
        "CREATE VIEW public.copies AS SELECT source_table FROM (VALUES ('marketing.failed_email_verification'::text)) "
        "AS t(source_table) WHERE 1 / (SELECT count(*) FROM pg_class WHERE false)::int = 1"
    )
    conn.execute("DROP TABLE marketing.failed_email_verification CASCADE")
    try:
        executor(conn, mode="plan").lint(["1b"])
    except psycopg.Error as exc:
        pytest.fail(f"lint crashed: {type(exc).__name__}: {exc}")


def test_a_unique_index_on_a_column_the_merge_leaves_to_its_default_is_counted(conn):
    conn.execute("ALTER TABLE people.people_errors ADD COLUMN intake_batch text")  # existing rows: NULL
    conn.execute("ALTER TABLE people.people_errors ALTER COLUMN intake_batch SET DEFAULT 'legacy'")
    conn.execute("CREATE UNIQUE INDEX people_errors_one_per_batch ON people.people_errors (intake_batch)")
    _lint_clear_then_apply(conn, "1b", "people_errors_one_per_batch")


def test_a_check_calling_a_function_that_writes_is_not_called_unreadable(conn):
    conn.execute("CREATE TABLE public.side_effects (n int)")
    conn.execute(
        "CREATE FUNCTION public.noisy(t text) RETURNS boolean LANGUAGE plpgsql VOLATILE "
        "AS $$ BEGIN INSERT INTO public.side_effects VALUES (1); RETURN true; END $$"
    )
    conn.execute("ALTER TABLE people.people_errors ADD CONSTRAINT noisy CHECK (public.noisy(error_message)) NOT VALID")
    blocking = _blocking(conn, "1b")
    assert not blocking, blocking


def test_a_revert_of_an_archive_phase_under_the_gate_leaves_no_stale_registry_row(gated):
    decide(gated)
    approve(gated)
    reports = run_phase(executor(gated), "1j")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    approve_revert(gated, "1j")
    try:
        executor(gated).revert_phase("1j")
    except Exception as exc:
        pytest.fail(f"revert failed: {type(exc).__name__}: {exc}")
    stale = gated.execute(
        "SELECT table_name FROM ple_ops.registry_change WHERE step_id LIKE '1j%%' AND to_regclass(table_name) IS NULL"
    ).fetchall()
    assert stale == [], stale


def test_a_column_of_a_not_null_domain_the_merge_leaves_out_is_seen(conn):
    conn.execute("CREATE DOMAIN public.required_text AS text NOT NULL")
    conn.execute("ALTER TABLE people.people_errors ADD COLUMN reviewer public.required_text DEFAULT 'owner'")
    conn.execute("ALTER TABLE people.people_errors ALTER COLUMN reviewer DROP DEFAULT")
    _lint_clear_then_apply(conn, "1b", "reviewer")


def test_a_generated_column_whose_expression_fails_on_the_merged_rows_is_seen(conn):
    conn.execute(
        "ALTER TABLE people.people_errors ADD COLUMN triage int GENERATED ALWAYS AS "
        "(CASE WHEN error_type = 'failed_email_verification' THEN 1 / (length(error_type) - length(error_type)) ELSE 0 END) STORED"
    )
    _lint_clear_then_apply(conn, "1b", "triage")


def test_a_comparison_with_any_is_not_read_as_a_list_of_allowed_values(conn):
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT stage_after_a "
        "CHECK (error_stage::text >= ANY (ARRAY['a'::text])) NOT VALID"
    )
    blocking = [b for b in _blocking(conn, "1b") if "stage_after_a" in b]
    assert not blocking, blocking


def test_a_check_on_the_provenance_row_the_merge_writes_is_evaluated(conn):
    for name, kind in (
        ("ctb_source_table", "text"),
        ("ctb_source_key", "text"),
        ("ctb_source_row", "jsonb"),
        ("ctb_run_id", "text"),
        ("ctb_merged_at", "timestamptz"),
    ):
        conn.execute(f"ALTER TABLE people.people_errors ADD COLUMN {name} {kind}")
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT no_names_in_provenance "
        "CHECK (ctb_source_row IS NULL OR NOT ctb_source_row ? 'full_name') NOT VALID"
    )
    _lint_clear_then_apply(conn, "1b", "no_names_in_provenance")


def test_a_batched_merge_of_a_frozen_source_accepted_by_a_person_archives_it(gated):
    source = "outreach.company_target_orphaned_archive"
    gated.execute(f"ALTER TABLE {source} ADD COLUMN rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    gated.execute(
        "INSERT INTO ctb.table_registry (table_schema, table_name, leaf_type) VALUES ('public', 'noted', 'STAGING')"
    )
    gated.execute("CREATE TABLE public.noted (n int)")
    gated.execute(
        "CREATE FUNCTION public.note_row() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.noted VALUES (1); RETURN NEW; END $$"
    )
    gated.execute(
        "CREATE TRIGGER note_row AFTER INSERT ON outreach.company_target_archive "
        "FOR EACH ROW EXECUTE FUNCTION public.note_row()"
    )
    gated.execute(
        "UPDATE ctb.table_registry SET is_frozen = true "
        "WHERE table_schema = 'outreach' AND table_name = 'company_target_orphaned_archive'"
    )
    decided = decide(gated)
    assert f"{source}.frozen" in decided["guards"]["accept"], decided["guards"]
    approve(gated)
    try:
        reports = run_phase(executor(gated, backfill_batch_pages=4), "1j")
    except Exception as exc:
        copies = gated.execute(
            "SELECT count(*) FROM outreach.company_target_archive WHERE ctb_source_table = %s", (source,)
        ).fetchone()[0]
        pytest.fail(f"apply failed ({copies} batch copies stayed in the target): {type(exc).__name__}: {exc}")
    assert "failed" not in {r.status for r in reports}, [r.text for r in reports]
    table_left = gated.execute(  # a compatibility view may stand at the old name; no table may
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (source,)
    ).fetchone()
    assert table_left is None or table_left[0] == "v", f"archived, not {table_left}"
    frozen = _frozen(gated, source, "archive.outreach_company_target_orphaned_archive_ctb")
    assert frozen.get("archive.outreach_company_target_orphaned_archive_ctb") is True, frozen


def test_a_unique_index_over_the_discriminator_is_counted(conn):
    conn.execute("UPDATE people.people_errors SET error_stage = error_stage || ctid::text")
    conn.execute("CREATE UNIQUE INDEX people_errors_type_stage ON people.people_errors (error_type, error_stage)")
    _lint_clear_then_apply(conn, "1b", "people_errors_type_stage")
