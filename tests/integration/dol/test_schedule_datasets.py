"""Issue 22, item 2: the schedule datasets (C, D, G, H, I, MB, R, SB, DCG, MEP and their part
tables) import, layout-driven, through the local DOL server, every row accounted.

Their layouts (include/dol/layouts/schedule_layouts_by_year.csv) are DOL's published layout
files; no real rows of them are available, so the rows served are generated from those layouts
(ple_dev.synthetic_dol). Two shapes of database: a fresh one (each table created from its layout, an
`id bigserial` key) and one holding the owner's schedule tables as the inventory of the live
database lists them (the importer writes into them and changes nothing of their shape)."""

from __future__ import annotations

import io
import json
import zipfile

import psycopg
import pytest
from psycopg import sql

from ple.config import INVENTORY_FILE
from ple.dol import fetch, importer
from ple.dol.layouts import dataset, layout_datasets, union_fields
from ple.sqlutil import qualified
from ple_dev.fixture.builder import install_helpers
from ple_dev.synthetic_dol import write_file
from tests.integration.dol.dol_server import FAST, DolServer
from tests.integration.dol.live_tables import ddl_on

# The datasets whose layouts came with schedule_layouts_by_year.csv (the others have tests of their own).
EARLIER = {"F_5500", "F_5500_SF", "F_SCH_A", "F_SCH_A_PART1", "F_5500_SF_PART7"}
SCHEDULES = [name for name in layout_datasets() if name not in EARLIER]
YEAR = 2023  # F_SCH_DCG and F_SCH_MEP exist from 2023 on
ROWS = 40


def owner_tables() -> dict[str, list[dict]]:
    """The owner's DOL tables as the inventory of the live database lists them (2026-02-20)."""
    tables = json.loads(INVENTORY_FILE.read_text(encoding="utf-8"))["tables"]
    return {name: entry["columns"] for name, entry in tables.items() if name.startswith("dol.")}


def test_the_schedule_layouts_are_the_ones_the_owner_s_tables_were_built_from():
    """Every schedule the issue names has a layout, with the natural key of its grain; each layout's
    columns are the columns of the owner's table of that name (the one difference: the DCG
    layout's DCG_ADMIN_CARE_OF_NAME, which the owner's schedule_dcg lacks)."""
    assert {
        "F_SCH_C",
        "F_SCH_C_PART1_ITEM1",
        "F_SCH_C_PART1_ITEM2",
        "F_SCH_C_PART1_ITEM3",
        "F_SCH_C_PART2",
        "F_SCH_C_PART3",
        "F_SCH_D",
        "F_SCH_D_PART1",
        "F_SCH_D_PART2",
        "F_SCH_G",
        "F_SCH_G_PART1",
        "F_SCH_G_PART2",
        "F_SCH_G_PART3",
        "F_SCH_H",
        "F_SCH_H_PART1",
        "F_SCH_I",
        "F_SCH_MB",
        "F_SCH_MB_PART1",
        "F_SCH_R",
        "F_SCH_R_PART1",
        "F_SCH_SB",
        "F_SCH_SB_PART1",
        "F_SCH_DCG",
        "F_SCH_MEP",
    } == set(SCHEDULES)
    assert dataset("F_SCH_H").natural_key == ("ack_id",)
    assert dataset("F_SCH_C_PART1_ITEM2").natural_key == ("ack_id", "row_order")
    assert dataset("F_SCH_DCG").natural_key == ("ack_id", "form_id")
    assert dataset("F_SCH_MB_PART1").table == "dol.schedule_mb_part1"
    owner = owner_tables()
    differences = set()
    for name in SCHEDULES:
        table = dataset(name).table
        if table in owner:
            live = {c["name"] for c in owner[table]}
            differences |= {(table, f.column) for f in union_fields(name) if f.column not in live}
    assert differences == {("dol.schedule_dcg", "dcg_admin_care_of_name")}


def _archives(dsn: str, tmp_path) -> dict[str, bytes]:
    """One zip per schedule dataset: ROWS generated rows under the YEAR layout's header."""
    bodies = {}
    with psycopg.connect(dsn, autocommit=True) as gen:
        install_helpers(gen, 22)
        for name in SCHEDULES:
            path = tmp_path / f"{name.lower()}_{YEAR}_latest.csv"
            write_file(gen, name, YEAR, ROWS, path)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
                out.writestr(path.name, path.read_bytes())
            bodies[name] = buffer.getvalue()
    return bodies


def _create_owner_tables(conn) -> list[str]:
    """The owner's schedule tables as listed (the inventory records no defaults: `id` is given
    the bigserial default and created_at now(), as their names say)."""
    created = []
    for table, columns in owner_tables().items():
        if not table.startswith("dol.schedule_") or table == "dol.schedule_a":
            continue
        parts = []
        for c in columns:
            default = {"id": " DEFAULT nextval({seq})", "created_at": " DEFAULT now()"}.get(c["name"], "")
            parts.append(
                sql.SQL("{} {}{}{}").format(
                    sql.Identifier(c["name"]),
                    sql.SQL(c["type"]),
                    sql.SQL(default).format(seq=sql.Literal(f"{table}_id_seq")),
                    sql.SQL("" if c["nullable"] else " NOT NULL"),
                )
            )
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(qualified(f"{table}_id_seq")))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(qualified(table), sql.SQL(", ").join(parts)))
        created.append(table)
    return created


@pytest.mark.parametrize("shape", ["fresh", "owner"])
def test_every_schedule_dataset_imports_through_the_dol_server(live, live_db, tmp_path, shape):
    owner = _create_owner_tables(live) if shape == "owner" else []
    ddl_before = len(ddl_on(live, owner))
    bodies = _archives(live_db, tmp_path)
    with DolServer() as server:
        for name, body in bodies.items():
            server.publish(name, YEAR, body)
        archives = fetch.archives([YEAR], SCHEDULES, server.base_url)
        first = fetch.nightly(live, tmp_path / "efast2", archives, "s1", retry=FAST, sleep=lambda s: None)
        assert first.failures == []
        assert {f.dataset: f.status for f in first.fetched} == dict.fromkeys(SCHEDULES, "changed")
        results = {r.dataset: r for r in first.imports}
        assert set(results) == set(SCHEDULES)
        for name, r in results.items():
            table = dataset(name).table
            reasons = live.execute(
                "SELECT DISTINCT e.reason FROM ple_ops.dol_import_error AS e JOIN ple_ops.dol_import AS i USING (import_id)"
                " WHERE i.file_name = %s",
                (r.name,),
            ).fetchall()
            assert (r.status, r.data_rows, r.inserted, r.error_rows) == ("imported", ROWS, ROWS, 0), (name, reasons)
            assert r.live_rows + r.superseded_rows + r.error_rows == r.data_rows
            assert live.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(table))).fetchone()[0] == ROWS
            id_type = live.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'",
                (table,),
            ).fetchone()
            assert id_type == ("bigint",), table
        assert importer.prove_run(live, "s1") == len(SCHEDULES)
        if shape == "owner":
            # the owner's tables were written into as they are: every 2023 header is one of their
            # columns, and no DDL touched them
            assert len(ddl_on(live, owner)) == ddl_before
            assert all(not r.unknown_columns for r in results.values())
            assert live.execute("SELECT min(id), max(id) FROM dol.schedule_h").fetchone() == (1, ROWS)

        second = fetch.nightly(live, tmp_path / "efast2", archives, "s2", retry=FAST, sleep=lambda s: None)
        assert {f.status for f in second.fetched} == {"unchanged"}
        assert second.imports == [] and second.failures == []
