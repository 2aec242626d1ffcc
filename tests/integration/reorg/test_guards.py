"""Every guard kind on a real PostgreSQL: each is handled losslessly by design or blocks apply
before the first write with a proposal; each test fails without that handling."""

import psycopg
import pytest

from ple.catalog import read_catalog
from ple.errors import PlanRejected
from ple.reorg import decisions, guards
from ple.reorg import plan as plan_module
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, count, end_state, executor, run_phase


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


def _guards(conn, phase: str):
    return guards.inspect(conn, plan_module.load(), read_catalog(conn), decisions.for_connection(conn), [phase])


def _blocking_lint(conn, phase: str) -> list[str]:
    return [f.message for f in executor(conn, mode="plan").lint([phase]).errors]


def test_updated_at_trigger_on_a_fold_target_does_not_rewrite_folded_rows(conn):
    conn.execute(
        "ALTER TABLE people.people_master ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT '2026-01-01'"
    )
    stamps = "SELECT md5(string_agg(unique_id || '=' || coalesce(updated_at::text, ''), ',' ORDER BY unique_id)) FROM people.people_master"
    before = conn.execute(stamps).fetchone()[0]
    conn.execute(
        "CREATE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER set_updated_at BEFORE UPDATE ON people.people_master FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()"
    )
    found = [g for g in _guards(conn, "1g") if g.kind == "trigger" and g.table == "people.people_master"]
    assert found and found[0].bypass and not found[0].blocks
    approve(conn)
    ex = executor(conn)
    ex.preflight("1g")
    assert ex.run_step("1g__fold__people_people_master").status == "applied"  # the fold's proof: no value changed
    assert conn.execute(stamps).fetchone()[0] == before
    assert (
        conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'set_updated_at'").fetchone()[0] == "O"
    )  # enabled again


def test_sync_trigger_on_a_merge_target_does_not_fan_merged_rows_out(conn):
    conn.execute("CREATE TABLE public.error_master (source text, error_id uuid)")
    conn.execute(
        "CREATE FUNCTION public.sync_error() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.error_master VALUES (TG_TABLE_NAME, NEW.error_id); RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER sync_people_errors AFTER INSERT ON people.people_errors FOR EACH ROW EXECUTE FUNCTION public.sync_error()"
    )
    approve(conn)
    run_phase(executor(conn), "1b")
    assert count(conn, "public.error_master") == 0
    assert (
        conn.execute("SELECT count(*) FROM people.people_errors WHERE ctb_source_table IS NOT NULL").fetchone()[0] > 0
    )
    conn.execute("INSERT INTO public.error_master SELECT 'probe', NULL")  # the trigger itself still works for others
    assert conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'sync_people_errors'").fetchone()[0] == "O"


def test_append_only_trigger_on_a_fold_target_blocks_until_accepted(conn):
    conn.execute(
        "CREATE FUNCTION public.append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'append-only table %', TG_TABLE_NAME; END $$"
    )
    conn.execute(
        "CREATE TRIGGER no_update BEFORE UPDATE OR DELETE ON outreach.bit_scores FOR EACH ROW EXECUTE FUNCTION public.append_only()"
    )
    errors = _blocking_lint(conn, "1g")
    assert any("outreach.bit_scores.no_update" in e and "raises" in e for e in errors)
    approve(conn)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match="no_update"):
        executor(conn).preflight("1g")
    assert end_state(conn) == state  # blocked before the first write
    decided = decide(conn)
    assert "outreach.bit_scores.no_update" in decided["guards"]["accept"]
    approve(conn)
    reports = run_phase(executor(conn), "1g")
    assert "failed" not in {r.status for r in reports}
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE outreach.bit_scores SET outreach_id = outreach_id")  # the guard is back


