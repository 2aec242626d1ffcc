"""Adversarial: the one-pass merge statement (actions/merge.py insert_statement) against hostile data
and hostile targets, on 1B's smallest merge (marketing.failed_low_confidence -> cl.cl_err_existence).
Every merged row must keep its whole source row in ctb_source_row; a revert must give back exactly
the preflight state; anything the merge cannot do losslessly must be refused before a write."""

import json

import pytest

from ple.errors import PermanentError
from tests.reorg_helpers import approve, approve_revert, count, executor, run_phase

SOURCE = "marketing.failed_low_confidence"
TARGET = "cl.cl_err_existence"
STEP = "1b__merge__marketing_failed_low_confidence"


def _source_rows(conn) -> list[str]:
    return sorted(json.dumps(r[0], sort_keys=True) for r in conn.execute(f"SELECT to_jsonb(f) FROM {SOURCE} AS f"))


def _stored_rows(conn) -> list[str]:
    return sorted(
        json.dumps(r[0], sort_keys=True)
        for r in conn.execute(f"SELECT ctb_source_row FROM {TARGET} WHERE ctb_source_table = %s", (SOURCE,))
    )


def _copies(conn) -> int:
    """Rows of the target merged from the source (none where the preflight never added provenance)."""
    if not conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'ctb_source_table'", (TARGET,)
    ).fetchone():
        return 0
    return conn.execute(f"SELECT count(*) FROM {TARGET} WHERE ctb_source_table = %s", (SOURCE,)).fetchone()[0]


def _apply_and_revert(conn) -> tuple[list[str], list[str]]:
    """1B applied, verified and frozen, then reverted: (source rows before, what the merge stored)."""
    before = _source_rows(conn)
    target_rows = count(conn, TARGET)
    approve(conn)
    ex = executor(conn)
    reports = run_phase(ex, "1b")
    assert {r.status for r in reports} <= {"applied", "already_done"}, [r.text for r in reports]
    stored = _stored_rows(conn)
    approve_revert(conn, "1b")
    assert ex.revert_phase("1b")[-1].status == "reverted"
    assert _source_rows(conn) == before
    assert _copies(conn) == 0 and count(conn, TARGET) == target_rows
    return before, stored


def test_a_source_column_named_like_the_row_alias_is_kept_whole(conn):
    conn.execute(f"ALTER TABLE {SOURCE} ADD COLUMN s text DEFAULT 'a column named s'")
    before = _source_rows(conn)
    approve(conn)
    ex = executor(conn)
    try:
        run_phase(ex, "1b")
    except PermanentError as exc:
        pytest.fail(f"a source column named s stops the merge: {exc}")
    assert _stored_rows(conn) == before, (
        f"ctb_source_row of the merged copies is {_stored_rows(conn)[:1]}, not the source rows {before[:1]}"
    )


def test_a_before_insert_trigger_that_rewrites_new_rows_round_trips(conn):
    conn.execute(
        "CREATE FUNCTION cl.shout() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.company_name := upper(NEW.company_name) || '!'; RETURN NEW; END $$"
    )
    conn.execute(f"CREATE TRIGGER shout BEFORE INSERT ON {TARGET} FOR EACH ROW EXECUTE FUNCTION cl.shout()")
    before, stored = _apply_and_revert(conn)
    assert stored == before  # the source rows whole, whatever the trigger did to the columns


def test_a_before_insert_trigger_that_drops_a_row_is_refused_and_nothing_stays(conn):
    conn.execute("CREATE SEQUENCE cl.dropped")
    conn.execute(
        "CREATE FUNCTION cl.drop_first() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.ctb_source_table IS NOT NULL AND nextval('cl.dropped') = 1 THEN RETURN NULL; END IF; RETURN NEW; END $$"
    )
    approve(conn)
    ex = executor(conn)
    ex.preflight("1b")
    conn.execute(f"CREATE TRIGGER drop_first BEFORE INSERT ON {TARGET} FOR EACH ROW EXECUTE FUNCTION cl.drop_first()")
    rows = count(conn, SOURCE)
    with pytest.raises(PermanentError):
        ex.run_step(STEP)
    assert count(conn, SOURCE) == rows and _copies(conn) == 0


def test_a_generated_column_on_the_target_round_trips(conn):
    conn.execute(f"ALTER TABLE {TARGET} ADD COLUMN name_upper text GENERATED ALWAYS AS (upper(company_name)) STORED")
    before, stored = _apply_and_revert(conn)
    assert stored == before


def test_mixed_case_and_quoted_column_names_as_an_orm_writes_them_round_trip(conn):
    for table in (SOURCE, TARGET):
        conn.execute(f'ALTER TABLE {table} ADD COLUMN "createdAt" text, ADD COLUMN "Odd ""Quoted"" Name" text')
    conn.execute(f'UPDATE {SOURCE} SET "createdAt" = now()::text, "Odd ""Quoted"" Name" = \'x\' || ctid::text')
    before, stored = _apply_and_revert(conn)
    assert stored == before


def test_a_domain_the_copies_violate_is_refused_before_anything_stays(conn):
    conn.execute("CREATE DOMAIN cl.short_name AS text CHECK (length(VALUE) < 3)")
    conn.execute(f"ALTER TABLE {TARGET} ALTER COLUMN company_name TYPE cl.short_name USING left(company_name, 2)")
    conn.execute(f"UPDATE {SOURCE} SET company_name_raw = 'far too long'")
    rows = count(conn, SOURCE)
    blocking = [f.message for f in executor(conn, mode="plan").lint(["1b"]).errors]
    assert any("short_name_check" in m and "cannot be converted" in m for m in blocking), blocking  # seen first
    approve(conn)
    ex = executor(conn)
    with pytest.raises(PermanentError):  # and refused before the first write
        ex.preflight("1b")
        ex.run_step(STEP)
    assert count(conn, SOURCE) == rows and _copies(conn) == 0


def test_a_composite_key_whose_values_contain_the_separator_is_seen_by_the_lint(conn):
    conn.execute(f"ALTER TABLE {SOURCE} ADD COLUMN k1 text, ADD COLUMN k2 text")
    conn.execute(f"UPDATE {SOURCE} SET k1 = 'k' || ctid::text, k2 = 'z'")
    for k1, k2 in (("x|y", "z"), ("x", "y|z")):
        conn.execute(
            f"INSERT INTO {SOURCE} SELECT (jsonb_populate_record(f, jsonb_build_object('k1', %s::text, 'k2', %s::text))).* "
            f"FROM {SOURCE} AS f LIMIT 1",
            (k1, k2),
        )
    conn.execute(f"ALTER TABLE {SOURCE} ADD PRIMARY KEY (k1, k2)")
    errors = [f.message for f in executor(conn, mode="plan").lint(["1b"]).errors]
    # merge.source_key joins a composite key with concat_ws('|'): both rows get the provenance key
    # 'x|y|z'. The lint sees it only because every merge target's key is generated from that
    # provenance key (a uuid of it), so it reports "rows share the target's primary key"
    assert any("duplicate" in e or "share" in e for e in errors), errors
