"""Import one DOL file into the DOL spoke, set-based, at the speed of COPY.

1. Register the file by the SHA-256 of its bytes; a file already imported is skipped (no-op).
2. Stage: stream the bytes into the all-text staging table with COPY (fast path). When COPY
   cannot take the file as it is (unknown columns, ragged rows, encoding trouble), the careful
   path parses it record by record, keeps unknown columns as JSONB extras, and quarantines
   unreadable records with their raw text.
3. Validate set-based in SQL: ACK_ID present and 30 characters, EINs 9 digits, dates and
   numbers parse, plan year consistent with the form year, natural key unique in the file. Bad
   rows move to ple_ops.dol_import_error with the reason and the line; the good rows go on.
4. Prove with Great Expectations that what remains is exactly the file's good rows and meets
   the contract (the file's data rows = staged + quarantined).
5. Upsert into the canonical table (typed casts; unchanged rows are not rewritten), move filings
   an amendment replaced into <table>_superseded, link Schedule A rows to their filing, empty
   this import's staging rows, record the counts. One transaction: all of it or none.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ple.db import sqlalchemy_url, transaction
from ple.dol import files, reader
from ple.dol.layouts import DATASETS, Dataset, Field, header_map, union_fields
from ple.dol.tables import all_ddl, record_sequence, superseded_table
from ple.errors import BadInput, ExpectationFailed
from ple.ops import ensure_schema
from ple.sqlutil import qualified

log = logging.getLogger(__name__)

PG_ENCODING = {"utf-8": "UTF8", "cp1252": "WIN1252", "latin-1": "LATIN1"}


@dataclass
class ImportResult:
    name: str
    sha256: str
    status: str  # imported, already_imported, empty, skipped
    dataset: str | None = None
    form_year: int | None = None
    encoding: str | None = None
    path: str | None = None
    data_rows: int = 0
    staged_rows: int = 0
    error_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    bytes: int = 0
    message: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per stage: where an import spends its time

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------- ledger
def _register(conn, source: files.Input, sha256: str, run_id: str) -> tuple[int, str | None]:
    """(import_id, previous status). A failed or interrupted earlier attempt is reused and its
    leftovers cleaned; a finished one is reported as such."""
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
        conn.execute("DELETE FROM ple_ops.dol_import_error WHERE import_id = %s", (row[0],))
        for dataset in DATASETS.values():
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (dataset.staging_table,)).fetchone()[0]:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE import_id = %s").format(qualified(dataset.staging_table)), (row[0],)
                )
        return row[0], row[1]


def _finish(conn, import_id: int, result: ImportResult, status: str) -> None:
    conn.execute(
        """
        UPDATE ple_ops.dol_import SET status = %s, dataset = %s, form_year = %s, encoding = %s, path = %s, bytes = %s,
            data_rows = %s, staged_rows = %s, error_rows = %s, inserted = %s, updated = %s, unchanged = %s,
            superseded = %s, unknown_columns = %s, message = %s, finished_at = now()
        WHERE import_id = %s
        """,
        (
            status,
            result.dataset,
            result.form_year,
            result.encoding,
            result.path,
            result.bytes,
            result.data_rows,
            result.staged_rows,
            result.error_rows,
            result.inserted,
            result.updated,
            result.unchanged,
            result.superseded,
            result.unknown_columns,
            result.message or None,
            import_id,
        ),
    )


# ------------------------------------------------------------------------------------- staging
def _copy_fast(conn, source: files.Input, dataset: Dataset, columns: list[str], encoding: str) -> int:
    """Raw bytes into COPY: the server parses the CSV. Raises on anything COPY rejects."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, NULL '', ENCODING {})").format(
        qualified(dataset.staging_table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Literal(PG_ENCODING[encoding]),
    )
    with conn.cursor() as cur, source.open() as handle:
        with cur.copy(statement) as copy:
            first = True
            while chunk := handle.read(files.CHUNK):
                if first and chunk.startswith(files.UTF8_BOM):
                    chunk = chunk[len(files.UTF8_BOM) :]
                first = False
                copy.write(chunk)
        return cur.rowcount


def _copy_careful(
    conn, import_id: int, source: files.Input, dataset: Dataset, header: list[str], encoding: str, base: int
) -> tuple[int, int]:
    """Record by record: good rows to staging (unknown columns as JSONB extras), unreadable
    records to the errors table with their raw text. Returns (staged, quarantined)."""
    mapped, _unknown = header_map(dataset.name, header)
    known = [(i, c) for i, c in enumerate(mapped) if c is not None]
    extra = [(i, header[i].strip()) for i, c in enumerate(mapped) if c is None]
    columns = [c for _, c in known] + ["record_no", "extras"]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        qualified(dataset.staging_table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    bad: list[tuple] = []
    staged = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for record in reader.records(source, encoding, len(header)):
            if record.fields is None:
                bad.append((import_id, record.number, record.problem, record.raw))
                continue
            values = [record.fields[i] or None for i, _ in known]
            extras = {name: record.fields[i] for i, name in extra if record.fields[i] != ""}
            copy.write_row([*values, base + record.number, Jsonb(extras) if extras else None])
            staged += 1
    if bad:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ple_ops.dol_import_error (import_id, record_no, reason, raw_line) VALUES (%s, %s, %s, %s)",
                bad,
            )
    return staged, len(bad)


# ------------------------------------------------------------------------------------- validation
def _problems(dataset: Dataset, form_year: int | None) -> sql.Composable:
    """One SQL expression naming everything wrong with a staged row (NULL when nothing is)."""
    checks = [
        sql.SQL(
            "CASE WHEN nullif(s.ack_id, '') IS NULL THEN 'ACK_ID missing' WHEN length(s.ack_id) <> 30 THEN 'ACK_ID is not 30 characters' END"
        )
    ]
    for ein in dataset.ein_columns:
        checks.append(
            sql.SQL("CASE WHEN nullif(s.{c}, '') IS NOT NULL AND s.{c} !~ '^[0-9]{{9}}$' THEN {msg} END").format(
                c=sql.Identifier(ein), msg=sql.Literal(f"{ein.upper()} is not 9 digits")
            )
        )
    for f in union_fields(dataset.name):
        if f.sql_type in ("date", "timestamptz", "numeric", "integer"):
            # A plain number is valid without asking the type's input function (the slow part).
            plain = "s.{c} ~ '^ *-?[0-9]+ *$' OR " if f.sql_type in ("numeric", "integer") else ""
            checks.append(
                sql.SQL(
                    "CASE WHEN s.{c} IS NULL OR "
                    + plain
                    + "s.{c} = '' OR pg_input_is_valid(s.{c}, {t}) THEN NULL ELSE {msg} END"
                ).format(
                    c=sql.Identifier(f.column),
                    t=sql.Literal(f.sql_type),
                    msg=sql.Literal(f"{f.name} is not a valid {f.sql_type}"),
                )
            )
    if dataset.begin_date and dataset.end_date:
        # Late filings for earlier plan years are real (a 2019 dataset holds plan years of 2004 and
        # 2018), so the plan year is checked for its own shape, and a plan year beginning more than
        # a year after the form year is impossible.
        checks.append(
            sql.SQL(
                "CASE WHEN pg_input_is_valid(btrim(s.{b}), 'date') AND pg_input_is_valid(btrim(s.{e}), 'date') "
                "AND NOT (btrim(s.{b})::date <= btrim(s.{e})::date AND btrim(s.{e})::date - btrim(s.{b})::date < 372) "
                "THEN {msg} END"
            ).format(
                b=sql.Identifier(dataset.begin_date),
                e=sql.Identifier(dataset.end_date),
                msg=sql.Literal(
                    f"plan year {dataset.begin_date.upper()}..{dataset.end_date.upper()} is not a plan year"
                ),
            )
        )
    if form_year and dataset.begin_date:
        checks.append(
            sql.SQL(
                "CASE WHEN pg_input_is_valid(btrim(s.{b}), 'date') AND extract(year FROM btrim(s.{b})::date) > {y} THEN {msg} END"
            ).format(
                b=sql.Identifier(dataset.begin_date),
                y=sql.Literal(form_year + 1),  # short plan years of the next year are real (2020-01-01 in a 2019 file)
                msg=sql.Literal(f"{dataset.begin_date.upper()} begins after form year {form_year} + 1"),
            )
        )
    checks.append(
        sql.SQL("CASE WHEN s.duplicate THEN {} END").format(
            sql.Literal("natural key " + "+".join(dataset.natural_key).upper() + " repeated in the file")
        )
    )
    return sql.SQL("nullif(concat_ws('; ', {}), '')").format(sql.SQL(", ").join(checks))


def _csv_line(header_columns: list[str]) -> sql.Composable:
    """The staged row as a CSV line in the file's column order (the raw line, as parsed)."""
    return sql.SQL(" || ',' || ").join(
        sql.SQL(
            "CASE WHEN s.{c} ~ '[\",\\r\\n]' THEN '\"' || replace(s.{c}, '\"', '\"\"') || '\"' ELSE coalesce(s.{c}, '') END"
        ).format(c=sql.Identifier(c))
        for c in header_columns
    )


def _quarantine(
    conn, import_id: int, dataset: Dataset, form_year: int | None, header_columns: list[str], base: int
) -> int:
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    repeated = conn.execute(
        sql.SQL("SELECT count(*) <> count(DISTINCT ({})) FROM {} AS s WHERE s.import_id = %s").format(
            keys, qualified(dataset.staging_table)
        ),
        (import_id,),
    ).fetchone()[0]
    # the window that marks repeated keys costs a sort; most files need none
    duplicate = (
        sql.SQL("s.record_no <> min(s.record_no) OVER (PARTITION BY {})").format(keys) if repeated else sql.SQL("false")
    )
    statement = sql.SQL(
        """
        WITH checked AS (
            SELECT s.row_ctid, {problems} AS reason
            FROM (SELECT s.*, s.ctid AS row_ctid, {duplicate} AS duplicate
                  FROM {staging} AS s WHERE s.import_id = %(import_id)s) AS s
        ),
        bad AS (
            DELETE FROM {staging} AS t USING checked c
            WHERE t.import_id = %(import_id)s AND t.ctid = c.row_ctid AND c.reason IS NOT NULL
            RETURNING t.*, c.reason
        )
        INSERT INTO ple_ops.dol_import_error (import_id, record_no, reason, raw_line)
        SELECT %(import_id)s, s.record_no - %(base)s, s.reason, {line} FROM bad AS s
        """
    ).format(
        problems=_problems(dataset, form_year),
        line=_csv_line(header_columns) if header_columns else sql.SQL("NULL"),
        duplicate=duplicate,
        staging=qualified(dataset.staging_table),
    )
    return conn.execute(statement, {"import_id": import_id, "base": base}).rowcount


def _expectations(conn, import_id: int, dataset: Dataset, staged: int, form_year: int | None) -> None:
    """Great Expectations over this import's staged rows: the independent proof of the contract."""
    from ple.expectations import TableSuite, validate

    checked = sql.SQL(", ").join(map(sql.Identifier, dict.fromkeys([*dataset.natural_key, *dataset.ein_columns])))
    in_order = sql.SQL("")
    if dataset.begin_date and dataset.end_date:
        # computed in SQL: GX's own column-pair expectation reads both columns into memory
        in_order = sql.SQL(
            ", CASE WHEN pg_input_is_valid({b}, 'date') AND pg_input_is_valid({e}, 'date') "
            "THEN {b}::date <= {e}::date END AS plan_year_in_order"
        ).format(b=sql.Identifier(dataset.begin_date), e=sql.Identifier(dataset.end_date))
    # GX reads this import's rows through a view of the columns under test: a query asset makes GX
    # fetch the query's rows into memory, a table asset (a view is one) keeps every metric in SQL.
    view = f"ple_ops.dol_import_{import_id}_staged"
    with transaction(conn):
        conn.execute(
            sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT {}{} FROM {} WHERE import_id = {}").format(
                qualified(view), checked, in_order, qualified(dataset.staging_table), sql.Literal(import_id)
            )
        )
    suite = TableSuite(
        table=view,
        row_count=staged,
        not_null=["ack_id"],
        unique=[list(dataset.natural_key)],
        matches_regex={"ack_id": "^.{30}$"} | {c: "^[0-9]{9}$" for c in dataset.ein_columns},
        true_columns=["plan_year_in_order"] if dataset.begin_date and dataset.end_date else [],
    )
    try:
        failed = [r for r in validate(sqlalchemy_url(conn), [suite], name=f"dol_import_{import_id}") if not r.success]
    finally:
        with transaction(conn):
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(qualified(view)))
    if failed:
        raise ExpectationFailed("staged rows break the DOL contract:\n" + "\n".join(r.describe() for r in failed))


