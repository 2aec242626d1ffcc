"""Issue 22, item 3: a republished file that corrects a filing under the same natural key keeps
what it replaces. The replaced row, whole, goes to `ple_ops.dol_row_history` with when and by
which file; the ledger counts it; importing the corrected data again changes nothing.

On the live-shaped tables (guards, RLS, set_updated_at) and on the pre-plan fixture."""

from __future__ import annotations

import psycopg
import pytest

from ple.dol import files, importer
from tests.integration.dol.corpus import real_rows, with_value, write_csv
from tests.integration.dol.live_tables import guard_triggers


def _history(conn, ack_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT h.replaced_row ->> 'plan_name', h.replaced_row ->> 'spons_dfe_mail_us_city', h.replaced_by_file, "
        "h.replaced_by_import_id, h.replaced_at IS NOT NULL, h.natural_key "
        "FROM ple_ops.dol_row_history h WHERE h.table_name = 'dol.form_5500' AND h.natural_key ->> 'ack_id' = %s "
        "ORDER BY h.history_id",
        (ack_id,),
    ).fetchall()


def _state(conn) -> tuple:
    return (
        conn.execute(
            "SELECT count(*), sum(hashtext(x::text)), max(xmin::text::bigint) FROM dol.form_5500 x"
        ).fetchone(),
        conn.execute("SELECT count(*) FROM ple_ops.dol_row_history").fetchone(),
    )


@pytest.mark.parametrize("database", ["live", "conn"])
def test_a_corrected_filing_keeps_the_value_it_replaces(database, request, tmp_path):
    conn = request.getfixturevalue(database)
    header, rows = real_rows(20)
    first = importer.import_file(conn, files.Input(write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)), "n1")
    assert first.status == "imported" and first.history_rows == 0
    ack = rows[3][0]
    old_name, old_city = conn.execute(
        "SELECT plan_name, spons_dfe_mail_us_city FROM dol.form_5500 WHERE ack_id = %s", (ack,)
    ).fetchone()
    before_guards = guard_triggers(conn)

    corrected = list(rows)
    corrected[3] = with_value(
        header, with_value(header, rows[3], "PLAN_NAME", "CORRECTED NAME"), "SPONS_DFE_MAIL_US_CITY", ""
    )
    republished = write_csv(tmp_path / "f_5500_2019_b.csv", header, corrected)
    result = importer.import_file(conn, files.Input(republished), "n2")
    assert result.status == "imported", result.message
    assert (result.inserted, result.updated, result.unchanged, result.history_rows) == (0, 1, 19, 1)
    assert result.live_rows + result.superseded_rows + result.error_rows == result.data_rows == 20
    assert "1 changed (1 replaced rows kept in ple_ops.dol_row_history)" in result.message

    # the live row carries the correction; the replaced row, every value of it, is in the history
    assert conn.execute(
        "SELECT plan_name, spons_dfe_mail_us_city FROM dol.form_5500 WHERE ack_id = %s", (ack,)
    ).fetchone() == ("CORRECTED NAME", None)
    import_id = conn.execute(
        "SELECT import_id FROM ple_ops.dol_import WHERE file_sha256 = %s", (result.sha256,)
    ).fetchone()[0]
    [(name, city, by_file, by_import, when, key)] = _history(conn, ack)
    assert (name, city, by_file, by_import, when, key) == (
        old_name,
        old_city,
        "f_5500_2019_b.csv",
        import_id,
        True,
        {"ack_id": ack},
    )
    assert (
        conn.execute("SELECT history_rows FROM ple_ops.dol_import WHERE import_id = %s", (import_id,)).fetchone()[0]
        == 1
    )
    # the whole old row: every column of the live table, as it was
    full = conn.execute(
        "SELECT h.replaced_row FROM ple_ops.dol_row_history h WHERE h.natural_key ->> 'ack_id' = %s", (ack,)
    ).fetchone()[0]
    live_columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'dol.form_5500'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    ]
    assert set(full) == set(live_columns)

    # the same corrected data again (other bytes): nothing changes, nothing more in the history
    state = _state(conn)
    again = importer.import_file(
        conn, files.Input(write_csv(tmp_path / "f_5500_2019_c.csv", header, corrected, bom=True)), "n3"
    )
    assert again.status == "imported" and (again.updated, again.history_rows) == (0, 0)
    assert _state(conn) == state
    assert importer.import_file(conn, files.Input(republished), "n4").status == "already_imported"
    assert _state(conn) == state
    assert guard_triggers(conn) == before_guards

    # a second correction of the same filing keeps the first correction as well
    twice = list(corrected)
    twice[3] = with_value(header, corrected[3], "PLAN_NAME", "CORRECTED AGAIN")
    third = importer.import_file(conn, files.Input(write_csv(tmp_path / "f_5500_2019_d.csv", header, twice)), "n5")
    assert third.history_rows == 1
    assert [h[0] for h in _history(conn, ack)] == [old_name, "CORRECTED NAME"]
    assert importer.prove_run(conn, "n5") == 1


def test_history_survives_a_failed_import(live, tmp_path):
    """A correction whose import rolls back leaves neither the update nor a history row."""
    header, rows = real_rows(5)
    importer.import_file(live, files.Input(write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)), "n1")
    corrected = [with_value(header, rows[0], "PLAN_NAME", "X"), *rows[1:]]
    with pytest.raises(psycopg.Error):
        importer.import_file(
            live,
            files.Input(write_csv(tmp_path / "f_5500_2019_b.csv", header, corrected)),
            "n2",
            guard=importer.Guard("dol.import_mode", "wrong"),
        )
    assert live.execute("SELECT count(*) FROM ple_ops.dol_row_history").fetchone()[0] == 0
    assert live.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (rows[0][0],)).fetchone()[0] != "X"
