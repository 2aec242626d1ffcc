"""Undo: a cleanup run's rows put back from their archive copies, last step first."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ple.catalog import read_catalog
from ple.cleanup.steps import LOCK_KEY, STEPS
from ple.db import transaction
from ple.sqlutil import qualified, raw_template


@dataclass
class UndoReport:
    """Per table and action: rows restored, and rows left alone with the reason."""

    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, outcome: str, rows: int) -> None:
        if rows:
            self.tables.setdefault(key, {})
            self.tables[key][outcome] = self.tables[key].get(outcome, 0) + rows

    @property
    def restored(self) -> int:
        return sum(c.get("restored", 0) for c in self.tables.values())

    @property
    def complete(self) -> bool:
        return not any(o != "restored" for c in self.tables.values() for o in c)


UNDO_OUTCOMES = {
    "conflict": "its key is taken again by a row added since the cleanup",
    "edited_since": "the row was edited (or removed) since the cleanup; the live version is kept",
}


def undo(conn: psycopg.Connection, run_id: str) -> UndoReport:
    """Put back every row a cleanup run changed or removed, last step first; report (and leave
    alone) rows that conflict with rows added since, or that were edited since the cleanup."""
    report = UndoReport()
    steps = [s for s in reversed(STEPS) if s != "export_duplicate_domains"]
    with transaction(conn, statement_timeout="1h"):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
        catalog = read_catalog(conn)
        archives = sorted(
            (t for t in catalog.tables.values() if t.name.startswith("archive.") and t.name.endswith("_2c")),
            key=lambda a: a.name != "archive.people_people_master_2c",  # people first: references point at them
        )
        for step in steps:
            for action in ("delete", "update"):  # removed rows first: references may point at them
                for archive in archives:
                    live = catalog.get(_live_table(archive.name, catalog))
                    if live is None or archive.column("ctb_2c_id") is None:
                        continue
                    key = f"{step}:{live.name}:{action}"
                    params = {"run": run_id, "step": step, "action": action}
                    restore = _restore_removed if action == "delete" else _restore_changed
                    for outcome, rows in restore(conn, archive, live, params).items():
                        report.add(key, outcome, rows)
                    triggers = [
                        r[0]
                        for r in conn.execute(
                            raw_template("audit/row_triggers"), {"table": live.name, "event": "UPDATE"}
                        )
                        if "BEFORE" in r[0]
                    ]
                    if action == "update" and triggers and report.tables.get(key, {}).get("restored"):
                        report.notes.append(
                            f"{key}: the restore fired {', '.join(triggers)} (e.g. re-stamping updated_at); "
                            f"the values from before the cleanup stay in {archive.name}"
                        )
        for key, counts in report.tables.items():
            for outcome, rows in counts.items():
                if outcome != "restored":
                    report.unresolved.append(f"{key}: {rows:,} rows not restored: {UNDO_OUTCOMES[outcome]}")
        conn.execute(
            "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, started_at, duration_ms, outcome, details) "
            "VALUES (%s, 'all', 'undo', %s, now(), 0, %s, %s)",
            (run_id, report.restored, "undone" if report.complete else "failed", Jsonb(report.tables)),
        )
    return report


def _live_table(archive: str, catalog) -> str:
    stem = archive.removeprefix("archive.").removesuffix("_2c")
    for name in catalog.tables:
        if name.replace(".", "_") == stem and not name.startswith("archive."):
            return name
    return ""


PENDING = sql.SQL(
    "a.ctb_2c_run_id = %(run)s AND a.ctb_2c_step = %(step)s AND a.ctb_2c_action = %(action)s "
    "AND a.ctb_2c_undo IS DISTINCT FROM 'restored'"
)


def _columns(archive, live) -> list[str]:
    return [c.name for c in live.columns if not c.generated and archive.column(c.name) is not None]


def _mark_rest(conn, archive, params, outcome: str) -> int:
    return conn.execute(
        sql.SQL("UPDATE {} AS a SET ctb_2c_undo = %(outcome)s WHERE {} AND a.ctb_2c_undo IS NULL").format(
            qualified(archive.name), PENDING
        ),
        {**params, "outcome": outcome},
    ).rowcount


def _restore_removed(conn, archive, live, params) -> dict[str, int]:
    columns = _columns(archive, live)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = sql.SQL(", ").join(sql.SQL("a.{}").format(sql.Identifier(c)) for c in columns)
    table, pending = qualified(archive.name), PENDING
    if not live.primary_key:  # nothing to conflict on: every removed row goes back, once
        restored = conn.execute(
            sql.SQL(
                "WITH marked AS (UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() "
                "WHERE {pending} RETURNING {values}) INSERT INTO {live} ({names}) SELECT {names} FROM marked"
            ).format(table=table, pending=pending, values=values, live=qualified(live.name), names=names),
            params,
        ).rowcount
        return {"restored": restored}
    key = sql.SQL(" AND ").join(sql.SQL("l.{c} = a.{c}").format(c=sql.Identifier(c)) for c in live.primary_key)
    conn.execute(
        sql.SQL(
            "UPDATE {table} AS a SET ctb_2c_undo = CASE WHEN EXISTS (SELECT 1 FROM {live} l WHERE {key}) "
            "THEN 'conflict' END WHERE {pending}"
        ).format(table=table, live=qualified(live.name), key=key, pending=pending),
        params,
    )
    restored = conn.execute(
        sql.SQL(
            "WITH inserted AS (INSERT INTO {live} ({names}) SELECT {values} FROM {table} AS a "
            "WHERE {pending} AND a.ctb_2c_undo IS NULL ON CONFLICT DO NOTHING RETURNING {pk}) "
            "UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() FROM inserted l "
            "WHERE {pending} AND a.ctb_2c_undo IS NULL AND {key}"
        ).format(
            live=qualified(live.name),
            names=names,
            values=values,
            table=table,
            pending=pending,
            pk=sql.SQL(", ").join(map(sql.Identifier, live.primary_key)),
            key=key,
        ),
        params,
    ).rowcount
    _mark_rest(conn, archive, params, "conflict")  # another unique key of the row was taken
    conflicts = conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS a WHERE {} AND a.ctb_2c_undo = 'conflict'").format(table, pending),
        params,
    ).fetchone()[0]
    return {"restored": restored, "conflict": conflicts}


def _restore_changed(conn, archive, live, params) -> dict[str, int]:
    columns = _columns(archive, live)
    assignments = sql.SQL(", ").join(sql.SQL("{c} = a.{c}").format(c=sql.Identifier(c)) for c in columns)
    table, pending = qualified(archive.name), PENDING
    conn.execute(sql.SQL("UPDATE {} AS a SET ctb_2c_undo = NULL WHERE {}").format(table, pending), params)
    # the live row is the one whose content is what the cleanup left (the cleanup may have changed
    # its key, and a table may have none); equal rows are paired in order
    restored = conn.execute(
        sql.SQL(
            "WITH a AS (SELECT a.*, row_number() OVER (PARTITION BY a.ctb_2c_after ORDER BY a.ctb_2c_id) AS n "
            "FROM {table} AS a WHERE {pending}), "
            "l AS (SELECT l.ctid AS row_ctid, md5(l::text) AS after, row_number() OVER (PARTITION BY md5(l::text)) AS n "
            "FROM {live} AS l WHERE md5(l::text) IN (SELECT ctb_2c_after FROM a)), "
            "restored AS (UPDATE {live} AS t SET {assignments} FROM a JOIN l ON l.after = a.ctb_2c_after AND l.n = a.n "
            "WHERE t.ctid = l.row_ctid RETURNING a.ctb_2c_id) "
            "UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() "
            "WHERE a.ctb_2c_id IN (SELECT ctb_2c_id FROM restored)"
        ).format(table=table, pending=pending, live=qualified(live.name), assignments=assignments),
        params,
    ).rowcount
    return {"restored": restored, "edited_since": _mark_rest(conn, archive, params, "edited_since")}
