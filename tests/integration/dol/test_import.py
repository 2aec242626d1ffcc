"""The DOL import on real PostgreSQL, with the real F_5500 rows and the files real DOL data
throws at importers (QUIRKS.md). Every data row of every input ends up in a canonical table or in
the errors table."""

import csv
import shutil

import pytest

from ple.dol import files, importer
from tests.integration.dol.corpus import REAL_2019, column, real_rows, renumbered, with_value, write_csv, zipped


def run(conn, path, member=None):
    return importer.import_file(conn, files.Input(path, member), "pytest")


def landed(conn, result) -> int:
    table = {"F_5500": "dol.form_5500", "F_5500_SF": "dol.form_5500_sf", "F_SCH_A": "dol.schedule_a"}[result.dataset]
    import_id = conn.execute(
        "SELECT import_id FROM ple_ops.dol_import WHERE file_sha256 = %s", (result.sha256,)
    ).fetchone()[0]
    schema, name = table.split(".")
    return conn.execute(
        f'SELECT count(*) FROM "{schema}"."{name}" WHERE source_import_id = %s', (import_id,)
    ).fetchone()[0]


def errors(conn, result) -> list[tuple]:
    return conn.execute(
        "SELECT e.record_no, e.reason, e.raw_line FROM ple_ops.dol_import_error e JOIN ple_ops.dol_import i USING (import_id) "
        "WHERE i.file_sha256 = %s ORDER BY e.record_no",
        (result.sha256,),
    ).fetchall()


def assert_every_row_accounted_for(conn, result, data_rows: int):
    assert result.data_rows == data_rows
    assert landed(conn, result) + len(errors(conn, result)) == data_rows


def test_real_rows_land_with_their_leading_zeros_empty_indicators_and_timestamps(conn):
    header, rows = real_rows()
    result = run(conn, REAL_2019)
    assert result.status == "imported" and result.path == "copy"
    assert_every_row_accounted_for(conn, result, len(rows))
    ein = column(header, "SPONS_DFE_EIN")
    zero_eins = {r[0]: r[ein] for r in rows if r[ein].startswith("0")}
    assert zero_eins
    stored = dict(
        conn.execute(
            "SELECT ack_id, sponsor_dfe_ein FROM dol.form_5500 WHERE ack_id = ANY(%s)", (list(zero_eins),)
        ).fetchall()
    )
    assert stored == zero_eins
    empty_amended = sum(1 for r in rows if r[column(header, "AMENDED_IND")] == "")
    assert (
        conn.execute(
            "SELECT count(*) FROM dol.form_5500 WHERE amended_ind IS NULL AND ack_id = ANY(%s)", ([r[0] for r in rows],)
        ).fetchone()[0]
        == empty_amended
    )
    signed = conn.execute(
        "SELECT admin_manual_signed_date AT TIME ZONE 'UTC' FROM dol.form_5500 WHERE ack_id = '20200722175623NAL0003368576001'"
    ).fetchone()[0]
    assert str(signed) == "2020-07-22 12:00:00"  # 2020-07-22T07:00:00-0500


def test_the_same_file_again_even_zipped_is_a_no_op(conn, tmp_path):
    first = run(conn, REAL_2019)
    count = conn.execute("SELECT count(*), max(updated_at) FROM dol.form_5500").fetchone()
    again = run(conn, REAL_2019)
    archive = zipped(tmp_path / "f_5500_2019_latest.zip", {"f_5500_2019_latest.csv": REAL_2019.read_bytes()})
    from_zip = run(conn, archive, "f_5500_2019_latest.csv")
    assert first.status == "imported"
    assert again.status == from_zip.status == "already_imported"
    assert conn.execute("SELECT count(*), max(updated_at) FROM dol.form_5500").fetchone() == count


