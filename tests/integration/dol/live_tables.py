"""The live-shaped DOL tables in a database of their own, and an event trigger that counts every
DDL command on the DOL schema (an import that adds no column runs none)."""

from __future__ import annotations

import csv
import io

from ple.dol import files

DDL_COUNTER = """
CREATE TABLE public.ddl_seen (command_tag text, object_identity text, seen_at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION public.count_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE c record;
BEGIN
    FOR c IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE schema_name = 'dol' LOOP
        INSERT INTO public.ddl_seen (command_tag, object_identity) VALUES (c.command_tag, c.object_identity);
    END LOOP;
END $fn$;
CREATE EVENT TRIGGER count_ddl ON ddl_command_end EXECUTE FUNCTION public.count_ddl();
"""


def add_ddl_counter(conn) -> None:
    conn.execute(DDL_COUNTER)


LIVE_TABLES = ("dol.form_5500", "dol.form_5500_sf", "dol.schedule_a")


TABLE_OF = {"F_5500": "dol.form_5500", "F_5500_SF": "dol.form_5500_sf", "F_SCH_A": "dol.schedule_a"}


KEY_OF = {"F_5500": ("ACK_ID",), "F_5500_SF": ("ACK_ID",), "F_SCH_A": ("ACK_ID", "FORM_ID")}


def file_keys(source: files.Input, dataset: str) -> list[tuple[int, tuple[str, ...]]]:
    """(record number, natural key) of every data record of the file, read independently."""
    with source.open() as handle:
        rows = list(csv.reader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")))
    header = [h.strip().upper() for h in rows[0]]
    positions = [header.index(k) for k in KEY_OF[dataset]]
    return [(n, tuple(r[p] for p in positions)) for n, r in enumerate(rows[1:], start=1) if r]


def assert_accounted(conn, source: files.Input, result) -> None:
    """Every data row of the file is in exactly one of: the live table, the superseded table, the
    errors table (by its record number)."""
    table = TABLE_OF[result.dataset]
    keys = file_keys(source, result.dataset)
    errors = {
        n
        for (n,) in conn.execute(
            "SELECT e.record_no FROM ple_ops.dol_import_error e JOIN ple_ops.dol_import i USING (import_id) "
            "WHERE i.file_sha256 = %s",
            (result.sha256,),
        ).fetchall()
    }
    key_sql = (
        "(ack_id)::text = %s" if len(KEY_OF[result.dataset]) == 1 else "(ack_id)::text = %s AND (form_id)::text = %s"
    )
    for number, key in keys:
        live = conn.execute(f"SELECT count(*) FROM {table} WHERE {key_sql}", key).fetchone()[0]
        superseded = conn.execute(f"SELECT count(*) FROM {table}_superseded WHERE {key_sql}", key).fetchone()[0]
        places = live + superseded + (number in errors)
        assert places == 1, (
            f"{source.name} record {number} {key}: live {live}, superseded {superseded}, error {number in errors}"
        )
    assert result.data_rows == len(keys)
    assert result.live_rows + result.superseded_rows + result.error_rows == len(keys)


def requoted(source: files.Input, path) -> files.Input:
    """The same records in other bytes (every field quoted): a new input with the same data."""
    with source.open() as handle:
        rows = list(csv.reader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")))
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return files.Input(path)


def table_state(conn) -> dict:
    return {
        t: conn.execute(f"SELECT count(*), sum(hashtext(x::text)), max(xmin::text::bigint) FROM {t} x").fetchone()
        for t in (*LIVE_TABLES, *(f"{t}_superseded" for t in LIVE_TABLES))
        if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]
    }


def ddl_on(conn, objects=None) -> list[tuple]:
    rows = conn.execute("SELECT command_tag, object_identity FROM public.ddl_seen ORDER BY seen_at").fetchall()
    return [r for r in rows if objects is None or r[1] in objects]


def guard_triggers(conn) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = ANY (ARRAY['dol.form_5500', "
            "'dol.form_5500_sf', 'dol.schedule_a']::regclass[]) AND NOT tgisinternal"
        ).fetchall()
    )
