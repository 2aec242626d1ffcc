"""Import one DOL file into the DOL table that exists, under its guards, at the speed of COPY.

1. Register the file by the SHA-256 of its bytes; a file already imported is skipped (no-op).
2. Adopt the live table: its columns, types, NOT NULLs and defaults come from the catalog, and
   the file's header is mapped onto them by name (aliases filled, headers the table lacks kept in
   `extras` when it has that column, else reported and dropped). No DDL on an existing table
   unless the caller asks for the file's new columns. A missing table (fresh database) is created.
3. Check before writing that the role may write under row-level security.
4. One transaction, with the read-only guard's bypass set transaction-locally:
   - COPY the file straight into a typed temporary staging table shaped by the live table's
     types (each value parsed once, by COPY). When COPY refuses the file, the careful path reads
     it record by record and loads batches with COPY; a refused batch is split until the refused
     records are isolated: they go to the errors table with COPY's reason and their raw text.
   - One aggregate over the staged keys (count, checksum, repeats), then whether any of them is
     in the live or the superseded table (two semi-joins that stop at the first match).
   - Fresh load (none is, none repeats): one INSERT ... SELECT that validates on the way (ACK_ID,
     EINs, plan year, NOT NULL columns) and returns the written keys; rows it left behind go to
     ple_ops.dol_import_error with the reason and the line; the written keys' count and checksum
     must equal the staged good ones (the proof, from the statement itself).
   - Otherwise: validate set-based in one statement (the same checks, natural key unique in the
     file), bad rows to the errors table, upsert by the natural key (a row whose values did not
     change is not rewritten), and prove by probing the tables.
   - Both: move filings an amendment replaced to <table>_superseded, link Schedule A to its
     filing; every data row is in the live table, the superseded table or the errors table.
5. Great Expectations proves the run's accounting once per run (`prove_run`), not per file.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from ple import config, governance
from ple.db import sqlalchemy_url, transaction, with_lock_retry
from ple.dol import files, new_columns, reader, target
from ple.dol.layouts import DATASETS, Dataset, all_datasets
from ple.dol.tables import create_canonical_table, create_superseded_table, superseded_table
from ple.errors import BadInput, ExpectationFailed, NotApproved
from ple.ops import ensure_schema
from ple.sqlutil import qualified

log = logging.getLogger(__name__)

PG_ENCODING = {"utf-8": "UTF8", "cp1252": "WIN1252", "latin-1": "LATIN1"}
CAREFUL_BATCH = 5000
COPY_REFUSALS = (
    psycopg.errors.DataError,
    psycopg.errors.BadCopyFileFormat,
    psycopg.errors.CharacterNotInRepertoire,
    psycopg.errors.UntranslatableCharacter,
)
STAGE = "dol_stage"  # the temporary staging table (pg_temp: private to the transaction, dropped at commit)
BAD = "dol_stage_bad"  # record number and reason of the staged rows the validation refused
LOSERS = "dol_stage_losers"  # filings an amendment replaced: (ack_id, the ACK_ID that replaced it)
CHANGED = "dol_stage_changed"  # the staged rows whose fingerprint differs from the stored one (a refresh)
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


# ------------------------------------------------------------------------------------- ledger
def ensure_ledger(conn) -> None:
    """The ple_ops tables, created once even when two imports start together on a fresh
    database (CREATE ... IF NOT EXISTS races otherwise): under a transaction-level advisory lock."""

    def create() -> None:
        with transaction(conn):
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ple.ops.schema', 0))")
            ensure_schema(conn)

    with_lock_retry(create)


def _register(conn, source: files.Input, sha256: str, run_id: str) -> tuple[int, str | None]:
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


def _finish(conn, import_id: int, result: ImportResult, status: str) -> None:
    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(f)) for f in LEDGER_FIELDS)
    conn.execute(
        sql.SQL(
            "UPDATE ple_ops.dol_import SET status = %s, {}, message = %s, finished_at = now() WHERE import_id = %s"
        ).format(sets),
        (status, *(getattr(result, f) for f in LEDGER_FIELDS), result.message or None, import_id),
    )


# ------------------------------------------------------------------------------------- staging
def _create_stage(conn, live: target.LiveTable, mapping: target.Mapping) -> None:
    """The typed staging table: one column per header position, typed as the live table declares
    it (taken from the table itself, WITH NO DATA: no type name is spliced into SQL), text for
    headers the table lacks, and the record number. No constraints: COPY only parses."""
    columns = [
        sql.SQL("t.{}").format(sql.Identifier(c))
        if c in mapping.loaded
        else sql.SQL("NULL::text AS {}").format(sql.Identifier(c))
        for c in mapping.staging
    ]
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} AS t WITH NO DATA").format(
            sql.Identifier(STAGE), sql.SQL(", ").join(columns), qualified(live.name)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN record_no bigint GENERATED BY DEFAULT AS IDENTITY").format(
            sql.Identifier(STAGE)
        )
    )


def _constants(conn, live: target.LiveTable, form_year: int) -> None:
    """The form year typed as the live table declares `form_year` (varchar(10) live, integer on a
    fresh database): the value is assigned to the column, PostgreSQL converts it."""
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {c} ON COMMIT DROP AS SELECT t.{y} FROM {t} AS t WITH NO DATA").format(
            c=sql.Identifier(CONSTANTS), y=sql.Identifier(target.FORM_YEAR), t=qualified(live.name)
        )
    )
    conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(CONSTANTS)), (str(form_year),))


def _copy_fast(conn, source: files.Input, mapping: target.Mapping, encoding: str) -> int:
    """Raw bytes into COPY: the server parses the CSV and every value's type. Raises on anything
    COPY refuses."""
    columns = sql.SQL(", ").join(map(sql.Identifier, mapping.staging))
    statement = sql.SQL(
        "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, NULL '', FORCE_NULL ({}), ENCODING {}, FREEZE true)"
    ).format(sql.Identifier(STAGE), columns, columns, sql.Literal(PG_ENCODING[encoding]))
    with conn.cursor() as cur, source.open() as handle:
        with cur.copy(statement) as copy:
            first = True
            while chunk := handle.read(files.CHUNK):
                if first and chunk.startswith(files.UTF8_BOM):
                    chunk = chunk[len(files.UTF8_BOM) :]
                first = False
                copy.write(chunk)
        return cur.rowcount


COPY_COLUMN = re.compile(r"column (\w+)")


def _refusal(exc: Exception, mapping: target.Mapping) -> str:
    """COPY's reason for refusing one record, named by the file's header."""
    primary = getattr(exc.diag, "message_primary", None) or str(exc).splitlines()[0]
    match = COPY_COLUMN.search(getattr(exc.diag, "context", None) or "")
    if match and match.group(1) in mapping.staging:
        return f"{mapping.header[mapping.staging.index(match.group(1))]}: {primary}"
    return primary


def _copy_careful(conn, import_id: int, source: files.Input, mapping: target.Mapping, encoding: str) -> tuple[int, int]:
    """Record by record with Python's CSV reader, loaded in batches with COPY: a batch COPY
    refuses is split in halves until the refused records are alone; those, and records that are
    not CSV or have the wrong width, go to the errors table with their raw text.
    Returns (staged, quarantined)."""
    statement = sql.SQL("COPY {} ({}, record_no) FROM STDIN").format(
        sql.Identifier(STAGE), sql.SQL(", ").join(map(sql.Identifier, mapping.staging))
    )
    bad: list[tuple] = []
    staged = 0

    def load(batch: list[reader.Record]) -> None:
        nonlocal staged
        if not batch:
            return
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                for record in batch:
                    copy.write_row([*(v if v != "" else None for v in record.fields), record.number])
            staged += len(batch)
        except COPY_REFUSALS as exc:
            if len(batch) == 1:
                bad.append((import_id, batch[0].number, _refusal(exc, mapping), batch[0].raw))
                return
            middle = len(batch) // 2
            load(batch[:middle])
            load(batch[middle:])

    batch: list[reader.Record] = []
    for record in reader.records(source, encoding, len(mapping.header)):
        if record.fields is None:
            bad.append((import_id, record.number, record.problem, record.raw))
            continue
        batch.append(record)
        if len(batch) >= CAREFUL_BATCH:
            load(batch)
            batch = []
    load(batch)
    if bad:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ple_ops.dol_import_error (import_id, record_no, reason, raw_line) VALUES (%s, %s, %s, %s)",
                bad,
            )
    return staged, len(bad)


# ------------------------------------------------------------------------------------- validation
def _by_name(mapping: target.Mapping) -> dict[str, str]:
    """Staging column of each canonical (lower-case header) name."""
    return {name.lower(): column for name, column in zip(mapping.header, mapping.staging, strict=True)}


def _text(column: str) -> sql.Composable:
    return sql.SQL("btrim(s.{}::text)").format(sql.Identifier(column))


def _as_date(column: str) -> sql.Composable:
    """The value as a date when it is a real calendar date in ISO form, else NULL: no exception,
    no pg_input_is_valid (PostgreSQL 16+ only), so the same SQL runs on 15 to 18."""
    x = _text(column)
    return sql.SQL(
        "CASE WHEN {x} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' "
        "AND (substr({x}, 9, 2) <= '28' OR date_part('month', (left({x}, 8) || '01')::date + (substr({x}, 9, 2)::int - 1)) "
        "= substr({x}, 6, 2)::int) THEN {x}::date END"
    ).format(x=x)


def _date_of(live: target.LiveTable, mapping: target.Mapping, column: str) -> sql.Composable:
    """A date column as a date: as it is when the live table types it `date`, else checked."""
    if column in mapping.loaded and live.columns[column].type == "date":
        return sql.SQL("s.{}").format(sql.Identifier(column))
    return _as_date(column)


def _required(live: target.LiveTable, mapping: target.Mapping) -> list[tuple[str, str]]:
    """(NOT NULL live column without a default, the staging column that fills it)."""
    return [(c, c) for c in mapping.loaded if live.columns[c].not_null and not live.columns[c].has_default] + [
        (alias, source)
        for alias, source in mapping.aliases
        if live.columns[alias].not_null and not live.columns[alias].has_default
    ]


def _checked_columns(dataset: Dataset, live: target.LiveTable, mapping: target.Mapping) -> list[str]:
    """The staging columns the validation reads: only these pass through its row-by-row pass."""
    by_name = _by_name(mapping)
    columns = [*dataset.natural_key, *(by_name[e] for e in dataset.ein_columns if e in by_name)]
    columns += [source for _, source in _required(live, mapping)]
    return list(dict.fromkeys(["record_no", *columns]))


def _problems(dataset: Dataset, live: target.LiveTable, mapping: target.Mapping, form_year: int | None):
    """One SQL expression naming everything wrong with a staged row (NULL when nothing is).
    Types were checked by COPY (as the live table declares them)."""
    by_name = _by_name(mapping)
    checks = [
        sql.SQL(
            "CASE WHEN nullif({a}, '') IS NULL THEN 'ACK_ID missing' WHEN length({a}) <> 30 THEN 'ACK_ID is not 30 characters' END"
        ).format(a=_text("ack_id"))
    ]
    for key in dataset.natural_key:
        if key != "ack_id":
            checks.append(
                sql.SQL("CASE WHEN s.{} IS NULL THEN {} END").format(
                    sql.Identifier(key), sql.Literal(f"{key.upper()} missing")
                )
            )
    for ein in dataset.ein_columns:
        if ein in by_name:
            checks.append(
                sql.SQL("CASE WHEN s.{c} IS NOT NULL AND {t} !~ '^[0-9]{{9}}$' THEN {msg} END").format(
                    c=sql.Identifier(by_name[ein]),
                    t=_text(by_name[ein]),
                    msg=sql.Literal(f"{ein.upper()} is not 9 digits"),
                )
            )
    required = _required(live, mapping)
    for column, source in required:
        checks.append(
            sql.SQL("CASE WHEN s.{} IS NULL THEN {} END").format(
                sql.Identifier(source),
                sql.Literal(f"{source.upper()} missing ({live.name}.{column} is NOT NULL)"),
            )
        )
    begin, end = by_name.get(dataset.begin_date or ""), by_name.get(dataset.end_date or "")
    if begin and end:
        # Late filings for earlier plan years are real (a 2019 dataset holds plan years of 2004 and
        # 2018), so the plan year is checked for its own shape.
        checks.append(
            sql.SQL(
                "CASE WHEN NOT (s.ple_plan_year_end >= s.ple_plan_year_begin AND s.ple_plan_year_end - s.ple_plan_year_begin < 372) "
                "THEN {msg} END"
            ).format(
                msg=sql.Literal(
                    f"plan year {dataset.begin_date.upper()}..{dataset.end_date.upper()} is not a plan year"
                ),
            )
        )
    if begin and form_year:
        checks.append(
            sql.SQL("CASE WHEN s.ple_plan_year_begin >= make_date({y} + 1, 1, 1) THEN {msg} END").format(
                y=sql.Literal(form_year + 1),  # short plan years of the next year are real
                msg=sql.Literal(f"{dataset.begin_date.upper()} begins after form year {form_year} + 1"),
            )
        )
    checks.append(
        sql.SQL("CASE WHEN s.ple_duplicate THEN {} END").format(
            sql.Literal("natural key " + "+".join(dataset.natural_key).upper() + " repeated in the file")
        )
    )
    return sql.SQL("nullif(concat_ws('; ', {}), '')").format(sql.SQL(", ").join(checks))


def _csv_line(mapping: target.Mapping) -> sql.Composable:
    """The staged row as a CSV line in the file's column order (the record, as parsed)."""
    return sql.SQL(" || ',' || ").join(
        sql.SQL(
            "CASE WHEN s.{c}::text ~ '[\",\\r\\n]' THEN '\"' || replace(s.{c}::text, '\"', '\"\"') || '\"' ELSE coalesce(s.{c}::text, '') END"
        ).format(c=sql.Identifier(c))
        for c in mapping.staging
    )


