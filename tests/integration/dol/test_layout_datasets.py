"""Issue 22, item 2 (as far as the project ships layouts): every EFAST2 dataset that has a layout
imports, layout-driven, into a table created from its layout on a fresh database (an `id
bigserial` key like the owner's schedule tables, the natural key ACK_ID with FORM_ID and
ROW_ORDER where the layout has them); a correction keeps what it replaces; a header that matches
no known layout is refused with the header named."""

from __future__ import annotations

import pytest

from ple.dol import files, importer
from ple.dol.layouts import all_datasets, dataset, fields_for_year, layout_datasets
from ple.errors import BadInput
from tests.integration.dol.corpus import write_csv


def _rows(name: str, year: int, n: int) -> tuple[list[str], list[list[str]]]:
    fields = fields_for_year(name, year)
    rows = []
    for i in range(n):
        row = []
        for f in fields:
            if f.name == "ACK_ID":
                row.append(f"20210101000000P04000000{i // 2:07d}")
            elif f.name in ("FORM_ID", "ROW_ORDER"):
                row.append(str(1 + i % 2))
            elif f.dol_type == "NUMERIC":
                row.append(str(1000 + i))
            else:
                row.append(f"{f.name[:6]} {i}"[: f.size or 20])
        rows.append(row)
    return [f.name for f in fields], rows


def test_every_layout_is_a_dataset_with_a_natural_key():
    assert {"F_5500", "F_5500_SF", "F_SCH_A", "F_SCH_A_PART1", "F_5500_SF_PART7"} <= set(layout_datasets())
    assert dataset("F_SCH_A_PART1").natural_key == ("ack_id", "form_id", "row_order")
    assert dataset("F_SCH_A_PART1").table == "dol.schedule_a_part1"
    assert dataset("F_5500_SF_PART7").natural_key == ("ack_id", "row_order")
    assert set(all_datasets()) == set(layout_datasets())


@pytest.mark.parametrize(("name", "year"), [("F_SCH_A_PART1", 2021), ("F_5500_SF_PART7", 2024)])
def test_a_layout_dataset_imports_and_keeps_what_a_correction_replaces(live, tmp_path, name, year):
    header, rows = _rows(name, year, 10)
    first = importer.import_file(live, files.Input(write_csv(tmp_path / f"{name}_{year}_a.csv", header, rows)), "n1")
    assert (first.status, first.dataset, first.inserted, first.error_rows) == ("imported", name, 10, 0), first.message
    table = dataset(name).table
    assert live.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'",
        (table,),
    ).fetchone() == ("bigint",)
    column = header[3] if name == "F_SCH_A_PART1" else header[2]
    old = rows[4][3 if name == "F_SCH_A_PART1" else 2]
    corrected = [
        *rows[:4],
        [*rows[4][: header.index(column)], "CORRECTED", *rows[4][header.index(column) + 1 :]],
        *rows[5:],
    ]
    second = importer.import_file(
        live, files.Input(write_csv(tmp_path / f"{name}_{year}_b.csv", header, corrected)), "n2"
    )
    assert (second.updated, second.unchanged, second.history_rows) == (1, 9, 1), second.message
    assert live.execute(
        "SELECT replaced_row ->> %s FROM ple_ops.dol_row_history WHERE table_name = %s", (column.lower(), table)
    ).fetchall() == [(old,)]
    assert importer.prove_run(live, "n2") == 1


def test_a_header_matching_no_known_layout_is_refused_with_the_header_named(live, tmp_path):
    path = write_csv(tmp_path / "F_SCH_Z_2024_latest.csv", ["ACK_ID", "MYSTERY_FIELD", "OTHER"], [["x" * 30, "1", "2"]])
    with pytest.raises(BadInput, match=r"matches no known EFAST2 layout .*The header: ACK_ID, MYSTERY_FIELD, OTHER"):
        importer.import_file(live, files.Input(path), "n1")
    assert live.execute("SELECT to_regclass('dol.schedule_z')").fetchone()[0] is None
