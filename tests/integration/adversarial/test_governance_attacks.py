"""Adversarial: the owner's DDL gate (the 2026-03-12 twin: event triggers refusing DDL on
unregistered or frozen tables). Reverts, preflights, rehearsals and batched merges under the gate,
with frozen tables a person accepted: refused where the gate refuses, carried out where accepted,
and no stale registry row left behind."""

from __future__ import annotations

import psycopg
import pytest

from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, executor, run_phase


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