def test_changed_rows_are_updated_and_unchanged_rows_are_not_rewritten(conn, tmp_path):
    header, rows = real_rows(200)
    original = write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)
    run(conn, original)
    versions = dict(
        conn.execute(
            "SELECT ack_id, xmin::text FROM dol.form_5500 WHERE ack_id = ANY(%s)", ([r[0] for r in rows],)
        ).fetchall()
    )
    edited = [with_value(header, rows[0], "PLAN_NAME", 'RENAMED PLAN, "QUOTED"'), *rows[1:]]
    result = run(conn, write_csv(tmp_path / "f_5500_2019_b.csv", header, edited))
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 199)
    after = dict(
        conn.execute(
            "SELECT ack_id, xmin::text FROM dol.form_5500 WHERE ack_id = ANY(%s)", ([r[0] for r in rows],)
        ).fetchall()
    )
    assert [a for a in versions if versions[a] != after[a]] == [rows[0][0]]
    assert (
        conn.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (rows[0][0],)).fetchone()[0]
        == 'RENAMED PLAN, "QUOTED"'
    )


def test_an_amended_filing_replaces_its_original_which_is_kept(conn, tmp_path):
    header, rows = real_rows(1)
    original = with_value(header, rows[0], "AMENDED_IND", "0")
    run(conn, write_csv(tmp_path / "f_5500_2019_original.csv", header, [original]))
    amended = renumbered(header, [original], 9_000_000)[0]
    amended = with_value(header, with_value(header, amended, "AMENDED_IND", "1"), "DATE_RECEIVED", "2021-03-01")
    result = run(conn, write_csv(tmp_path / "f_5500_2019_amended.csv", header, [amended]))
    assert result.superseded == 1
    assert conn.execute("SELECT count(*) FROM dol.form_5500 WHERE ack_id = %s", (original[0],)).fetchone()[0] == 0
    assert conn.execute("SELECT amended_ind FROM dol.form_5500 WHERE ack_id = %s", (amended[0],)).fetchone()[0] == "1"
    assert (
        conn.execute(
            "SELECT superseded_by_ack_id FROM dol.form_5500_superseded WHERE ack_id = %s", (original[0],)
        ).fetchone()[0]
        == amended[0]
    )


def test_quoted_commas_and_quotes_cp1252_bytes_and_a_bom(conn, tmp_path):
    header, rows = real_rows(3)
    rows = renumbered(header, rows, 7_000_000)
    rows[0] = with_value(header, rows[0], "SPONSOR_DFE_NAME", 'CAFÉ "OLÉ", INC.')
    rows[1] = with_value(
        header, rows[1], "PLAN_NAME", "PENSION PLAN – “2019”, AMENDED"
    )  # en dash and curly quotes: cp1252 bytes
    cp1252 = run(conn, write_csv(tmp_path / "f_5500_2019_cp1252.csv", header, rows, encoding="cp1252"))
    assert cp1252.encoding == "cp1252"
    rows_bom = [
        with_value(header, r, "SPONS_DFE_PN", "999") for r in renumbered(header, rows, 7_100_000)
    ]  # other plans
    bom = run(conn, write_csv(tmp_path / "f_5500_2019_bom.csv", header, rows_bom, bom=True))
    assert bom.encoding == "utf-8" and bom.data_rows == 3
    names = conn.execute(
        "SELECT sponsor_dfe_name, plan_name FROM dol.form_5500 WHERE ack_id IN (%s, %s)", (rows[0][0], rows_bom[0][0])
    ).fetchall()
    assert {n for n, _ in names} == {'CAFÉ "OLÉ", INC.'}
    assert (
        conn.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (rows[1][0],)).fetchone()[0]
        == "PENSION PLAN – “2019”, AMENDED"
    )


def test_ragged_rows_go_to_the_errors_table_and_the_good_rows_land(conn, tmp_path):
    header, rows = real_rows(50)
    rows = renumbered(header, rows, 6_000_000)
    rows[10] = rows[10][:-5]  # too few fields
    rows[20] = rows[20] + ["extra"]  # too many
    result = run(conn, write_csv(tmp_path / "f_5500_2019_ragged.csv", header, rows))
    assert result.path == "careful"
    assert_every_row_accounted_for(conn, result, 50)
    bad = errors(conn, result)
    assert [(n, reason.split(":")[0]) for n, reason, _ in bad] == [(11, "ragged row"), (21, "ragged row")]
    assert bad[0][2].startswith(rows[10][0])


