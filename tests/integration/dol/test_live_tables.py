"""The DOL import meets the real DOL tables: the live shapes of 2026-02-20 (varchar columns, uuid
`filing_id` with a default, unique `ack_id`, NOT NULL alias columns, `form_year varchar(10)`),
their read-only guard triggers, `set_updated_at` and row-level security without a DELETE policy,
built by the production twin's `create_dol_tables` in a database that has nothing else; and the
same acceptance on the pre-plan fixture. An event trigger counts every DDL command on the DOL
schema: an import that adds no column runs none on the DOL tables.

Run on PostgreSQL 16 (the default server) and 15 (`PLE_PG_BIN=/usr/lib/postgresql/15/bin`).
"""

from __future__ import annotations

import psycopg
import pytest

from ple.dol import files, importer
from ple.errors import BadInput
from tests.integration.dol.corpus import real_rows, renumbered, with_value, write_csv
from tests.integration.dol.live_tables import (
    LIVE_TABLES,
    add_ddl_counter,
    assert_accounted,
    ddl_on,
    guard_triggers,
    requoted,
    table_state,
)


@pytest.fixture
def preplan(conn):
    add_ddl_counter(conn)
    return conn


def run_acceptance(conn, samples, tmp_path, guarded: bool):
    inputs, _ = files.discover(samples)
    assert len(inputs) == 5
    before = guard_triggers(conn)
    results = [(i, importer.import_file(conn, i, "accept-1")) for i in inputs]
    for source, result in results:
        assert result.status == "imported", result.message
        assert result.path == "copy" and result.error_rows == 0
        assert_accounted(conn, source, result)
    assert importer.prove_run(conn, "accept-1") == 5
    # no DDL on the DOL tables themselves (the superseded tables are created once, if missing)
    assert ddl_on(conn, LIVE_TABLES) == []
    state = table_state(conn)
    ddl_before = len(ddl_on(conn))

    again = [importer.import_file(conn, i, "accept-2") for i in inputs]
    assert {r.status for r in again} == {"already_imported"}
    same_data = [
        importer.import_file(conn, requoted(i, tmp_path / f"requoted_{n}_{i.name.split(':')[-1]}"), "accept-3")
        for n, i in enumerate(inputs)
    ]
    for result in same_data:
        assert result.status == "imported"
        assert (result.inserted, result.updated, result.superseded) == (0, 0, 0), result.message
        assert result.unchanged == result.data_rows
    assert table_state(conn) == state  # a second import changes nothing
    assert len(ddl_on(conn)) == ddl_before  # and runs no DDL at all
    if guarded:
        assert guard_triggers(conn) == before
        assert set(before.values()) == {"O"}  # every guard enabled
        assert conn.execute("SELECT current_setting('dol.import_mode', true)").fetchone()[0] in (None, "")
        with pytest.raises(psycopg.errors.RaiseException, match="DOL_READONLY_VIOLATION"):
            conn.execute(
                "UPDATE dol.form_5500 SET plan_name = 'x' WHERE ack_id = (SELECT min(ack_id) FROM dol.form_5500)"
            )
    return dict(results)


def test_the_samples_import_into_the_live_tables_under_their_guards(live, samples, tmp_path):
    results = run_acceptance(live, samples, tmp_path, guarded=True)
    by_name = {s.name: r for s, r in results.items()}
    f5500 = by_name["f_5500_2019_dbplans_slice.csv"]
    assert f5500.dropped_columns == [] and f5500.unknown_columns == []
    # aliases filled (NOT NULL ones included), leading zeros kept, defaults left to work, types as declared
    row = live.execute(
        "SELECT sponsor_dfe_ein, spons_dfe_ein, plan_number, filing_id IS NOT NULL, form_year, pg_typeof(form_year)::text, "
        "created_at IS NOT NULL FROM dol.form_5500 WHERE ack_id = '20200722175623NAL0003368576001'"
    ).fetchone()
    assert row == ("010020240", "010020240", "001", True, "2019", "character varying", True)
    assert live.execute("SELECT count(*) FROM dol.form_5500 WHERE sponsor_dfe_ein <> spons_dfe_ein").fetchone()[0] == 0
    # Schedule A: one row per contract, linked to its filing
    assert live.execute(
        "SELECT count(*), count(DISTINCT (ack_id, form_id)), count(filing_id) FROM dol.schedule_a"
    ).fetchone() == (1400, 1400, 1400)