# ------------------------------------------------------------------------------------- upsert
def _cast(f: Field) -> sql.Composable:
    """Text to the canonical type (validated before). The input functions of numeric, integer,
    date and timestamptz skip surrounding blanks themselves."""
    if f.sql_type == "text":
        return sql.SQL("s.{}").format(sql.Identifier(f.column))  # COPY (NULL '') already made empty fields NULL
    return sql.SQL("nullif(s.{}, '')::{}").format(sql.Identifier(f.column), sql.SQL(f.sql_type))


def _upsert(conn, import_id: int, dataset: Dataset, form_year: int | None) -> tuple[int, int]:
    """(inserted, updated). A row whose every column already holds these values is not touched."""
    fields = union_fields(dataset.name)
    natural = set(dataset.natural_key)
    columns = [f.column for f in fields] + ["form_year", "extras", "source_import_id"]
    values = [_cast(f) for f in fields] + [sql.Literal(form_year), sql.SQL("s.extras"), sql.Literal(import_id)]
    changing = [c for c in columns if c not in natural and c != "source_import_id"]
    statement = sql.SQL(
        "INSERT INTO {target} AS t ({columns}) SELECT {values} FROM {staging} AS s WHERE s.import_id = %(import_id)s "
        "ON CONFLICT ({keys}) DO UPDATE SET {sets}, source_import_id = EXCLUDED.source_import_id, updated_at = now() "
        "WHERE ({old}) IS DISTINCT FROM ({new}) "
        "RETURNING (xmax = 0) AS inserted"
    ).format(
        target=qualified(dataset.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(values),
        staging=qualified(dataset.staging_table),
        keys=sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key)),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in changing),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in changing),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in changing),
    )
    counted = sql.SQL(
        "WITH upserted AS ({}) SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted"
    ).format(statement)
    inserted, updated = conn.execute(counted, {"import_id": import_id}).fetchone()
    return inserted, updated


