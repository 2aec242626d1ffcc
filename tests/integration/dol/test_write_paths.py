"""The import's two ways of writing, on the live-shaped DOL tables (production twin shapes, guards,
RLS): the fresh load (no staged key exists in the live or the superseded table: one INSERT that
validates on the way, proved by its own count and key checksum) and the upsert (every other
case). Each test checks which way was taken and that every data row of the file ends in exactly
one of the live table, the superseded table and the errors table.
"""

from __future__ import annotations

import pytest

from ple.dol import files, importer
from ple.errors import BadInput
from tests.integration.dol.corpus import real_rows, renumbered, with_value, write_csv
from tests.integration.dol.live_tables import assert_accounted, requoted, table_state

# the live-shaped DOL tables of test_live_tables (an empty database, every guard, a DDL counter)


def _import(conn, path) -> importer.ImportResult:
    result = importer.import_file(conn, files.Input(path), "pytest")
    assert result.status == "imported", result.message
    assert_accounted(conn, files.Input(path), result)
    return result


def test_the_plain_insert_is_taken_only_when_no_staged_key_exists(live, tmp_path):
    header, rows = real_rows(40)
    first = renumbered(header, rows[:20], 9_000_000)
    fresh = _import(live, write_csv(tmp_path / "f_5500_2019_first.csv", header, first))
    assert fresh.writer == "insert" and (fresh.inserted, fresh.updated, fresh.unchanged) == (20, 0, 0)
    assert (fresh.live_rows, fresh.superseded_rows, fresh.error_rows) == (20, 0, 0)

    # half of the file's keys are in the table already (one changed): the upsert
    later = renumbered(header, rows[20:], 9_000_020)
    half = [with_value(header, first[0], "PLAN_NAME", "RENAMED PLAN"), *first[1:10], *later[:10]]
    overlap = _import(live, write_csv(tmp_path / "f_5500_2019_half.csv", header, half))
    assert overlap.writer == "upsert"
    assert (overlap.inserted, overlap.updated, overlap.unchanged) == (10, 1, 9)
    assert live.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (first[0][0],)).fetchone() == (
        "RENAMED PLAN",
    )

    # new keys only: the plain insert again
    new = _import(live, write_csv(tmp_path / "f_5500_2019_new.csv", header, later[10:]))
    assert new.writer == "insert" and new.inserted == 10
    assert live.execute("SELECT count(*) FROM dol.form_5500").fetchone() == (40,)


def test_a_fresh_file_with_a_filing_its_amendment_and_rows_the_validation_refuses(live, tmp_path):
    header, rows = real_rows(12)
    rows = renumbered(header, rows, 9_100_000)
    original = with_value(header, rows[0], "AMENDED_IND", "0")
    amendment = with_value(header, with_value(header, original, "AMENDED_IND", "1"), "DATE_RECEIVED", "2021-03-01")
    amendment[0] = original[0][:17] + "9999999991234"
    rows[3] = with_value(header, rows[3], "SPONS_DFE_EIN", "12345")  # not 9 digits
    rows[4] = with_value(header, rows[4], "ACK_ID", "SHORT")  # not 30 characters
    path = write_csv(tmp_path / "f_5500_2019_mixed.csv", header, [original, *rows[1:], amendment])
    result = _import(live, path)
    assert result.writer == "insert" and result.path == "copy"
    assert (result.inserted, result.error_rows, result.superseded) == (11, 2, 1)
    assert (result.live_rows, result.superseded_rows) == (10, 1)
    assert live.execute(
        "SELECT count(*) FROM dol.form_5500 WHERE ack_id IN (%s, 'SHORT')", (rows[3][0],)
    ).fetchone() == (0,)
    reasons = [
        r
        for (r,) in live.execute(
            "SELECT reason FROM ple_ops.dol_import_error WHERE import_id = "
            "(SELECT import_id FROM ple_ops.dol_import WHERE file_sha256 = %s) ORDER BY record_no",
            (result.sha256,),
        )
    ]
    assert reasons == ["SPONS_DFE_EIN is not 9 digits", "ACK_ID is not 30 characters"]

    # the same rows again in other bytes: every key exists, the upsert; nothing changes
    state = table_state(live)
    again = _import(live, requoted(files.Input(path), tmp_path / "f_5500_2019_mixed_again.csv").path)
    assert again.writer == "upsert"
    assert (again.inserted, again.updated, again.superseded, again.already_superseded) == (0, 0, 0, 1)
    assert table_state(live) == state