def _checked(dataset, live, mapping, columns: sql.Composable, duplicate: sql.Composable) -> sql.Composable:
    """The staged rows `s` with what the validation needs beside `columns`: whether the row
    repeats a key of the file and its plan-year dates (OFFSET 0: each date is computed once per
    row). `_problems` reads them as s.ple_duplicate, s.ple_plan_year_begin, s.ple_plan_year_end."""
    by_name = _by_name(mapping)
    return sql.SQL(
        "(SELECT {columns}, {duplicate} AS ple_duplicate, {begin} AS ple_plan_year_begin, {end} AS ple_plan_year_end "
        "FROM {stage} AS s OFFSET 0) AS s"
    ).format(
        columns=columns,
        duplicate=duplicate,
        begin=_date_of(live, mapping, by_name[dataset.begin_date])
        if dataset.begin_date in by_name
        else sql.SQL("NULL::date"),
        end=_date_of(live, mapping, by_name[dataset.end_date])
        if dataset.end_date in by_name
        else sql.SQL("NULL::date"),
        stage=sql.Identifier(STAGE),
    )


def _key_hash(dataset: Dataset, alias: str) -> sql.Composable:
    """A 64-bit hash of a row's natural key: summed over rows, the checksum of a set of keys."""
    return sql.SQL("hashtextextended(ROW({})::text, 0)").format(
        sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in dataset.natural_key
        )
    )


