"""The one object a file carries through the import's stages, and what the stages share.

Why a state object: the stages (inspect, stage, validate, write, prove, report) each need the
file, its ledger row, the live table, the header's mapping and what the earlier stages found
(rows staged, rows quarantined, whether the load is fresh). Passed as loose parameters, they were
8 to 10 positional arguments per call; `FileImport` holds them once, and each stage reads what it
needs and records what it found.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg

from ple import config
from ple.dol import files, new_columns, target
from ple.dol.layouts import Dataset

STAGE = "dol_stage"  # the temporary staging table (pg_temp: private to the transaction, dropped at commit)
BAD = "dol_stage_bad"  # record number and reason of the staged rows the validation refused
LOSERS = "dol_stage_losers"  # filings an amendment replaced: (ack_id, the ACK_ID that replaced it)
CHANGED = "dol_stage_changed"  # the staged rows whose fingerprint differs from the stored one (a refresh)
DIGESTS = "dol_stage_digests"  # every data record's number and digest (the prefilter)
UNCHANGED = "dol_stage_unchanged"  # the records the prefilter did not stage: number, key, where the key is
CONSTANTS = "dol_stage_constants"  # one row: the values every row gets (form_year), typed as the live table


@dataclass
class ImportResult:
    name: str
    sha256: str
    status: str  # imported, already_imported, empty, skipped
    dataset: str | None = None
    form_year: int | None = None
    encoding: str | None = None
    path: str | None = None  # copy (the file as it is) or careful (record by record)
    writer: str | None = None  # insert (fresh load: no staged key existed) or upsert
    data_rows: int = 0
    staged_rows: int = 0
    error_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0
    already_superseded: int = 0
    live_rows: int = 0  # the file's rows in the live table after the import
    superseded_rows: int = 0  # the file's rows in the superseded table after the import
    history_rows: int = 0  # rows this file corrected: their previous content kept in ple_ops.dol_row_history
    unknown_columns: list[str] = field(default_factory=list)  # headers the live table lacks
    dropped_columns: list[str] = field(default_factory=list)  # of those, not loaded (no extras column)
    added_columns: list[str] = field(default_factory=list)  # added on request (add_columns)
    disabled_guards: list[str] = field(default_factory=list)
    bytes: int = 0
    message: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per stage: where an import spends its time

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Guard:
    """The read-only guard's bypass: a setting and the value that lets an import write."""

    setting: str = config.DOL_GUARD_SETTING
    value: str = config.DOL_GUARD_VALUE

    def enter(self, conn) -> None:
        # transaction-local (is_local = true): never leaks into a pooled session
        conn.execute("SELECT set_config(%s, %s, true)", (self.setting, self.value))


@dataclass
class StagedKeys:
    """One aggregate over the staged keys: how many rows, their keys' checksum, whether a key repeats."""

    rows: int
    checksum: int
    repeated: bool


@dataclass
class FileImport:
    """One file's import, from its registration to its ledger row: what it is (set when it is
    registered), what the inspect stage adopted, and what each later stage found."""

    conn: psycopg.Connection
    source: files.Input
    scanned: files.Scan
    result: ImportResult
    started: float  # time.monotonic() when the import began: the result's seconds count from it
    import_id: int = 0
    guard: Guard = field(default_factory=Guard)
    add_columns: list[new_columns.Addition] | None = None
    # the inspect stage: the file's dataset, the live and superseded tables, the header's mapping
    dataset: Dataset | None = None
    live: target.LiveTable | None = None
    superseded: target.LiveTable | None = None
    mapping: target.Mapping | None = None
    # the prefilter (`prefilter`): the data records it digested (None: not digested), and of those
    # the unchanged ones it did not stage
    records: int | None = None
    unchanged: int = 0
    # the stage and validate stages
    staged: int = 0  # rows COPY put in the staging table
    quarantined: int = 0  # records and rows sent to the errors table so far
    keys: StagedKeys | None = None
    fresh: bool = False  # no staged key is in the tables and none repeats: one INSERT writes the file
    good: int = 0  # staged rows that passed the validation
    # the write stage
    superseded_of_file: int = 0  # of the rows the supersede moved, those of this file

    @property
    def form_year(self) -> int | None:
        return self.result.form_year


@contextmanager
def timed(result: ImportResult, stage: str):
    started = time.monotonic()
    yield
    result.timings[stage] = round(time.monotonic() - started, 3)
