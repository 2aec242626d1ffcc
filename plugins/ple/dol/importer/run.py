"""One file's import, stage by stage: register, inspect, then in one transaction stage, validate,
write, prove and report; the ledger row marked failed when anything raised.

Imports that write the same tables take turns (a transaction-level advisory lock, `TURNS`); the
read-only guard's bypass is set transaction-locally.
"""

from __future__ import annotations

import logging
import time

import psycopg

from ple.db import transaction, with_lock_retry
from ple.dol import files, new_columns, reader, target
from ple.dol.importer import adopt, ledger, prefilter, prove, report, stage, validate, write
from ple.dol.importer.state import FileImport, Guard, ImportResult, timed
from ple.dol.layouts import Dataset, all_datasets

log = logging.getLogger(__name__)

# Imports that take turns: files of one dataset, and F_5500 with F_SCH_A (each links Schedule A
# rows to their filing, so each must see the other's committed rows). F_5500_SF runs beside them.
TURNS = {
    "F_5500": "ple.dol_import.filings",
    "F_SCH_A": "ple.dol_import.filings",
    "F_5500_SF": "ple.dol_import.F_5500_SF",
}
TURN_WAIT = "30min"


def import_file(
    conn: psycopg.Connection,
    source: files.Input,
    run_id: str = "cli",
    *,
    guard: Guard | None = None,
    add_columns: list[new_columns.Addition] | None = None,
) -> ImportResult:
    """Import one input. `add_columns`: the explicit option that adds the columns a file has and
    the live table lacks instead of dropping them: the run's planned additions
    (`new_columns.planned`), which must carry a recorded approval; it is re-checked in the
    transaction that runs the DDL (one ALTER TABLE per table, under a lock timeout)."""
    started = time.monotonic()
    ledger.ensure_ledger(conn)
    scanned = files.scan(source)
    checksum_seconds = time.monotonic() - started
    result = ImportResult(source.name, scanned.sha256, "imported")
    import_id, previous = ledger.register(conn, source, scanned.sha256, run_id)
    if previous in ("imported", "empty"):
        result.status = "already_imported"
        result.message = f"the same bytes were imported before (import {import_id}): nothing to do"
        return result
    result.timings["checksum"] = round(checksum_seconds, 3)
    f = FileImport(conn, source, scanned, result, started, import_id, guard or Guard(), add_columns)
    try:
        return _import(f)
    except Exception as exc:
        ledger.fail(conn, import_id, exc)
        raise


def _import(f: FileImport) -> ImportResult:
    conn, result = f.conn, f.result
    if not adopt.inspect(f):
        return result

    def work() -> ImportResult:
        with transaction(conn, statement_timeout="2h"):
            f.guard.enter(conn)
            conn.execute("SELECT set_config('datestyle', 'ISO, MDY', true)")
            _lock(conn, f.dataset)
            _run(f)
        return result

    result = with_lock_retry(work)
    result.disabled_guards = target.disabled_triggers(conn, [d.table for d in all_datasets().values()])
    if result.disabled_guards:
        log.error("triggers on the DOL tables are disabled (not by this import): %s", ", ".join(result.disabled_guards))
    return result


def _run(f: FileImport) -> None:
    """Everything that writes, in the caller's one transaction: all of it or none.

    Two ways to write: when no staged key is in the live or the superseded table (a fresh load,
    e.g. a new plan year), one INSERT ... SELECT that validates on the way (rows with a problem
    are not inserted; they go to the errors table after it, only when the INSERT's count says
    some stayed behind), proved by its own counts and key checksum. Otherwise validate first,
    then upsert (update what changed, insert what is new) and prove by probing the tables."""
    result = f.result
    with timed(result, "stage"):
        if not prefilter.stage_changed(f):
            stage.stage(f)
        if f.unchanged + f.staged + f.quarantined == f.scanned.data_lines:
            result.data_rows = f.scanned.data_lines
        elif result.path == "prefilter":
            # a quoted field spans lines: the records the prefilter split, each of them either
            # staged by COPY now or unchanged since COPY staged it (one row each)
            result.data_rows = f.records
        else:
            result.data_rows = reader.count_records(f.source, result.encoding)
    validate.validate(f)
    write.write(f)
    with timed(result, "digests"):
        prefilter.remember(f)
    prove.prove(f)
    report.report(f)


def _lock(conn, dataset: Dataset) -> None:
    """Wait for this import's turn (a transaction-level advisory lock: safe on pooled connections).
    The import holds no table lock yet while it waits, so the wait blocks nobody: it may last as
    long as the other import (TURN_WAIT); then the usual lock timeout applies again."""
    usual = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (TURN_WAIT,))
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (TURNS.get(dataset.name, f"ple.dol_import.{dataset.name}"),),
    )
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (usual,))