@dataclass
class StagedKeys:
    """One aggregate over the staged keys: how many rows, their keys' checksum, whether a key repeats."""

    rows: int
    checksum: int
    repeated: bool


def _staged_keys(conn, dataset: Dataset) -> StagedKeys:
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    rows, checksum, repeated = conn.execute(
        sql.SQL(
            "SELECT coalesce(sum(g.n), 0), coalesce(sum(g.h), 0), coalesce(bool_or(g.n > 1), false) "
            "FROM (SELECT count(*) AS n, sum({hash}) AS h FROM {stage} AS s GROUP BY {keys}) AS g"
        ).format(hash=_key_hash(dataset, "s"), stage=sql.Identifier(STAGE), keys=keys)
    ).fetchone()
    return StagedKeys(rows, int(checksum), repeated)


def _quarantine(conn, import_id, dataset, live, mapping, form_year, repeated: bool) -> int:
    """One pass: every staged row's problems; the bad rows move to the errors table.
    `repeated`: some natural key repeats in the file (the window that marks them costs a sort;
    most files need none)."""
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    duplicate = (
        sql.SQL("s.record_no <> min(s.record_no) OVER (PARTITION BY {})").format(keys) if repeated else sql.SQL("false")
    )
    columns = sql.SQL(", ").join(
        sql.SQL("s.{}").format(sql.Identifier(c)) for c in _checked_columns(dataset, live, mapping)
    )
    checked = sql.SQL(
        """
        CREATE TEMPORARY TABLE {bad} ON COMMIT DROP AS
        SELECT c.record_no, c.reason FROM (SELECT s.record_no, {problems} AS reason FROM {rows}) AS c
        WHERE c.reason IS NOT NULL
        """
    ).format(
        bad=sql.Identifier(BAD),
        problems=_problems(dataset, live, mapping, form_year),
        rows=_checked(dataset, live, mapping, columns, duplicate),
    )
    if not conn.execute(checked).rowcount:
        return 0  # the common case: one pass over the rows, nothing to move
    statement = sql.SQL(
        """
        WITH bad AS (
            DELETE FROM {stage} AS t USING {bad} AS b WHERE t.record_no = b.record_no RETURNING t.*, b.reason
        )
        INSERT INTO ple_ops.dol_import_error (import_id, record_no, reason, raw_line)
        SELECT %(import_id)s, s.record_no, s.reason, {line} FROM bad AS s
        """
    ).format(stage=sql.Identifier(STAGE), bad=sql.Identifier(BAD), line=_csv_line(mapping))
    return conn.execute(statement, {"import_id": import_id}).rowcount


# ------------------------------------------------------------------------------------- upsert
def _alias_value(alias: str, source: str) -> sql.Composable:
    if alias == "covered_lives":  # a count in a TEXT(7) field: only what is a whole number
        return sql.SQL("CASE WHEN {t} ~ '^[0-9]{{1,9}}$' THEN {t}::integer END").format(t=_text(source))
    return sql.SQL("s.{}").format(sql.Identifier(source))


