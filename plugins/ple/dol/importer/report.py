"""The report: the file's result in one sentence, and its ledger row finished, in the
transaction that wrote its rows (the ledger says imported only when the rows are there)."""

from __future__ import annotations

import time

from ple.dol.importer import ledger
from ple.dol.importer.state import FileImport


def report(f: FileImport) -> None:
    result = f.result
    result.bytes = f.scanned.size
    result.seconds = time.monotonic() - f.started
    result.message = (
        f"{result.data_rows} rows: {result.inserted} new, {result.updated} changed ({result.history_rows} replaced rows "
        f"kept in ple_ops.dol_row_history), {result.unchanged} unchanged, "
        f"{result.error_rows} to the errors table, {result.superseded} superseded by amendments"
        + (f", {result.already_superseded} already superseded" if result.already_superseded else "")
        + (
            f"; columns dropped (the table lacks them): {', '.join(result.dropped_columns)}"
            if result.dropped_columns
            else ""
        )
    )
    ledger.finish(f.conn, f.import_id, result, "imported")