def test_row_level_security_that_applies_to_the_role_blocks(conn, pg_server):
    conn.execute("CREATE ROLE ple_rls_probe LOGIN")
    conn.execute("GRANT USAGE ON SCHEMA marketing, people TO ple_rls_probe")
    conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA marketing, people TO ple_rls_probe")
    conn.execute("ALTER TABLE marketing.failed_email_verification OWNER TO ple_rls_probe")
    conn.execute("ALTER TABLE marketing.failed_email_verification ENABLE ROW LEVEL SECURITY")
    conn.execute("ALTER TABLE marketing.failed_email_verification FORCE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY only_some ON marketing.failed_email_verification FOR SELECT USING (false)")
    step = plan_module.load().step("1b__merge__marketing_failed_email_verification")
    params = psycopg.conninfo.conninfo_to_dict(conn.info.dsn) | {"user": "ple_rls_probe"}
    with psycopg.connect(**params, autocommit=True) as role_conn:
        found = guards.inspect(role_conn, plan_module.load(), read_catalog(role_conn), None, steps=[step])
    rls = [g for g in found if g.kind == "rls"]
    assert rls and rls[0].blocks and "BYPASSRLS" in rls[0].handling
    as_superuser = guards.inspect(conn, plan_module.load(), read_catalog(conn), None, steps=[step])
    assert [g.blocks for g in as_superuser if g.kind == "rls"] == [False]
    conn.execute("ALTER TABLE marketing.failed_email_verification OWNER TO postgres")
    conn.execute("DROP OWNED BY ple_rls_probe")
    conn.execute("DROP ROLE ple_rls_probe")


def test_check_constraint_forbidding_the_discriminator_blocks_with_a_proposal(conn):
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT people_errors_error_type_check "
        "CHECK (error_type IN ('validation', 'legacy_import', 'enrichment')) NOT VALID"
    )
    assert any("people_errors_error_type_check" in e and "forbids" in e for e in _blocking_lint(conn, "1b"))
    decided = decide(conn)
    target = decided["targets"]["people.people_errors"]
    assert target["discriminator"]["column"] == "ctb_merge_source"
    assert target["fill"]["error_type"] == {"value": "legacy_import"}
    approve(conn)
    assert "failed" not in {r.status for r in run_phase(executor(conn), "1b")}
    assert conn.execute(
        "SELECT count(*) FROM people.people_errors WHERE ctb_merge_source = 'failed_email_verification' AND error_type = 'legacy_import'"
    ).fetchone()[0] == count(conn, "archive.marketing_failed_email_verification_ctb")


def test_enum_without_the_value_the_merge_writes_blocks_with_a_proposal(conn):
    values = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT pipeline_stage FROM outreach.company_target_errors WHERE pipeline_stage IS NOT NULL"
        )
    ]
    labels = sorted({*values, "other"})
    conn.execute(
        "CREATE TYPE outreach.pipeline_stage_kind AS ENUM ("
        + ", ".join("'" + v.replace("'", "''") + "'" for v in labels)
        + ")"
    )
    conn.execute(
        "ALTER TABLE outreach.company_target_errors ALTER COLUMN pipeline_stage TYPE outreach.pipeline_stage_kind "
        "USING pipeline_stage::outreach.pipeline_stage_kind"
    )
    assert any("pipeline_stage_kind forbids" in e for e in _blocking_lint(conn, "1b"))
    decided = decide(conn)
    assert decided["targets"]["outreach.company_target_errors"]["fill"]["pipeline_stage"] == {"value": "other"}
    approve(conn)
    assert "failed" not in {r.status for r in run_phase(executor(conn), "1b")}