def test_the_samples_import_into_the_production_twin(twin_db, samples, tmp_path):
    """The whole production twin (the database as it stood on 2026-02-20, its DOL tables filled
    with real rows, every guard on): the same acceptance."""
    with psycopg.connect(twin_db, autocommit=True) as twin:
        add_ddl_counter(twin)
        before = twin.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0]
        results = run_acceptance(twin, samples, tmp_path, guarded=True)
        f5500 = [r for r in results.values() if r.dataset == "F_5500"]
        after = twin.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0]
        moved = twin.execute("SELECT count(*) FROM dol.form_5500_superseded").fetchone()[0]
        assert after + moved == before + sum(r.inserted for r in f5500)  # no row lost


def test_the_samples_import_into_the_pre_plan_fixture(preplan, samples, tmp_path):
    run_acceptance(preplan, samples, tmp_path, guarded=False)


def test_a_file_holding_a_filing_and_its_amendment(live, tmp_path):
    header, rows = real_rows(10)
    rows = renumbered(header, rows, 8_000_000)
    original = with_value(header, rows[0], "AMENDED_IND", "0")
    amendment = with_value(header, with_value(header, original, "AMENDED_IND", "1"), "DATE_RECEIVED", "2021-03-01")
    amendment[0] = original[0][:17] + "9999999999999"
    path = write_csv(tmp_path / "f_5500_2019_amended.csv", header, [original, *rows[1:], amendment])
    result = importer.import_file(live, files.Input(path), "pytest")
    assert result.superseded == 1 and (result.live_rows, result.superseded_rows) == (10, 1)
    assert_accounted(live, files.Input(path), result)
    assert live.execute(
        "SELECT superseded_by_ack_id FROM dol.form_5500_superseded WHERE ack_id = %s", (original[0],)
    ).fetchone() == (amendment[0],)
    # the same rows again (other bytes): the original stays superseded, once
    again = importer.import_file(live, requoted(files.Input(path), tmp_path / "f_5500_2019_again.csv"), "pytest")
    assert (again.inserted, again.updated, again.superseded, again.already_superseded) == (0, 0, 0, 1)
    assert live.execute("SELECT count(*) FROM dol.form_5500_superseded").fetchone()[0] == 1
    assert_accounted(live, files.Input(path), again)