def test_unknown_columns_are_kept_as_jsonb_and_missing_columns_are_null(conn, tmp_path):
    header, rows = real_rows(5)
    rows = renumbered(header, rows, 5_000_000)
    old_header = header[:100]  # an older year's layout had fewer columns
    with_extra = [*old_header, "NEW_DOL_FIELD_2026"]
    result = run(
        conn, write_csv(tmp_path / "f_5500_2019_new.csv", with_extra, [[*r[:100], f"v{i}"] for i, r in enumerate(rows)])
    )
    assert result.unknown_columns == ["NEW_DOL_FIELD_2026"]
    assert_every_row_accounted_for(conn, result, 5)
    extras = conn.execute(
        "SELECT extras ->> 'NEW_DOL_FIELD_2026', sch_mep_attached_ind FROM dol.form_5500 WHERE ack_id = %s",
        (rows[3][0],),
    ).fetchone()
    assert extras == ("v3", None)
    recorded = conn.execute(
        "SELECT unknown_columns FROM ple_ops.dol_import WHERE file_sha256 = %s", (result.sha256,)
    ).fetchone()[0]
    assert recorded == ["NEW_DOL_FIELD_2026"]


def test_bad_values_and_repeated_keys_are_quarantined_with_the_reason(conn, tmp_path):
    header, rows = real_rows(20)
    rows = renumbered(header, rows, 4_000_000)
    rows[1] = with_value(header, rows[1], "SPONS_DFE_EIN", "12-3456789")
    rows[2] = with_value(header, rows[2], "ACK_ID", "SHORT")
    rows[3] = with_value(header, rows[3], "PLAN_EFF_DATE", "2024-02-30")
    rows[4] = with_value(header, rows[4], "TOT_PARTCP_BOY_CNT", "12,5x")
    rows[5] = list(rows[6])  # the same ACK_ID twice
    rows[7] = with_value(
        header, rows[7], "FORM_PLAN_YEAR_BEGIN_DATE", "2020-02-01"
    )  # begins after it ends (2019-12-31)
    result = run(conn, write_csv(tmp_path / "f_5500_2019_bad.csv", header, rows))
    assert_every_row_accounted_for(conn, result, 20)
    reasons = {n: reason for n, reason, _ in errors(conn, result)}
    assert "SPONS_DFE_EIN is not 9 digits" in reasons[2]
    assert "ACK_ID is not 30 characters" in reasons[3]
    assert reasons[4].startswith("PLAN_EFF_DATE: date/time field value out of range")  # refused by COPY, typed
    assert reasons[5].startswith("TOT_PARTCP_BOY_CNT: invalid input syntax for type numeric")
    assert "repeated in the file" in reasons[7]
    assert 8 in reasons and "is not a plan year" in reasons[8]


def test_zip_with_an_unexpected_member(conn, tmp_path):
    header, rows = real_rows(10)
    data = write_csv(tmp_path / "member.csv", header, renumbered(header, rows, 3_000_000)).read_bytes()
    landing = tmp_path / "landing"
    landing.mkdir()
    zipped(
        landing / "F_5500_2019_Latest.zip",
        {"f_5500_2019_latest.csv": data, "f_5500_2019_layout.txt": b"layout", "__MACOSX/._x": b""},
    )
    (landing / "notes.pdf").write_bytes(b"%PDF")
    inputs, skipped = files.discover(landing)
    assert [i.name for i in inputs] == ["F_5500_2019_Latest.zip:f_5500_2019_latest.csv"]
    assert {s.name for s in skipped} == {
        "F_5500_2019_Latest.zip:f_5500_2019_layout.txt",
        "F_5500_2019_Latest.zip:__MACOSX/._x",
        "notes.pdf",
    }
    result = importer.import_file(conn, inputs[0], "pytest")
    assert_every_row_accounted_for(conn, result, 10)