def _extras_value(mapping: target.Mapping) -> sql.Composable:
    """The headers the table lacks, as one JSONB object (NULL when all are empty)."""
    pairs = [sql.SQL("{}, s.{}").format(sql.Literal(name), sql.Identifier(column)) for name, column in mapping.extras]
    # jsonb_build_object takes at most 100 arguments: 50 pairs per call
    parts = [
        sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs[i : i + 50]))
        for i in range(0, len(pairs), 50)
    ]
    return sql.SQL("nullif(jsonb_strip_nulls({}), '{{}}'::jsonb)").format(sql.SQL(" || ").join(parts))


@dataclass
class Load:
    """What the upsert writes: live column -> value over the staging row `s`."""

    columns: list[str]
    values: list[sql.Composable]
    compared: list[str]  # the columns whose change makes an update (not the key, not bookkeeping)


def _load(dataset: Dataset, live: target.LiveTable, mapping: target.Mapping, form_year, import_id, filings) -> Load:
    """`filings`: for Schedule A, the filings table when both have `filing_id`: a new schedule row
    is written linked to its filing at once (not rewritten by the link afterwards)."""
    columns = list(mapping.loaded)
    values = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns]
    if filings is not None and "filing_id" not in columns:
        columns.append("filing_id")
        values.append(
            sql.SQL("(SELECT f.filing_id FROM {} AS f WHERE f.ack_id = s.ack_id)").format(qualified(filings.name))
        )
    for alias, source in mapping.aliases:
        columns.append(alias)
        values.append(_alias_value(alias, source))
    if mapping.extras:
        columns.append(target.EXTRAS)
        values.append(_extras_value(mapping))
    if form_year and live.writable(target.FORM_YEAR) and target.FORM_YEAR not in columns:
        columns.append(target.FORM_YEAR)
        values.append(
            sql.SQL("(SELECT c.{} FROM {} AS c)").format(sql.Identifier(target.FORM_YEAR), sql.Identifier(CONSTANTS))
        )
    compared = [c for c in columns if c not in dataset.natural_key]
    if live.writable(target.SOURCE_IMPORT) and target.SOURCE_IMPORT not in columns:
        columns.append(target.SOURCE_IMPORT)
        values.append(sql.Literal(import_id))
    return Load(columns, values, compared)


def managed_columns(live: target.LiveTable, form_year) -> set[str]:
    return {c for c in (target.SOURCE_IMPORT,) + ((target.FORM_YEAR,) if form_year else ()) if live.writable(c)}


def _upsert(
    conn,
    dataset: Dataset,
    live: target.LiveTable,
    superseded: str,
    load: Load,
    import_id: int,
    file_name: str,
    rows: str = STAGE,
) -> tuple[int, int, int]:
    """(inserted, updated, already superseded). Matched by the natural key; a row whose values
    did not change is not rewritten; a filing already superseded by an amendment stays there; the
    row a correction replaces is kept in ple_ops.dol_row_history (so updated = rows kept there).
    `rows`: the staged rows to write (CHANGED: those whose fingerprint differs from the stored one);
    already superseded counts every staged row."""
    key_match = sql.SQL(" AND ").join(sql.SQL("t.{k} = v.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key)
    values = sql.SQL("SELECT {} FROM {} AS s WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
        sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(v, sql.Identifier(c)) for c, v in zip(load.columns, load.values, strict=True)
        ),
        sql.Identifier(rows),
        qualified(superseded),
        sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
    )
    already = conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS v WHERE EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
            sql.Identifier(STAGE), qualified(superseded), key_match
        )
    ).fetchone()[0]
    sets = [sql.SQL("{c} = v.{c}").format(c=sql.Identifier(c)) for c in load.columns if c not in dataset.natural_key]
    if live.writable(target.UPDATED_AT) and target.UPDATED_AT not in load.columns:
        sets.append(sql.SQL("{} = now()").format(sql.Identifier(target.UPDATED_AT)))
    # A correction keeps what it replaces: one statement updates the rows whose values changed
    # and moves the rows it replaced, whole, to the history with this file's import. Every part of
    # a statement reads the same snapshot, so `kept` reads the live rows as they were before the
    # update (the version it replaced); the two counts must agree.
    kept, updated = conn.execute(
        sql.SQL(
            """
            WITH updated AS (
                UPDATE {live} AS t SET {sets} FROM ({values}) AS v
                WHERE {match} AND ({old}) IS DISTINCT FROM ({new})
                RETURNING {tkeys}
            ), kept AS (
                INSERT INTO ple_ops.dol_row_history
                    (table_name, natural_key, replaced_row, replaced_by_import_id, replaced_by_file)
                SELECT %(table)s, jsonb_build_object({key}), to_jsonb(t.*), %(import_id)s, %(file)s
                FROM {live} AS t JOIN updated AS v ON {match}
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM updated)
            """
        ).format(
            live=qualified(live.name),
            sets=sql.SQL(", ").join(sets),
            values=values,
            match=key_match,
            tkeys=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in dataset.natural_key),
            key=sql.SQL(", ").join(
                sql.SQL("{}, t.{}").format(sql.Literal(k), sql.Identifier(k)) for k in dataset.natural_key
            ),
            old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in load.compared),
            new=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in load.compared),
        ),
        {"table": live.name, "import_id": import_id, "file": file_name},
    ).fetchone()
    if kept != updated:
        raise BadInput(f"{live.name}: {updated} rows corrected but {kept} replaced rows kept: rolled back")
    inserted = conn.execute(
        sql.SQL(
            "INSERT INTO {live} ({columns}) SELECT {vcolumns} FROM ({values}) AS v WHERE NOT EXISTS (SELECT 1 FROM {live} AS t WHERE {match})"
        ).format(
            live=qualified(live.name),
            columns=sql.SQL(", ").join(map(sql.Identifier, load.columns)),
            vcolumns=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in load.columns),
            values=values,
            match=key_match,
        )
    ).rowcount
    return inserted, updated, already