def _supersede(conn, import_id: int, dataset: Dataset) -> int:
    """Amended filings replace their originals: for each plan and plan year this import touched,
    the filing received last (then the greatest ACK_ID) stays; the others move, whole, to
    <table>_superseded with the ACK_ID that replaced them. Nothing is deleted."""
    if not dataset.plan_identity:
        return 0
    identity = sql.SQL(", ").join(map(sql.Identifier, dataset.plan_identity))
    statement = sql.SQL(
        """
        WITH touched AS (
            SELECT DISTINCT {identity} FROM {target} WHERE source_import_id = %(import_id)s
        ),
        ranked AS (
            SELECT f.{key} AS id, f.ack_id,
                   row_number() OVER w AS rank, first_value(f.ack_id) OVER w AS winner
            FROM {target} f JOIN touched USING ({identity})
            WINDOW w AS (PARTITION BY {fidentity} ORDER BY f.date_received DESC NULLS LAST, f.ack_id DESC)
        ),
        moved AS (
            DELETE FROM {target} f USING ranked r WHERE f.{key} = r.id AND r.rank > 1
            RETURNING f.*, r.winner
        )
        INSERT INTO {superseded} SELECT moved.*, now() FROM moved
        """
    ).format(
        identity=identity,
        fidentity=sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in dataset.plan_identity),
        target=qualified(dataset.table),
        key=sql.Identifier(dataset.surrogate_key),
        superseded=qualified(superseded_table(dataset)),
    )
    return conn.execute(statement, {"import_id": import_id}).rowcount


