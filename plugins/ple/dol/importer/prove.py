"""The proofs: each file's rows accounted for before its transaction commits, and each run's
files accounted for afterwards (Great Expectations, once per run, not per file).

A fresh load is proved by its INSERT's own count and key checksum (the write stage); a refresh by
probing the tables. Either way every good row must be in the live or the superseded table, or
the file's transaction rolls back.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ple.db import sqlalchemy_url
from ple.dol import target
from ple.dol.importer.state import STAGE, UNCHANGED, FileImport, timed
from ple.dol.layouts import Dataset
from ple.errors import BadInput, ExpectationFailed
from ple.sqlutil import qualified, raw_template


def prove(f: FileImport) -> None:
    result, dataset, superseded = f.result, f.dataset, f.superseded
    with timed(result, "prove"):
        if f.fresh and not f.unchanged:
            # proved by the INSERT's own count and key checksum (every good row written, nothing
            # else); the supersede moved `superseded_of_file` of them, whole, in one statement
            result.live_rows, result.superseded_rows = f.good - f.superseded_of_file, f.superseded_of_file
        else:
            # the unchanged records the prefilter did not stage are probed too, after the write
            result.live_rows, result.superseded_rows = account(f.conn, dataset, f.live, superseded.name, f.unchanged)
        if result.live_rows + result.superseded_rows != f.good + f.unchanged:
            raise BadInput(
                f"{f.source.name}: {f.good} good rows and {f.unchanged} unchanged, but {result.live_rows} are in "
                f"{dataset.table} and {result.superseded_rows} in {superseded.name}: rolled back"
            )


def account(conn, dataset: Dataset, live: target.LiveTable, superseded: str, unchanged: int = 0) -> tuple[int, int]:
    """(rows of the file in the live table, rows of the file only in the superseded table): one
    probe of the live table per row, the superseded table only for rows not live. The rows are
    the staged ones and, when the prefilter left some unstaged (`unchanged`), those records' keys."""

    def exists(table: str) -> sql.Composable:
        return sql.SQL("EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
            qualified(table),
            sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
        )

    keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
    rows = sql.SQL("SELECT {} FROM {}").format(keys, sql.Identifier(STAGE))
    if unchanged:
        rows = sql.SQL("{} UNION ALL SELECT {} FROM {}").format(rows, keys, sql.Identifier(UNCHANGED))
    return conn.execute(
        sql.SQL(raw_template("dol/import/account")).format(l=exists(live.name), s=exists(superseded), rows=rows)
    ).fetchone()


def prove_run(conn: psycopg.Connection, run_id: str) -> int:
    """Great Expectations, started once per run: every file this run imported has every data row
    accounted for (live + superseded + errors = data rows) and every row it corrected has its replaced
    content in the history (history_rows = its rows in ple_ops.dol_row_history). Returns the number
    of files proved."""
    from ple.expectations import TableSuite, validate

    files_in_run = conn.execute(
        "SELECT count(*) FROM ple_ops.dol_import WHERE run_id = %s AND status = 'imported'", (run_id,)
    ).fetchone()[0]
    if not files_in_run:
        return 0
    suite = TableSuite(
        table="ple_ops.dol_import",
        query=sql.SQL(raw_template("dol/import/run_accounted")).format(sql.Literal(run_id)).as_string(conn),
        row_count=files_in_run,
        not_null=["accounted"],
        true_columns=["accounted"],
    )
    failed = [r for r in validate(sqlalchemy_url(conn), [suite], name="dol_import_run") if not r.success]
    if failed:
        raise ExpectationFailed("DOL import run is not accounted for:\n" + "\n".join(r.describe() for r in failed))
    return files_in_run