def fingerprint_table(live: target.LiveTable) -> str:
    """ple_ops.dol_fp_<schema>_<table>: the fingerprint of each row the import last wrote (or found
    equal) in that live table, by its natural key. The tool's own schema: no DDL on the live table."""
    return f"ple_ops.dol_fp_{live.name.replace('.', '_')}"


def _fingerprint(mapping: target.Mapping) -> sql.Composable:
    """128 bits of a staged row's content: every header position of the file (what the row
    writes, extras included), not its record number (a row moved in the file is the same row)."""
    return sql.SQL("md5(ROW({})::text)::uuid").format(
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in mapping.staging)
    )


def _fingerprints(conn, dataset: Dataset, live: target.LiveTable) -> str:
    """The live table's fingerprint table, created on its first import: its natural key typed as
    the staging table (as the live table), the fingerprint, the key as primary key."""
    table = fingerprint_table(live)
    if conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()[0]:
        governance.register_before_create(
            conn, table, "SYSTEM", f"the DOL import's per-row fingerprints of {live.name}", "dol_import"
        )
        keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        conn.execute(
            sql.SQL("CREATE TABLE {} AS SELECT {}, NULL::uuid AS fingerprint FROM {} WITH NO DATA").format(
                qualified(table), keys, sql.Identifier(STAGE)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(qualified(table), keys))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN fingerprint SET NOT NULL").format(qualified(table)))
    return table


def _changed(conn, dataset: Dataset, fingerprints: str, mapping: target.Mapping) -> int:
    """The staged rows whose fingerprint differs from the stored one, or has none (a row the import
    never wrote, e.g. loaded before fingerprints were kept), into CHANGED with their fingerprint:
    the only rows the upsert reads. Returns how many."""
    match = sql.SQL(" AND ").join(sql.SQL("f.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key)
    return conn.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {changed} ON COMMIT DROP AS SELECT s.*, c.fingerprint FROM {stage} AS s "
            "CROSS JOIN LATERAL (SELECT {fp} AS fingerprint) AS c "
            "WHERE NOT EXISTS (SELECT 1 FROM {fps} AS f WHERE {match} AND f.fingerprint = c.fingerprint)"
        ).format(
            changed=sql.Identifier(CHANGED),
            stage=sql.Identifier(STAGE),
            fp=_fingerprint(mapping),
            fps=qualified(fingerprints),
            match=match,
        )
    ).rowcount


def _remember(conn, dataset: Dataset, fingerprints: str, mapping: target.Mapping, rows: str) -> None:
    """Store the fingerprints of the rows just written or found equal (`rows`: STAGE after a fresh
    load, CHANGED after an upsert), replacing the ones they had."""
    keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
    fingerprint = sql.SQL("s.fingerprint") if rows == CHANGED else _fingerprint(mapping)
    conn.execute(
        sql.SQL(
            "INSERT INTO {fps} ({keys}, fingerprint) SELECT {skeys}, {fp} FROM {rows} AS s "
            "ON CONFLICT ({keys}) DO UPDATE SET fingerprint = EXCLUDED.fingerprint "
            "WHERE {fps}.fingerprint IS DISTINCT FROM EXCLUDED.fingerprint"
        ).format(
            fps=qualified(fingerprints),
            keys=keys,
            skeys=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key),
            fp=fingerprint,
            rows=sql.Identifier(rows),
        )
    )


def _supersede(conn, dataset: Dataset, live: target.LiveTable, superseded: target.LiveTable) -> tuple[int, int]:
    """Amended filings replace their originals: for each plan and plan year this file touched,
    the filing received last (then the greatest ACK_ID) stays; the others move, whole, to
    <table>_superseded with the ACK_ID that replaced them. Nothing is deleted. The losers are
    found first (one join and one sort); the move runs only when something lost.
    Returns (rows moved, of those the rows of this file)."""
    if not dataset.plan_identity or not all(live.has(c) for c in dataset.plan_identity):
        return 0, 0
    order = sql.SQL("f.date_received DESC NULLS LAST, f.ack_id DESC" if live.has("date_received") else "f.ack_id DESC")
    kept = [c for c in live.columns if c in superseded.columns and c not in ("superseded_by_ack_id", "superseded_at")]

    def identity(alias: str) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in dataset.plan_identity
        )

    def joined(left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{l}.{c} = {r}.{c}").format(l=sql.Identifier(left), r=sql.Identifier(right), c=sql.Identifier(c))
            for c in dataset.plan_identity
        )

    losers = conn.execute(
        sql.SQL(
            """
            CREATE TEMPORARY TABLE {losers} ON COMMIT DROP AS
            WITH touched AS (
                SELECT DISTINCT {sidentity} FROM {stage} AS s
            )
            SELECT ranked.ack_id, ranked.winner FROM (
                SELECT f.ack_id, row_number() OVER w AS rank, first_value(f.ack_id) OVER w AS winner
                FROM {live} f JOIN touched t ON {ft}
                WINDOW w AS (PARTITION BY {fidentity} ORDER BY {order})
            ) AS ranked
            WHERE ranked.rank > 1
            """
        ).format(
            losers=sql.Identifier(LOSERS),
            sidentity=identity("s"),
            fidentity=identity("f"),
            stage=sql.Identifier(STAGE),
            live=qualified(live.name),
            ft=joined("f", "t"),
            order=order,
        )
    ).rowcount
    if not losers:
        return 0, 0
    statement = sql.SQL(
        """
        WITH moved AS (
            DELETE FROM {live} f USING {losers} r WHERE f.ack_id = r.ack_id
            RETURNING f.*, r.winner
        )
        INSERT INTO {superseded} ({kept}, superseded_by_ack_id, superseded_at)
        SELECT {kept}, winner, now() FROM moved
        """
    ).format(
        live=qualified(live.name),
        losers=sql.Identifier(LOSERS),
        superseded=qualified(superseded.name),
        kept=sql.SQL(", ").join(map(sql.Identifier, kept)),
    )
    moved = conn.execute(statement).rowcount
    of_file = conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS r WHERE EXISTS (SELECT 1 FROM {} AS s WHERE s.ack_id = r.ack_id)").format(
            sql.Identifier(LOSERS), sql.Identifier(STAGE)
        )
    ).fetchone()[0]
    return moved, of_file


