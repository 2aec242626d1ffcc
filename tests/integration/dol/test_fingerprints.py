"""Issue 22, item 4: a refresh rewrites only the rows whose content changed, two ways, both kept
by natural key in the tool's own schema (no DDL on the live tables):

- the record prefilter (a file named with its form year): the digest of the record that last
  wrote each key (ple_ops.dol_rd_<schema>_<table>); only the records whose bytes changed are
  staged, compared with the live rows and rewritten;
- otherwise each row's fingerprint (md5 of the file's values, ple_ops.dol_fp_<schema>_<table>);
  the whole file is staged, and only the rows whose fingerprint differs or is unknown are
  compared and rewritten.

Corrections still keep what they replace."""

from __future__ import annotations

import random

import pytest

from ple.dol import files, importer
from tests.integration.dol.corpus import real_rows, with_value, write_csv
from tests.integration.dol.live_tables import LIVE_TABLES, ddl_on

FINGERPRINTS = "ple_ops.dol_fp_dol_form_5500"
DIGESTS = "ple_ops.dol_rd_dol_form_5500"


def _versions(conn, table: str) -> dict[str, int]:
    """Each row's version (xmin) by ACK_ID: a row rewritten gets a new one."""
    return {a: int(x) for a, x in conn.execute(f"SELECT ack_id::text, xmin::text FROM {table}").fetchall()}


@pytest.mark.parametrize("named", ["f_5500_2019", "f_5500"], ids=["prefilter", "fingerprints"])
def test_a_refresh_rewrites_only_the_rows_that_changed(live, tmp_path, named):
    kept = DIGESTS if named == "f_5500_2019" else FINGERPRINTS
    header, rows = real_rows(200)
    first = importer.import_file(live, files.Input(write_csv(tmp_path / f"{named}_a.csv", header, rows)), "n1")
    assert first.status == "imported" and first.writer == "insert", first.message
    good = first.data_rows - first.error_rows
    assert live.execute(f"SELECT count(*) FROM {kept}").fetchone()[0] == good
    ddl = ddl_on(live, LIVE_TABLES)
    rows_before, prints_before = _versions(live, "dol.form_5500"), _versions(live, kept)

    # two filings corrected (~1%), the others as they were, in another order (a row moved in the
    # file is the same row)
    live_acks = set(rows_before)
    changed = [i for i, r in enumerate(rows) if r[0] in live_acks][:2]
    republished = list(rows)
    for i in changed:
        republished[i] = with_value(header, rows[i], "PLAN_NAME", f"CORRECTED {i}")
    random.Random(22).shuffle(republished)
    second = importer.import_file(live, files.Input(write_csv(tmp_path / f"{named}_b.csv", header, republished)), "n2")
    assert second.status == "imported" and second.writer == "upsert", second.message
    assert second.path == ("prefilter" if kept == DIGESTS else "copy")
    assert second.staged_rows == (2 if kept == DIGESTS else len(rows))
    assert (second.inserted, second.updated, second.history_rows) == (0, 2, 2), second.message
    assert second.live_rows + second.superseded_rows + second.error_rows == second.data_rows

    corrected = {rows[i][0] for i in changed}
    rows_after, prints_after = _versions(live, "dol.form_5500"), _versions(live, kept)
    assert {a for a in rows_after if rows_after[a] != rows_before.get(a)} == corrected
    assert {a for a in prints_after if prints_after[a] != prints_before.get(a)} == corrected
    assert sorted(
        live.execute(
            "SELECT natural_key ->> 'ack_id' FROM ple_ops.dol_row_history WHERE table_name = 'dol.form_5500'"
        ).fetchall()
    ) == sorted((a,) for a in corrected)
    assert ddl_on(live, LIVE_TABLES) == ddl  # the fingerprints live in ple_ops: no DDL on a live table

    # the same content once more, in the original order: nothing rewritten at all
    third = importer.import_file(
        live,
        files.Input(
            write_csv(
                tmp_path / f"{named}_c.csv",
                header,
                [
                    with_value(header, r, "PLAN_NAME", f"CORRECTED {i}") if i in changed else r
                    for i, r in enumerate(rows)
                ],
            )
        ),
        "n3",
    )
    assert (third.inserted, third.updated, third.history_rows) == (0, 0, 0), third.message
    assert _versions(live, "dol.form_5500") == rows_after
    assert _versions(live, kept) == prints_after