def test_unique_index_beyond_the_key_blocks_and_the_column_stays_null(conn):
    conn.execute("ALTER TABLE marketing.failed_slot_assignment ADD COLUMN legacy_ref text DEFAULT 'same for all'")
    conn.execute("ALTER TABLE people.people_errors ADD COLUMN legacy_ref text")
    conn.execute("CREATE UNIQUE INDEX people_errors_legacy_ref ON people.people_errors (legacy_ref)")
    assert any("people_errors_legacy_ref" in e and "collide" in e for e in _blocking_lint(conn, "1b"))
    decided = decide(conn)
    assert decided["targets"]["people.people_errors"]["fill"]["legacy_ref"] == {"from": []}
    approve(conn)
    assert "failed" not in {r.status for r in run_phase(executor(conn), "1b")}
    kept = conn.execute(
        "SELECT count(*) FROM people.people_errors WHERE ctb_source_row ->> 'legacy_ref' = 'same for all'"
    ).fetchone()[0]
    assert kept == count(conn, "archive.marketing_failed_slot_assignment_ctb")  # in provenance, not lost


def test_foreign_key_into_a_frozen_archive_is_kept_and_never_fires(conn):
    conn.execute(
        "CREATE TABLE public.company_notes (note_id int PRIMARY KEY, company_unique_id text "
        "REFERENCES company.company_master (company_unique_id) ON DELETE CASCADE)"
    )
    conn.execute("INSERT INTO public.company_notes SELECT 1, company_unique_id FROM company.company_master LIMIT 1")
    found = [g for g in _guards(conn, "1a") if g.kind == "fk"]
    assert any("public.company_notes" in g.key and not g.blocks for g in found)
    approve(conn)
    run_phase(executor(conn), "1a")
    assert count(conn, "public.company_notes") == 1
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM archive.company_company_master_ctb")  # frozen: the CASCADE can never fire


def test_function_bodies_naming_a_moved_table_in_every_form(conn):
    conn.execute(
        'CREATE FUNCTION public.quoted() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM "company"."company_master" $$'
    )
    conn.execute(
        "CREATE FUNCTION public.dynamic() RETURNS bigint LANGUAGE plpgsql AS "
        "$$ DECLARE n bigint; BEGIN EXECUTE format('SELECT count(*) FROM %I.%I', 'company', 'company_master') INTO n; RETURN n; END $$"
    )
    conn.execute(
        "CREATE FUNCTION public.unqualified() RETURNS bigint LANGUAGE sql SET search_path = company, public AS "
        "$$ SELECT count(*) FROM company_master $$"
    )
    conn.execute(
        "CREATE FUNCTION public.touch_company() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM 1 FROM company.company_master LIMIT 1; RETURN NEW; END $$"
    )
    conn.execute("CREATE TABLE public.live_writes (id int)")
    conn.execute(
        "CREATE TRIGGER touch AFTER INSERT ON public.live_writes FOR EACH ROW EXECUTE FUNCTION public.touch_company()"
    )
    found = {g.key: g for g in _guards(conn, "1a") if g.kind == "function"}
    assert "(qualified)" in found["public.quoted()"].message
    assert "(dynamic)" in found["public.dynamic()"].message
    assert "(search_path)" in found["public.unqualified()"].message
    assert found["public.touch_company()"].blocks and not found["public.quoted()"].blocks
    assert any("touch_company" in e for e in _blocking_lint(conn, "1a"))
    decided = decide(conn)
    assert "public.touch_company()" in decided["guards"]["accept"]
    assert not [e for e in _blocking_lint(conn, "1a") if "touch_company" in e]


@pytest.mark.parametrize("mode", ["ALWAYS", "REPLICA"])
def test_a_bypassed_trigger_comes_back_in_its_own_firing_mode(conn, mode):
    """ENABLE TRIGGER alone would turn an ALWAYS trigger into an origin-only one, and a REPLICA sync
    trigger into one that fans out every application insert (found by review)."""
    conn.execute("CREATE TABLE public.error_master (source text, error_id uuid)")
    conn.execute(
        "CREATE FUNCTION public.sync_error() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.error_master VALUES (TG_TABLE_NAME, NEW.error_id); RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER sync_people_errors AFTER INSERT ON people.people_errors "
        "FOR EACH ROW EXECUTE FUNCTION public.sync_error()"
    )
    conn.execute(f"ALTER TABLE people.people_errors ENABLE {mode} TRIGGER sync_people_errors")
    mode_now = "SELECT tgenabled FROM pg_trigger WHERE tgname = 'sync_people_errors'"
    before = conn.execute(mode_now).fetchone()[0]
    approve(conn)
    run_phase(executor(conn), "1b")
    assert conn.execute(mode_now).fetchone()[0] == before