def _filings_to_link(conn, dataset: Dataset, live: target.LiveTable) -> target.LiveTable | None:
    if dataset.name != "F_SCH_A" or not live.writable("filing_id"):
        return None
    filings = target.inspect(conn, DATASETS["F_5500"].table)
    return filings if filings is not None and filings.has("filing_id") and filings.has("ack_id") else None


def _link_schedule_a(conn, dataset: Dataset) -> None:
    """Schedule A rows point at their filing, whichever of the two arrived first (only the rows
    of this file's filings are looked at; the join starts from Schedule A, so a filings file
    whose schedules have not arrived costs nothing)."""
    schedule, filings = DATASETS["F_SCH_A"].table, DATASETS["F_5500"].table
    for name in (schedule, filings):
        live = target.inspect(conn, name)
        if live is None or not live.has("filing_id"):
            return
    conn.execute(
        sql.SQL(
            "UPDATE {schedule} a SET filing_id = f.filing_id FROM {filings} f "
            "WHERE f.ack_id = a.ack_id AND a.filing_id IS DISTINCT FROM f.filing_id "
            "AND a.ack_id IN (SELECT s.ack_id FROM {stage} s)"
        ).format(schedule=qualified(schedule), filings=qualified(filings), stage=sql.Identifier(STAGE))
    )


def _account(conn, dataset: Dataset, live: target.LiveTable, superseded: str) -> tuple[int, int]:
    """(rows of the file in the live table, rows of the file only in the superseded table): one
    probe of the live table per row, the superseded table only for rows not live."""

    def exists(table: str) -> sql.Composable:
        return sql.SQL("EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
            qualified(table),
            sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
        )

    return conn.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE p.place = 1), count(*) FILTER (WHERE p.place = 2) FROM "
            "(SELECT CASE WHEN {l} THEN 1 WHEN {s} THEN 2 END AS place FROM {stage} AS s OFFSET 0) AS p"
        ).format(l=exists(live.name), s=exists(superseded), stage=sql.Identifier(STAGE))
    ).fetchone()


# ------------------------------------------------------------------------------------- the import
# Imports that take turns: files of one dataset, and F_5500 with F_SCH_A (each links Schedule A
# rows to their filing, so each must see the other's committed rows). F_5500_SF runs beside them.
TURNS = {
    "F_5500": "ple.dol_import.filings",
    "F_SCH_A": "ple.dol_import.filings",
    "F_5500_SF": "ple.dol_import.F_5500_SF",
}
TURN_WAIT = "30min"


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
    ensure_ledger(conn)
    scanned = files.scan(source)
    checksum_seconds = time.monotonic() - started
    result = ImportResult(source.name, scanned.sha256, "imported")
    import_id, previous = _register(conn, source, scanned.sha256, run_id)
    if previous in ("imported", "empty"):
        result.status = "already_imported"
        result.message = f"the same bytes were imported before (import {import_id}): nothing to do"
        return result
    result.timings["checksum"] = round(checksum_seconds, 3)
    try:
        return _import(conn, source, import_id, scanned, result, started, guard or Guard(), add_columns)
    except Exception as exc:
        with transaction(conn):
            conn.execute(
                "UPDATE ple_ops.dol_import SET status = 'failed', message = %s, finished_at = now() WHERE import_id = %s",
                (f"{type(exc).__name__}: {exc}"[:4000], import_id),
            )
        raise


@contextmanager
def _timed(result: ImportResult, stage: str):
    started = time.monotonic()
    yield
    result.timings[stage] = round(time.monotonic() - started, 3)


def _adopt(conn, dataset: Dataset, header: list[str], result: ImportResult, add_columns):
    """The live table and the file's mapping onto it; creates the tables only on a database
    that has none (fresh), and alters nothing unless approved `add_columns` ask for it."""
    live = target.inspect(conn, dataset.table)
    superseded_name = superseded_table(dataset)
    if live is None:
        with transaction(conn):
            governance.register_before_create(
                conn, dataset.table, "STAGING", "a DOL dataset the import keeps", "dol_import"
            )
            for statement in create_canonical_table(dataset):
                conn.execute(statement)
        live = target.inspect(conn, dataset.table)
        log.info("%s did not exist: created from the layouts", dataset.table)
    mapping = target.map_header(dataset, live, header)
    wanted = new_columns.additions(dataset, live, mapping.missing)
    if wanted and add_columns is not None:
        unlisted = [a.describe() for a in wanted if a not in add_columns]
        if unlisted:
            raise NotApproved(
                f"{result.name} would add {', '.join(unlisted)}, which the approved additions do not list; nothing was "
                f"written. Approve the columns of these files with {new_columns.APPROVE_HOW}, then run again"
            )
        new_columns.require(conn, add_columns)  # before anything is written
    if target.inspect(conn, superseded_name) is None:
        with transaction(conn):
            governance.register_before_create(
                conn, superseded_name, "ARCHIVE", f"filings amendments replaced in {dataset.table}", "dol_import"
            )
            for statement in create_superseded_table(dataset):
                conn.execute(statement)
        log.info("%s did not exist: created like %s", superseded_name, dataset.table)
    if wanted and add_columns is not None:
        approved = [(a.column, a.type) for a in add_columns if a.table == live.name]

        def alter() -> list[str]:
            with transaction(conn, lock_timeout="2s"):
                new_columns.require(conn, add_columns)  # in the transaction that runs the DDL
                return target.add_columns(conn, live, approved, superseded_name)

        result.added_columns = with_lock_retry(alter)
        live = target.inspect(conn, dataset.table)
        mapping = target.map_header(dataset, live, header)
    superseded = target.inspect(conn, superseded_name)
    lacking = [c for c in live.columns if c not in superseded.columns]
    if lacking:
        raise BadInput(
            f"{superseded_name} lacks {', '.join(lacking)} of {dataset.table}: a superseded filing would lose them. "
            f"Add the columns to {superseded_name} (or import with add_columns), then import again"
        )
    result.unknown_columns, result.dropped_columns = mapping.missing, mapping.dropped
    if mapping.dropped:
        log.warning(
            "%s: %s has no column for %s and no extras column: dropped from the load (add_columns, approved with "
            + new_columns.APPROVE_HOW
            + ", would add them)",
            result.name,
            dataset.table,
            ", ".join(mapping.dropped),
        )
    return live, superseded, mapping