def test_a_header_the_table_lacks_is_reported_and_dropped_or_added_only_once_approved(live, tmp_path, capsys):
    from ple import cli
    from ple.dol import new_columns
    from ple.errors import NotApproved

    header, rows = real_rows(5)
    rows = renumbered(header, rows, 5_000_000)
    path = write_csv(
        tmp_path / "f_5500_2019_new.csv", [*header, "NEW_DOL_FIELD_2026"], [[*r, f"v{i}"] for i, r in enumerate(rows)]
    )
    result = importer.import_file(live, files.Input(path), "pytest")
    assert result.dropped_columns == ["NEW_DOL_FIELD_2026"] and result.live_rows == 5
    assert "NEW_DOL_FIELD_2026" in result.message
    assert live.execute(
        "SELECT dropped_columns FROM ple_ops.dol_import WHERE file_sha256 = %s", (result.sha256,)
    ).fetchone() == (["NEW_DOL_FIELD_2026"],)
    assert ddl_on(live, LIVE_TABLES) == []

    # asked for, not approved: refused naming the command; no DDL, no row of the file written
    rows = renumbered(header, rows, 5_100_000)
    newer = tmp_path / "landing" / "f_5500_2019_newer.csv"
    newer.parent.mkdir()
    write_csv(newer, [*header, "NEW_DOL_FIELD_2026"], [[*r, f"w{i}"] for i, r in enumerate(rows)])
    planned = new_columns.planned(live, [files.Input(newer)])
    assert [a.describe() for a in planned] == ["dol.form_5500.new_dol_field_2026 text"]
    state = table_state(live)
    with pytest.raises(NotApproved, match="--dol-columns"):
        importer.import_file(live, files.Input(newer), "pytest", add_columns=planned)
    assert ddl_on(live, LIVE_TABLES) == [] and table_state(live) == state
    assert live.execute("SELECT count(*) FROM dol.form_5500 WHERE ack_id = %s", (rows[2][0],)).fetchone() == (0,)

    # an approval of another list does not cover this one
    new_columns.approve(live, [new_columns.Addition("dol.form_5500", "other_column", "text")], "pat")
    with pytest.raises(NotApproved):
        importer.import_file(live, files.Input(newer), "pytest", add_columns=planned)
    assert ddl_on(live, LIVE_TABLES) == []

    # approved on the command line (the landing folder): the DDL runs once, with the file's values
    assert cli.main(["approve", "--approver", "pat", "--dol-columns", str(newer.parent)]) == 0
    assert "dol.form_5500.new_dol_field_2026 text" in capsys.readouterr().out
    added = importer.import_file(live, files.Input(newer), "pytest", add_columns=planned)
    assert added.added_columns == ["new_dol_field_2026"] and added.dropped_columns == []
    assert [tag for tag, _ in ddl_on(live, LIVE_TABLES)] == ["ALTER TABLE"]  # one statement, once
    assert live.execute("SELECT new_dol_field_2026 FROM dol.form_5500 WHERE ack_id = %s", (rows[2][0],)).fetchone() == (
        "w2",
    )
    assert live.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'form_5500_superseded' "
        "AND column_name = 'new_dol_field_2026'"
    ).fetchone() == (1,)
    assert_accounted(live, files.Input(newer), added)

    # a re-run with the option on: nothing left to add, nothing to approve, no DDL
    rows = renumbered(header, rows, 5_200_000)
    again = write_csv(
        tmp_path / "f_5500_2019_again.csv", [*header, "NEW_DOL_FIELD_2026"], [[*r, f"x{i}"] for i, r in enumerate(rows)]
    )
    assert new_columns.planned(live, [files.Input(again)]) == []
    rerun = importer.import_file(live, files.Input(again), "pytest", add_columns=[])
    assert rerun.added_columns == [] and rerun.live_rows == 5
    assert len(ddl_on(live, LIVE_TABLES)) == 1


def test_values_the_live_types_refuse_and_missing_not_null_aliases_go_to_the_errors_table(live, tmp_path):
    header, rows = real_rows(20)
    rows = renumbered(header, rows, 4_000_000)
    rows[1] = with_value(header, rows[1], "SPONSOR_DFE_NAME", "")  # sponsor_dfe_name is NOT NULL
    rows[2] = with_value(header, rows[2], "SPONS_DFE_EIN", "")  # feeds sponsor_dfe_ein, NOT NULL
    rows[3] = with_value(header, rows[3], "AMENDED_IND", "TOOLONG")  # varchar(5)
    rows[4] = with_value(header, rows[4], "TOT_PARTCP_BOY_CNT", "12.5")  # integer in the live table
    path = write_csv(tmp_path / "f_5500_2019_bad.csv", header, rows)
    result = importer.import_file(live, files.Input(path), "pytest")
    assert result.path == "careful"
    assert_accounted(live, files.Input(path), result)
    reasons = dict(
        live.execute(
            "SELECT record_no, reason FROM ple_ops.dol_import_error WHERE import_id = "
            "(SELECT import_id FROM ple_ops.dol_import WHERE file_sha256 = %s)",
            (result.sha256,),
        ).fetchall()
    )
    assert reasons[2] == "SPONSOR_DFE_NAME missing (dol.form_5500.sponsor_dfe_name is NOT NULL)"
    assert reasons[3] == "SPONS_DFE_EIN missing (dol.form_5500.sponsor_dfe_ein is NOT NULL)"
    assert reasons[4].startswith("AMENDED_IND: value too long for type character varying(5)")
    assert reasons[5].startswith("TOT_PARTCP_BOY_CNT: invalid input syntax for type integer")
    assert len(reasons) == 4


