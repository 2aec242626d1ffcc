"""Adversarial: what plan mode predicts against what apply does (the lint and the merge's
mapped-rows guard, plugins/ple/reorg/guards.py `_mapped_rows`; reconcile's evidence for a gone
table). Each attack gives the target a rule the lint might not read (a CHECK on the whole row or
on no column, a MATCH FULL foreign key, a unique index over a default or the discriminator, a NOT
NULL domain, a generated column that fails, a CHECK calling a writing function): the lint must
name it, or apply must go through."""

from __future__ import annotations

import psycopg
import pytest

from tests.reorg_helpers import approve, executor, run_phase


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


def test_a_unique_index_over_the_discriminator_is_counted(conn):
    conn.execute("UPDATE people.people_errors SET error_stage = error_stage || ctid::text")
    conn.execute("CREATE UNIQUE INDEX people_errors_type_stage ON people.people_errors (error_type, error_stage)")
    _lint_clear_then_apply(conn, "1b", "people_errors_type_stage")