def _import(conn, source, import_id, scanned, result, started, guard: Guard, add_columns) -> ImportResult:
    with _timed(result, "inspect"):
        result.encoding = "utf-8" if scanned.utf8 else files.detect_encoding(source)
        header = files.read_header(source, result.encoding)
        if not header or header == [""]:
            result.status = "empty"
            result.message = "empty file: no header, no rows"
            with transaction(conn):
                _finish(conn, import_id, result, "empty")
            return result
        dataset_name = files.detect_dataset(header)
        if dataset_name is None:
            raise BadInput(
                f"{source.name}: its header matches no known EFAST2 layout ({', '.join(all_datasets())}); the file is "
                f"left in place. The header: {files.describe_header(header)}"
            )
        dataset = all_datasets()[dataset_name]
        result.dataset = dataset.name
        result.form_year = source.form_year_from_name()
        live, superseded, mapping = _adopt(conn, dataset, header, result, add_columns)
        unfed = target.unfed_required(live, mapping, managed_columns(live, result.form_year or True))
        if unfed:
            raise BadInput(
                f"{source.name}: {dataset.table} requires {', '.join(unfed)} (NOT NULL, no default) and nothing in the "
                "file fills it; nothing was written"
            )
        # DELETE: superseded filings move out of the live table
        target.check_rls(conn, live, ("SELECT", "INSERT", "UPDATE") + (("DELETE",) if dataset.plan_identity else ()))
        if dataset.name in ("F_5500", "F_SCH_A"):
            schedule = target.inspect(conn, DATASETS["F_SCH_A"].table)
            if schedule is not None and schedule.has("filing_id"):
                target.check_rls(conn, schedule, ("SELECT", "UPDATE"))

    def work() -> ImportResult:
        with transaction(conn, statement_timeout="2h"):
            guard.enter(conn)
            conn.execute("SELECT set_config('datestyle', 'ISO, MDY', true)")
            _lock(conn, dataset)
            _run(conn, source, import_id, scanned, result, dataset, live, superseded, mapping, started)
        return result

    result = with_lock_retry(work)
    result.disabled_guards = target.disabled_triggers(conn, [d.table for d in all_datasets().values()])
    if result.disabled_guards:
        log.error("triggers on the DOL tables are disabled (not by this import): %s", ", ".join(result.disabled_guards))
    return result


def _run(conn, source, import_id, scanned, result, dataset, live, superseded, mapping, started) -> None:
    """Everything that writes, in the caller's one transaction: all of it or none.

    Two ways to write: when no staged key is in the live or the superseded table (a fresh load,
    e.g. a new plan year), one INSERT ... SELECT that validates on the way (rows with a problem
    are not inserted; they go to the errors table after it, only when the INSERT's count says
    some stayed behind), proved by its own counts and key checksum. Otherwise validate first,
    then upsert (update what changed, insert what is new) and prove by probing the tables."""
    with _timed(result, "stage"):
        staged, quarantined = _stage(conn, import_id, source, live, mapping, result)
        result.data_rows = (
            scanned.data_lines
            if staged + quarantined == scanned.data_lines
            else reader.count_records(source, result.encoding)
        )
    with _timed(result, "validate"):
        if result.form_year is None:
            result.form_year = _majority_year(conn, dataset, mapping)
        keys = _staged_keys(conn, dataset)
        if keys.rows != staged:
            raise BadInput(f"{source.name}: COPY reported {staged} rows, the staging table holds {keys.rows}")
        result.staged_rows = staged
        fresh = not keys.repeated and not _known_keys(conn, dataset, live, superseded.name)
        if not fresh:
            quarantined += _quarantine(conn, import_id, dataset, live, mapping, result.form_year, keys.repeated)
            good = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(STAGE))).fetchone()[0]
            _check_counts(source, result, good, quarantined)
        # the joins plan on real counts: the upsert's and the Schedule A link's on the key, the
        # supersede's on the plan identity (unanalyzed, a DISTINCT is guessed at 200 values and
        # the join with the live table becomes a nested loop: minutes, measured); only those
        # columns (ANALYZE of every column of a 191-column table costs more than the upsert)
        joined = dict.fromkeys([*dataset.natural_key, *(c for c in dataset.plan_identity if c in mapping.loaded)])
        conn.execute(
            sql.SQL("ANALYZE {} ({})").format(sql.Identifier(STAGE), sql.SQL(", ").join(map(sql.Identifier, joined)))
        )
    with _timed(result, "upsert"):
        if result.form_year and live.writable(target.FORM_YEAR) and target.FORM_YEAR not in mapping.loaded:
            _constants(conn, live, result.form_year)
        filings = _filings_to_link(conn, dataset, live)
        load = _load(dataset, live, mapping, result.form_year, import_id, filings)
        fingerprints = _fingerprints(conn, dataset, live)
        if fresh:
            result.writer = "insert"
            good, bad = _insert_new(conn, import_id, dataset, live, mapping, result.form_year, load, keys, source)
            quarantined += bad
            _check_counts(source, result, good, quarantined)
            result.inserted = good
            _remember(conn, dataset, fingerprints, mapping, STAGE)
        else:
            result.writer = "upsert"
            # only the rows whose content changed since the import last wrote them are compared
            # with the live table and rewritten: a refresh costs what changed, not the whole file
            _changed(conn, dataset, fingerprints, mapping)
            conn.execute(
                sql.SQL("ANALYZE {} ({})").format(
                    sql.Identifier(CHANGED), sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
                )
            )
            result.inserted, result.updated, result.already_superseded = _upsert(
                conn, dataset, live, superseded.name, load, import_id, source.name, CHANGED
            )
            _remember(conn, dataset, fingerprints, mapping, CHANGED)
            result.history_rows = result.updated
            result.unchanged = good - result.inserted - result.updated - result.already_superseded
        result.error_rows = quarantined
        result.superseded, superseded_of_file = _supersede(conn, dataset, live, superseded)
        # a Schedule A file wrote its rows linked (insert and update alike); a filings file links
        # the schedules that arrived before it
        if dataset.name == "F_5500" or (dataset.name == "F_SCH_A" and filings is None):
            _link_schedule_a(conn, dataset)
    with _timed(result, "prove"):
        if fresh:
            # proved by the INSERT's own count and key checksum (every good row written, nothing
            # else); the supersede moved `superseded_of_file` of them, whole, in one statement
            result.live_rows, result.superseded_rows = good - superseded_of_file, superseded_of_file
        else:
            result.live_rows, result.superseded_rows = _account(conn, dataset, live, superseded.name)
        if result.live_rows + result.superseded_rows != good:
            raise BadInput(
                f"{source.name}: {good} good rows, but {result.live_rows} are in {dataset.table} and "
                f"{result.superseded_rows} in {superseded.name}: rolled back"
            )
    result.bytes = scanned.size
    result.seconds = time.monotonic() - started
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
    _finish(conn, import_id, result, "imported")


