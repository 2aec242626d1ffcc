"""The record prefilter's cases found by the adversarial review, each fixed once and for all on
the live-shaped DOL tables (the property test in tests/property/test_dol_prefilter.py generates
them among others; these run every time, whatever Hypothesis draws)."""

from __future__ import annotations

import pytest

from ple import config
from ple.dol import files, importer
from ple.errors import BadInput
from tests.integration.dol.corpus import real_rows, with_value, write_csv


def _plan_name(conn, ack_id: str) -> str | None:
    row = conn.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (ack_id,)).fetchone()
    return row[0] if row else None


def test_a_refresh_with_lines_that_end_in_cr_alone_keeps_its_correction(live, tmp_path):
    """The splitter ends records at LF: a file of CR-only lines was one header and 0 records, and
    its correction was lost while the ledger said imported. It now stages the whole file."""
    header, rows = real_rows(30)
    importer.import_file(live, files.Input(write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)), "n1")
    corrected = [with_value(header, rows[4], "PLAN_NAME", "CHANGED NAME") if i == 4 else r for i, r in enumerate(rows)]
    path = write_csv(tmp_path / "f_5500_2019_b.csv", header, corrected)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    result = importer.import_file(live, files.Input(path), "n2")
    assert result.path != "prefilter"
    assert (result.data_rows, result.updated, result.history_rows) == (30, 1, 1), result.message
    assert _plan_name(live, rows[4][0]) == "CHANGED NAME"


@pytest.mark.parametrize("named", ["f_5500_2019", "f_5500"], ids=["prefilter", "whole file"])
def test_a_live_row_removed_by_someone_is_written_again(live, tmp_path, named):
    """A refresh holding a row the import wrote, unchanged, whose live row someone removed since:
    written again (before, the whole-file path proved it missing and failed every import)."""
    header, rows = real_rows(30)
    importer.import_file(live, files.Input(write_csv(tmp_path / f"{named}_a.csv", header, rows)), "n1")
    with live.transaction():
        live.execute("SELECT set_config(%s, %s, true)", (config.DOL_GUARD_SETTING, config.DOL_GUARD_VALUE))
        live.execute("DELETE FROM dol.form_5500 WHERE ack_id = %s", (rows[0][0],))
    corrected = [with_value(header, rows[5], "PLAN_NAME", "X") if i == 5 else r for i, r in enumerate(rows)]
    result = importer.import_file(live, files.Input(write_csv(tmp_path / f"{named}_b.csv", header, corrected)), "n2")
    assert (result.inserted, result.updated, result.history_rows) == (1, 1, 1), result.message
    assert result.live_rows + result.superseded_rows + result.error_rows == result.data_rows == 30
    assert _plan_name(live, rows[0][0]) == rows[0][header.index("PLAN_NAME")]


def test_a_record_quoted_otherwise_does_not_rewrite_the_owners_change(live, tmp_path):
    """Bytes changed, values not: the fingerprint (stored by a fresh load too) keeps the owner's
    change of the live row, as when the whole file is staged."""
    header, rows = real_rows(30)
    first = write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)
    importer.import_file(live, files.Input(first), "n1")
    with live.transaction():
        live.execute("SELECT set_config(%s, %s, true)", (config.DOL_GUARD_SETTING, config.DOL_GUARD_VALUE))
        live.execute("UPDATE dol.form_5500 SET plan_name = 'OWNER FIXED' WHERE ack_id = %s", (rows[2][0],))
    lines = first.read_bytes().split(b"\n")
    first_field, rest = lines[3].split(b",", 1)
    lines[3] = b'"' + first_field + b'",' + rest  # the record's first field quoted: the same values
    second = tmp_path / "f_5500_2019_b.csv"
    second.write_bytes(b"\n".join(lines))
    result = importer.import_file(live, files.Input(second), "n2")
    assert result.path == "prefilter" and result.staged_rows == 1
    assert (result.updated, result.history_rows, result.unchanged) == (0, 0, 30), result.message
    assert _plan_name(live, rows[2][0]) == "OWNER FIXED"


def test_a_file_with_a_stray_quote_is_refused_whole(live, tmp_path):
    """Quote parity joins two lines into one record (as COPY does); the count from the file's
    lines then disagrees, and the import is refused, nothing written, prefilter or not."""
    header, rows = real_rows(10)
    path = write_csv(tmp_path / "f_5500_2019_a.csv", header, rows)
    lines = path.read_bytes().split(b"\n")
    for n in (3, 4):  # two consecutive records, each with a quote inside an unquoted plan name
        assert b'"' not in lines[n] and b"PLAN" in lines[n]
        lines[n] = lines[n].replace(b"PLAN", b'PL"AN', 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(BadInput, match="10 data rows in the file, but 9 staged"):
        importer.import_file(live, files.Input(path), "n1")
    assert live.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0] == 0