def _link_schedule_a(conn) -> None:
    """Schedule A rows point at their filing, whichever of the two arrived first."""
    if conn.execute("SELECT to_regclass('dol.schedule_a') IS NULL OR to_regclass('dol.form_5500') IS NULL").fetchone()[
        0
    ]:
        return
    conn.execute(
        "UPDATE dol.schedule_a a SET filing_id = f.filing_id FROM dol.form_5500 f "
        "WHERE a.ack_id = f.ack_id AND a.filing_id IS DISTINCT FROM f.filing_id"
    )


# ------------------------------------------------------------------------------------- the import
def _lock(conn, dataset: Dataset) -> None:
    """Imports of one dataset take turns (transaction-level: safe on pooled connections)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ple.dol_import.{dataset.name}",))


def import_file(conn: psycopg.Connection, source: files.Input, run_id: str = "cli") -> ImportResult:
    started = time.monotonic()
    ensure_schema(conn)
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
        return _import(conn, source, import_id, scanned, result, started)
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


def _import(
    conn, source: files.Input, import_id: int, scanned: files.Scan, result: ImportResult, started: float
) -> ImportResult:
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
                f"{source.name}: the header is not that of F_5500, F_5500_SF or F_SCH_A; the file is left in place"
            )
        dataset = DATASETS[dataset_name]
        result.dataset = dataset.name
        mapped, result.unknown_columns = header_map(dataset.name, header)
        header_columns = [c for c in mapped if c is not None]
        result.form_year = source.form_year_from_name()
        with transaction(conn):
            for statement in all_ddl(dataset):
                conn.execute(statement)

    with transaction(conn, statement_timeout="2h"):
        _lock(conn, dataset)
        conn.execute("SELECT set_config('ple.import_id', %s, true)", (str(import_id),))
        base = conn.execute("SELECT nextval(%s::regclass)", (record_sequence(dataset),)).fetchone()[0]
        with _timed(result, "stage"):
            staged, quarantined = _stage(conn, import_id, source, dataset, header, header_columns, result, base)
            result.data_rows = (
                scanned.data_lines
                if staged + quarantined == scanned.data_lines
                else reader.count_records(source, result.encoding)
            )
        with _timed(result, "validate"):
            if result.form_year is None:
                result.form_year = _majority_year(conn, import_id, dataset)
            quarantined += _quarantine(conn, import_id, dataset, result.form_year, header_columns, base)
            result.staged_rows, result.error_rows = staged, quarantined
            good = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE import_id = %s").format(qualified(dataset.staging_table)),
                (import_id,),
            ).fetchone()[0]
            if good + quarantined != result.data_rows:
                raise BadInput(
                    f"{source.name}: {result.data_rows} data rows in the file, but {good} staged + {quarantined} quarantined"
                )
            conn.execute(
                "UPDATE ple_ops.dol_import SET status = 'staged', record_base = %s WHERE import_id = %s",
                (base, import_id),
            )

    with _timed(result, "expectations"):
        _expectations(conn, import_id, dataset, good, result.form_year)

    with _timed(result, "upsert"), transaction(conn, statement_timeout="2h"):
        _lock(conn, dataset)
        result.inserted, result.updated = _upsert(conn, import_id, dataset, result.form_year)
        result.unchanged = good - result.inserted - result.updated
        result.superseded = _supersede(conn, import_id, dataset)
        if dataset.name in ("F_5500", "F_SCH_A"):
            _link_schedule_a(conn)
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE import_id = %s").format(qualified(dataset.staging_table)), (import_id,)
        )
        result.bytes = scanned.size
        result.seconds = time.monotonic() - started
        result.message = (
            f"{result.data_rows} rows: {result.inserted} new, {result.updated} changed, {result.unchanged} unchanged, "
            f"{result.error_rows} to the errors table, {result.superseded} superseded by amendments"
        )
        _finish(conn, import_id, result, "imported")
    return result


def _stage(conn, import_id, source, dataset, header, header_columns, result, base) -> tuple[int, int]:
    """COPY the raw bytes (fast path); when COPY refuses the file as it is, the careful path.
    Returns (rows staged, records quarantined while parsing)."""
    if not result.unknown_columns:
        try:
            with conn.transaction():  # a savepoint: a COPY that fails falls back to the careful path
                staged = _copy_fast(conn, source, dataset, header_columns, result.encoding)
            result.path = "copy"
            return staged, 0
        except (
            psycopg.errors.DataError,
            psycopg.errors.BadCopyFileFormat,
            psycopg.errors.CharacterNotInRepertoire,
        ) as exc:
            log.warning(
                "%s: COPY refused the file as it is (%s); taking the careful path",
                source.name,
                str(exc).splitlines()[0],
            )
    result.path = "careful"
    return _copy_careful(conn, import_id, source, dataset, header, result.encoding, base)


def _majority_year(conn, import_id: int, dataset: Dataset) -> int | None:
    if not dataset.begin_date:
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT mode() WITHIN GROUP (ORDER BY left(btrim({c}), 4)) FROM {s} WHERE import_id = %s AND {c} ~ '^\\s*[0-9]{{4}}-'"
        ).format(c=sql.Identifier(dataset.begin_date), s=qualified(dataset.staging_table)),
        (import_id,),
    ).fetchone()
    return int(row[0]) if row and row[0] else None