def _check_counts(source, result: ImportResult, good: int, quarantined: int) -> None:
    if good + quarantined != result.data_rows:
        raise BadInput(
            f"{source.name}: {result.data_rows} data rows in the file, but {good} staged + {quarantined} quarantined"
        )


def _known_keys(conn, dataset: Dataset, live: target.LiveTable, superseded: str) -> bool:
    """Whether any staged natural key is already in the live or the superseded table: two
    semi-joins that stop at the first match (a refresh answers at once; a fresh load probes
    each key in the tables' key indexes)."""

    def known(table: str) -> sql.Composable:
        return sql.SQL("EXISTS (SELECT 1 FROM {} AS s JOIN {} AS t ON {})").format(
            sql.Identifier(STAGE),
            qualified(table),
            sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
        )

    return conn.execute(sql.SQL("SELECT {} OR {}").format(known(live.name), known(superseded))).fetchone()[0]


def _insert_new(
    conn, import_id, dataset, live, mapping, form_year, load: Load, keys: StagedKeys, source
) -> tuple[int, int]:
    """The fresh load: no staged key exists in the tables and none repeats in the file, so every
    good row is new. One INSERT ... SELECT over the staging table writes the rows the validation
    passes (the same `_problems` expression, evaluated on the way); its RETURNING gives the count
    and checksum of the keys written. Only when fewer than the staged rows were written do the
    others go to the errors table (`_quarantine`, the same expression). Proof: the keys written
    are exactly the staged keys that were not quarantined (count and checksum), else roll back.
    Returns (written, quarantined)."""
    rows = _checked(dataset, live, mapping, sql.SQL("s.*"), sql.SQL("false"))
    written, checksum = conn.execute(
        sql.SQL(
            """
            WITH written AS (
                INSERT INTO {live} ({columns}) SELECT {values} FROM {rows} WHERE {problems} IS NULL
                RETURNING {keys}
            )
            SELECT count(*), coalesce(sum({hash}), 0) FROM written AS w
            """
        ).format(
            live=qualified(live.name),
            columns=sql.SQL(", ").join(map(sql.Identifier, load.columns)),
            values=sql.SQL(", ").join(load.values),
            rows=rows,
            problems=_problems(dataset, live, mapping, form_year),
            keys=sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key)),
            hash=_key_hash(dataset, "w"),
        )
    ).fetchone()
    bad, expected = 0, keys
    if written != keys.rows:
        bad = _quarantine(conn, import_id, dataset, live, mapping, form_year, repeated=False)
        expected = _staged_keys(conn, dataset)
    if (written, int(checksum)) != (expected.rows, expected.checksum) or written + bad != keys.rows:
        raise BadInput(
            f"{source.name}: {keys.rows} rows staged, {bad} quarantined, but {written} written to {live.name} with "
            "other keys than the staged ones: rolled back"
        )
    return written, bad


def _stage(conn, import_id, source, live, mapping, result) -> tuple[int, int]:
    """COPY the raw bytes (fast path); when COPY refuses the file as it is, the careful path.
    Returns (rows staged, records quarantined while parsing).

    The staging table is created in the same savepoint as the fast COPY, so COPY can FREEZE the
    rows (no hint-bit writes on the later scans); a refused COPY rolls both back."""
    try:
        with conn.transaction():
            _create_stage(conn, live, mapping)
            staged = _copy_fast(conn, source, mapping, result.encoding)
        result.path = "copy"
        return staged, 0
    except COPY_REFUSALS as exc:
        log.warning(
            "%s: COPY refused the file as it is (%s); taking the careful path", source.name, str(exc).splitlines()[0]
        )
    result.path = "careful"
    _create_stage(conn, live, mapping)
    return _copy_careful(conn, import_id, source, mapping, result.encoding)


def _majority_year(conn, dataset: Dataset, mapping: target.Mapping) -> int | None:
    by_name = _by_name(mapping)
    if dataset.begin_date not in by_name:
        return None
    text = _text(by_name[dataset.begin_date])
    row = conn.execute(
        sql.SQL("SELECT mode() WITHIN GROUP (ORDER BY left({t}, 4)) FROM {s} AS s WHERE {t} ~ '^[0-9]{{4}}-'").format(
            t=text, s=sql.Identifier(STAGE)
        )
    ).fetchone()
    return int(row[0]) if row and row[0] else None


# ------------------------------------------------------------------------------------- the run's proof
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
        query=sql.SQL(
            "SELECT i.import_id, i.data_rows = i.live_rows + i.superseded_rows + i.error_rows AND i.history_rows = "
            "(SELECT count(*) FROM ple_ops.dol_row_history h WHERE h.replaced_by_import_id = i.import_id) AS accounted "
            "FROM ple_ops.dol_import i WHERE i.status = 'imported' AND i.run_id = {}"
        )
        .format(sql.Literal(run_id))
        .as_string(conn),
        row_count=files_in_run,
        not_null=["accounted"],
        true_columns=["accounted"],
    )
    failed = [r for r in validate(sqlalchemy_url(conn), [suite], name="dol_import_run") if not r.success]
    if failed:
        raise ExpectationFailed("DOL import run is not accounted for:\n" + "\n".join(r.describe() for r in failed))
    return files_in_run
