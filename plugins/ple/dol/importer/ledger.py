"""The import's ledger, ple_ops.dol_import: one row per file, by the SHA-256 of its bytes.

A file is registered before anything is read past its checksum (a file already imported is a
no-op), and its row is finished in the transaction that writes its rows, or marked failed after
it rolled back: the ledger is what the run's proof (`prove.prove_run`) reads.
"""

from __future__ import annotations

from psycopg import sql

from ple.db import transaction, with_lock_retry
from ple.dol import files
from ple.dol.importer.state import ImportResult
from ple.ops import ensure_schema


def ensure_ledger(conn) -> None:
    """The ple_ops tables, created once even when two imports start together on a fresh
    database (CREATE ... IF NOT EXISTS races otherwise): under a transaction-level advisory lock."""

    def create() -> None:
        with transaction(conn):
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ple.ops.schema', 0))")
            ensure_schema(conn)

    with_lock_retry(create)


def register(conn, source: files.Input, sha256: str, run_id: str) -> tuple[int, str | None]:
    """(import_id, previous status). A failed earlier attempt left nothing behind (one
    transaction) and is reused; a finished one is reported as such."""
    with transaction(conn):
        row = conn.execute(
            "SELECT import_id, status FROM ple_ops.dol_import WHERE file_sha256 = %s FOR UPDATE", (sha256,)
        ).fetchone()
        if row and row[1] in ("imported", "empty"):
            return row[0], row[1]
        if row is None:
            import_id = conn.execute(
                "INSERT INTO ple_ops.dol_import (file_sha256, file_name, status, run_id) VALUES (%s, %s, 'staging', %s) RETURNING import_id",
                (sha256, source.name, run_id),
            ).fetchone()[0]
            return import_id, None
        conn.execute(
            "UPDATE ple_ops.dol_import SET status = 'staging', run_id = %s, file_name = %s, message = NULL, started_at = now() WHERE import_id = %s",
            (run_id, source.name, row[0]),
        )
        return row[0], row[1]


LEDGER_FIELDS = (
    "dataset", "form_year", "encoding", "path", "bytes", "data_rows", "staged_rows", "error_rows", "inserted",
    "updated", "unchanged", "superseded", "live_rows", "superseded_rows", "history_rows", "unknown_columns",
    "dropped_columns", "added_columns",
)  # fmt: skip


def finish(conn, import_id: int, result: ImportResult, status: str) -> None:
    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(f)) for f in LEDGER_FIELDS)
    conn.execute(
        sql.SQL(
            "UPDATE ple_ops.dol_import SET status = %s, {}, message = %s, finished_at = now() WHERE import_id = %s"
        ).format(sets),
        (status, *(getattr(result, f) for f in LEDGER_FIELDS), result.message or None, import_id),
    )


def fail(conn, import_id: int, exc: Exception) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE ple_ops.dol_import SET status = 'failed', message = %s, finished_at = now() WHERE import_id = %s",
            (f"{type(exc).__name__}: {exc}"[:4000], import_id),
        )