def test_empty_header_only_and_truncated_files(conn, tmp_path):
    empty = tmp_path / "f_5500_2019_empty.csv"
    empty.write_bytes(b"")
    assert run(conn, empty).status == "empty"
    header, rows = real_rows(30)
    header_only = run(conn, write_csv(tmp_path / "f_5500_2019_header.csv", header, []))
    assert header_only.status == "imported" and header_only.data_rows == 0
    full = write_csv(tmp_path / "full.csv", header, renumbered(header, rows, 2_000_000)).read_bytes()
    truncated = tmp_path / "f_5500_2019_truncated.csv"
    last_row = full.rstrip(b"\n").rsplit(b"\n", 1)[1]
    truncated.write_bytes(full[: len(full) - len(last_row) // 2])  # cut in the middle of the last row
    result = run(conn, truncated)
    assert result.path == "careful"
    assert_every_row_accounted_for(conn, result, 30)
    assert [reason.split(":")[0] for _, reason, _ in errors(conn, result)] == ["ragged row"]


def test_a_quoted_field_spanning_lines_is_one_row(conn, tmp_path):
    header, rows = real_rows(4)
    rows = renumbered(header, rows, 1_000_000)
    rows[1] = with_value(header, rows[1], "PLAN_NAME", "A PLAN NAME\nON TWO LINES")
    result = run(conn, write_csv(tmp_path / "f_5500_2019_multiline.csv", header, rows))
    assert_every_row_accounted_for(conn, result, 4)
    assert (
        conn.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (rows[1][0],)).fetchone()[0]
        == "A PLAN NAME\nON TWO LINES"
    )


def test_schedule_a_is_one_row_per_contract_and_the_documents_join_works(conn, tmp_path):
    from ple.config import DOL_SAMPLE_DIR

    for name in ("f_5500_2021_dbplans_slice.csv", "F_SCH_A_2021_synthetic.zip", "f_5500_sf_2023_synthetic.csv"):
        shutil.copy(DOL_SAMPLE_DIR / name, tmp_path / name)
    inputs, _ = files.discover(tmp_path)
    results = {i.name: importer.import_file(conn, i, "pytest") for i in inputs}
    schedule = results["F_SCH_A_2021_synthetic.zip:F_SCH_A_2021_synthetic.csv"]
    assert schedule.inserted == 1400
    per_filing = conn.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM dol.schedule_a WHERE source_import_id IS NOT NULL GROUP BY ack_id) c"
    ).fetchone()[0]
    assert per_filing == 2  # 1,400 contracts on 1,000 filings: FORM_ID tells them apart
    joined = conn.execute(
        "SELECT count(*) FROM (SELECT f.sponsor_dfe_name, a.insurance_company_name, a.covered_lives "
        "FROM dol.form_5500 f JOIN dol.schedule_a a ON f.ack_id = a.ack_id WHERE a.source_import_id IS NOT NULL) j"
    ).fetchone()[0]
    assert joined == 1400
    assert results["f_5500_sf_2023_synthetic.csv"].inserted == 400


@pytest.fixture
def sample_landing(tmp_path):
    from ple.config import DOL_SAMPLE_DIR

    landing = tmp_path / "landing"
    shutil.copytree(DOL_SAMPLE_DIR, landing)
    return landing


def test_every_row_of_the_sample_folder_is_accounted_for(conn, sample_landing):
    inputs, skipped = files.discover(sample_landing)
    assert [s.name for s in skipped] == ["README.md"]
    for source in inputs:
        with source.open() as handle:
            expected = sum(1 for _ in csv.reader(line.decode() for line in handle)) - 1
        result = importer.import_file(conn, source, "pytest")
        assert_every_row_accounted_for(conn, result, expected)