def test_a_key_only_in_the_superseded_table_is_not_a_fresh_load(live, tmp_path):
    header, rows = real_rows(3)
    rows = renumbered(header, rows, 9_200_000)
    original = with_value(header, rows[0], "AMENDED_IND", "0")
    amendment = with_value(header, original, "DATE_RECEIVED", "2021-03-01")
    amendment[0] = original[0][:17] + "9999999995678"
    _import(live, write_csv(tmp_path / "f_5500_2019_pair.csv", header, [original, amendment]))
    # the superseded original alone, in a file of its own, beside a new filing
    lone = _import(live, write_csv(tmp_path / "f_5500_2019_lone.csv", header, [original, rows[1]]))
    assert lone.writer == "upsert"
    assert (lone.inserted, lone.already_superseded, lone.live_rows, lone.superseded_rows) == (1, 1, 1, 1)
    assert live.execute("SELECT count(*) FROM dol.form_5500_superseded").fetchone() == (1,)


def test_a_fresh_load_with_a_repeated_key_takes_the_upsert_path(live, tmp_path):
    header, rows = real_rows(5)
    rows = renumbered(header, rows, 9_300_000)
    path = write_csv(tmp_path / "f_5500_2019_repeat.csv", header, [*rows, rows[2]])
    # (not assert_accounted: it places a record by its key, which the repeated record shares)
    result = importer.import_file(live, files.Input(path), "pytest")
    assert result.writer == "upsert" and (result.inserted, result.error_rows) == (5, 1)
    assert (result.data_rows, result.live_rows, result.superseded_rows) == (6, 5, 0)
    assert live.execute(
        "SELECT record_no, reason FROM ple_ops.dol_import_error WHERE import_id = "
        "(SELECT import_id FROM ple_ops.dol_import WHERE file_sha256 = %s)",
        (result.sha256,),
    ).fetchall() == [(6, "natural key ACK_ID repeated in the file")]


def test_schedule_a_fresh_then_rerun_never_duplicates(live, tmp_path):
    from ple.config import DOL_SAMPLE_DIR

    source = files.Input(DOL_SAMPLE_DIR / "F_SCH_A_2021_synthetic.zip", "F_SCH_A_2021_synthetic.csv")
    first = importer.import_file(live, source, "pytest")
    assert_accounted(live, source, first)
    assert first.writer == "insert" and first.inserted == first.data_rows
    again = _import(live, requoted(source, tmp_path / "F_SCH_A_2021_again.csv").path)
    assert again.writer == "upsert" and again.unchanged == again.data_rows
    assert live.execute("SELECT count(*), count(DISTINCT (ack_id, form_id)) FROM dol.schedule_a").fetchone() == (
        first.data_rows,
        first.data_rows,
    )


def test_a_fresh_load_whose_written_keys_differ_from_the_staged_ones_rolls_back(live, tmp_path, monkeypatch):
    """The proof of the plain insert is real: a written key set that is not the staged one (here:
    the staged checksum made wrong) stops the import, and nothing of the file stays."""
    header, rows = real_rows(4)
    path = write_csv(tmp_path / "f_5500_2019_proof.csv", header, renumbered(header, rows, 9_400_000))
    staged_keys = importer.validate.staged_keys

    def wrong(conn, dataset):
        keys = staged_keys(conn, dataset)
        return importer.StagedKeys(keys.rows, keys.checksum + 1, keys.repeated)

    monkeypatch.setattr(importer.validate, "staged_keys", wrong)
    with pytest.raises(BadInput, match="other keys than the staged ones: rolled back"):
        importer.import_file(live, files.Input(path), "pytest")
    assert live.execute("SELECT count(*) FROM dol.form_5500").fetchone() == (0,)