def test_write_once_and_updated_at_triggers_on_a_low_lock_key_backfill(conn):
    """The production twin's write-once pointers (cl.enforce_write_once_pointers: a pointer once set
    may not change; setting one stamps its *_at) and an updated_at trigger, on a table whose key the
    low-lock ADD_PK backfills with UPDATEs: the write-once trigger is reported and blocks until
    accepted; once accepted, no existing value (updated_at, pointer, stamp) changes."""
    table = "people.people_master_archive"
    conn.execute(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT '2026-01-01', "
        "ADD COLUMN IF NOT EXISTS outreach_id uuid DEFAULT gen_random_uuid(), "
        "ADD COLUMN IF NOT EXISTS outreach_attached_at timestamptz"
    )
    conn.execute(
        "CREATE FUNCTION public.enforce_write_once_pointer() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
        "IF OLD.outreach_id IS NOT NULL AND NEW.outreach_id IS DISTINCT FROM OLD.outreach_id THEN "
        "RAISE EXCEPTION 'outreach_id is write-once and already set'; END IF; "
        "IF OLD.outreach_id IS NULL AND NEW.outreach_id IS NOT NULL THEN "
        "NEW.outreach_attached_at := coalesce(NEW.outreach_attached_at, now()); END IF; RETURN NEW; END $fn$"
    )
    conn.execute(
        "CREATE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$"
    )
    conn.execute(
        f"CREATE TRIGGER trg_write_once_pointers BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION public.enforce_write_once_pointer()"
    )
    conn.execute(
        f"CREATE TRIGGER set_updated_at BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()"
    )
    values = (
        "SELECT md5(string_agg(concat_ws('|', updated_at, outreach_id, outreach_attached_at), ',' "
        f"ORDER BY outreach_id)), count(*) FROM {table}"
    )
    before = conn.execute(values).fetchone()
    assert before[1] > 0
    errors = _blocking_lint(conn, "1k")
    assert any(f"{table}.trg_write_once_pointers" in e and "raises" in e and "Fix: accept" in e for e in errors)
    found = {g.key: g for g in _guards(conn, "1k") if g.kind == "trigger"}
    assert found[f"{table}.set_updated_at"].bypass and not found[f"{table}.set_updated_at"].blocks
    approve(conn)
    state = end_state(conn)
    with pytest.raises(PlanRejected, match="trg_write_once_pointers"):
        executor(conn, large_table_rows=0).preflight("1k")
    assert end_state(conn) == state  # blocked before the first write
    assert f"{table}.trg_write_once_pointers" in decide(conn)["guards"]["accept"]
    approve(conn)
    ex = executor(conn, large_table_rows=0)  # every key on the low-lock path: batched UPDATEs
    reports = run_phase(ex, "1k")
    assert "failed" not in {r.status for r in reports}
    step = next(r for r in reports if r.step_id == "1k__add_pk__people_people_master_archive")
    assert step.status == "applied", step.text
    assert conn.execute(values).fetchone() == before  # no updated_at rewritten, no pointer or stamp touched
    modes = dict(conn.execute(f"SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = '{table}'::regclass"))
    assert modes["trg_write_once_pointers"] == "O" and modes["set_updated_at"] == "O"
    with pytest.raises(psycopg.errors.RaiseException, match="write-once"):
        conn.execute(f"UPDATE {table} SET outreach_id = gen_random_uuid()")  # the guard is back