def test_a_role_row_level_security_would_stop_is_refused_before_writing(live, live_db, samples):
    live.execute("DROP ROLE IF EXISTS dol_loader")
    live.execute("CREATE ROLE dol_loader LOGIN IN ROLE dol_hub_writer")
    from ple.ops import ensure_schema

    ensure_schema(live)
    # the tool's own schema belongs to the importing role (as on Neon, where one role owns the
    # database); the DOL tables do not: RLS applies to it
    live.execute(
        "DO $$ DECLARE r record; BEGIN "
        "EXECUTE format('ALTER DATABASE %I OWNER TO dol_loader', current_database()); "
        "ALTER SCHEMA ple_ops OWNER TO dol_loader; "
        "FOR r IN SELECT c.oid::regclass AS name FROM pg_class c WHERE c.relnamespace = 'ple_ops'::regnamespace "
        "AND c.relkind IN ('r', 'v', 'p') LOOP EXECUTE format('ALTER TABLE %s OWNER TO dol_loader', r.name); END LOOP; "
        "FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p WHERE p.pronamespace = 'ple_ops'::regnamespace "
        "LOOP EXECUTE format('ALTER FUNCTION %s OWNER TO dol_loader', r.name); END LOOP; END $$"
    )
    live.execute("GRANT DELETE ON dol.form_5500 TO dol_loader")
    # the superseded table exists already (created by the owner), so the role needs no DDL
    live.execute(
        "CREATE TABLE dol.form_5500_superseded (LIKE dol.form_5500, superseded_by_ack_id text, superseded_at timestamptz)"
    )
    live.execute("GRANT ALL ON dol.form_5500_superseded TO dol_loader")
    dsn = psycopg.conninfo.make_conninfo(live_db, user="dol_loader")
    source = files.Input(samples / "f_5500_2019_dbplans_slice.csv")
    with psycopg.connect(dsn, autocommit=True) as loader, pytest.raises(BadInput) as refused:
        importer.import_file(loader, source, "pytest")
    message = str(refused.value)
    assert "dol_loader" in message and "DELETE" in message and "dol_form_5500_update" in message
    assert live.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0] == 0
    # with a DELETE policy the same role imports
    live.execute("CREATE POLICY dol_form_5500_delete ON dol.form_5500 FOR DELETE TO dol_hub_writer USING (true)")
    live.execute("GRANT SELECT, UPDATE ON dol.schedule_a TO dol_loader")
    with psycopg.connect(dsn, autocommit=True) as loader:
        result = importer.import_file(loader, source, "pytest")
    assert result.status == "imported" and result.live_rows == 1000


def test_the_guard_bypass_is_the_configured_transaction_setting(live, samples):
    source = files.Input(samples / "f_5500_2019_dbplans_slice.csv")
    with pytest.raises(psycopg.errors.RaiseException, match="DOL_READONLY_VIOLATION"):
        importer.import_file(live, source, "pytest", guard=importer.Guard("ple.some_other_setting", "on"))
    assert live.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0] == 0
    result = importer.import_file(live, source, "pytest", guard=importer.Guard("dol.import_mode", "active"))
    assert result.status == "imported"


def test_schedule_a_before_its_filings_is_linked_when_the_filings_arrive(live, samples):
    inputs = {i.name.split(":")[-1]: i for i in files.discover(samples)[0]}
    schedule = importer.import_file(live, inputs["F_SCH_A_2021_synthetic.csv"], "pytest")
    assert schedule.inserted == 1400
    assert live.execute("SELECT count(filing_id) FROM dol.schedule_a").fetchone() == (0,)
    importer.import_file(live, inputs["f_5500_2021_dbplans_slice.csv"], "pytest")
    assert live.execute(
        "SELECT count(*), count(a.filing_id) FILTER (WHERE a.filing_id = f.filing_id) "
        "FROM dol.schedule_a a LEFT JOIN dol.form_5500 f USING (ack_id)"
    ).fetchone() == (1400, 1400)
