"""Import one DOL file into the DOL table that exists, under its guards, at the speed of COPY.

A package of the import's stages around one per-file state object (`state.FileImport`), so that
each stage reads what it needs from the file's state instead of 8 to 10 loose parameters:

1. `ledger`: register the file by the SHA-256 of its bytes; a file already imported is skipped.
2. `adopt` (inspect): the file's encoding, header and dataset; the live table adopted as it is,
   the header mapped onto it by name; no DDL on an existing table unless the caller asks for the
   file's new columns; a missing table (fresh database) is created; row-level security checked.
3. One transaction (`run`), with the read-only guard's bypass set transaction-locally:
   - `prefilter`: every record's digest; when it can be sure, only the records whose bytes changed
     since the import last wrote their key are staged (a refresh reads what changed);
   - `stage`: otherwise COPY the file into a typed temporary staging table (the careful path,
     record by record, when COPY refuses the file as it is);
   - `validate`: the staged keys' count, checksum and repeats, whether any is already stored (a
     fresh load or a refresh); for a refresh, the bad rows to ple_ops.dol_import_error;
   - `write`: a fresh load in one INSERT ... SELECT that validates on the way and proves itself
     by its written keys; otherwise an upsert of the rows whose `fingerprints` changed, the
     replaced rows kept in the history; then `supersede` (amended filings to <table>_superseded,
     Schedule A linked to its filing);
   - `prefilter.remember`: the staged good rows' record digests by key;
   - `prove`: every data row is in the live table, the superseded table or the errors table;
   - `report`: the result's message and the ledger row, in the same transaction.
4. Great Expectations proves the run's accounting once per run (`prove_run`), not per file.

The statements longer than a line live in include/sql/dol/import/. Other modules import the
public API from here (`from ple.dol import importer`).
"""

from ple.dol.importer import (
    adopt,
    fingerprints,
    ledger,
    prefilter,
    prove,
    report,
    run,
    stage,
    supersede,
    validate,
    write,
)
from ple.dol.importer.adopt import managed_columns
from ple.dol.importer.fingerprints import fingerprint_table
from ple.dol.importer.ledger import ensure_ledger
from ple.dol.importer.prove import prove_run
from ple.dol.importer.run import TURNS, import_file
from ple.dol.importer.state import FileImport, Guard, ImportResult, StagedKeys
from ple.dol.importer.write import Load

__all__ = [
    "TURNS",
    "FileImport",
    "Guard",
    "ImportResult",
    "Load",
    "StagedKeys",
    "adopt",
    "ensure_ledger",
    "fingerprint_table",
    "fingerprints",
    "import_file",
    "ledger",
    "managed_columns",
    "prefilter",
    "prove",
    "prove_run",
    "report",
    "run",
    "stage",
    "supersede",
    "validate",
    "write",
]
