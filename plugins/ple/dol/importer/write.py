"""The write stage: the good staged rows into the live table, in the caller's one transaction.

Two ways to write. A fresh load (no staged key is in the live or the superseded table, none
repeats in the file, e.g. a new plan year): one INSERT ... SELECT that validates on the way and
returns the written keys; rows it left behind go to the errors table after it, and the written
keys' count and checksum must equal the staged good ones (the proof, from the statement itself).
Otherwise an upsert by the natural key of the rows whose content changed since the import last
wrote them (their fingerprints): a row whose values did not change is not rewritten, and the row
a correction replaces is kept in ple_ops.dol_row_history. Both then move the filings an amendment
replaced to <table>_superseded and link Schedule A to its filing (`supersede`).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ple.dol import target
from ple.dol.importer import fingerprints, prefilter, supersede, validate
from ple.dol.importer.state import CHANGED, CONSTANTS, STAGE, FileImport, timed
from ple.dol.layouts import DATASETS, Dataset
from ple.errors import BadInput
from ple.sqlutil import qualified, raw_template


def write(f: FileImport) -> None:
    conn, result, dataset, live, mapping = f.conn, f.result, f.dataset, f.live, f.mapping
    with timed(result, "upsert"):
        if result.form_year and live.writable(target.FORM_YEAR) and target.FORM_YEAR not in mapping.loaded:
            constants(conn, live, result.form_year)
        filings = filings_to_link(conn, dataset, live)
        load = load_of(f, filings)
        table = fingerprints.table_of(conn, dataset, live)
        if f.fresh:
            result.writer = "insert"
            f.good, bad = insert_new(f, load)
            f.quarantined += bad
            validate.check_counts(f)
            result.inserted = f.good
            # stored with the record digests too: a record whose bytes changed but whose values
            # did not (quoted otherwise, another form year's file) is then not compared with a
            # live row the owner changed since (the digest alone would rewrite it)
            fingerprints.remember(conn, dataset, table, mapping, STAGE)
        else:
            result.writer = "upsert"
            # only the rows whose content changed since the import last wrote them are compared
            # with the live table and rewritten: a refresh costs what changed, not the whole file
            for name in (live.name, table):
                planner_statistics(conn, name, dataset.natural_key, f.staged)
            fingerprints.changed(conn, dataset, table, mapping, live.name, f.superseded.name)
            conn.execute(
                sql.SQL("ANALYZE {} ({})").format(
                    sql.Identifier(CHANGED), sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
                )
            )
            result.inserted, result.updated, result.already_superseded = upsert(f, load, CHANGED)
            fingerprints.remember(conn, dataset, table, mapping, CHANGED)
            result.history_rows = result.updated
            result.unchanged = f.good - result.inserted - result.updated - result.already_superseded
        # the records the prefilter did not stage: the same bytes as the rows the import last wrote
        unchanged_live, unchanged_superseded = prefilter.unchanged_places(f)
        result.unchanged += unchanged_live
        result.already_superseded += unchanged_superseded
        result.error_rows = f.quarantined
        result.superseded, f.superseded_of_file = supersede.supersede(conn, dataset, live, f.superseded)
        # a Schedule A file wrote its rows linked (insert and update alike); a filings file links
        # the schedules that arrived before it
        if dataset.name == "F_5500" or (dataset.name == "F_SCH_A" and filings is None):
            supersede.link_schedule_a(conn, dataset)


def planner_statistics(conn, table: str, keys: list[str], rows: int) -> None:
    """ANALYZE a table's natural key where the planner believes it much smaller than the `rows`
    about to be matched against it (never analyzed, or filled since: a refresh right after a fresh
    load). Without it the planner takes the just-filled table for one row and joins the changed
    rows to it by scanning it whole once per row (3.5 s instead of 0.2 s for 760 rows in 76,000,
    measured). Statistics only: no DDL, no row written; a role that does not own the table gets
    PostgreSQL's warning and the plan it would have had."""
    believed = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]
    if believed < rows / 2:
        conn.execute(sql.SQL("ANALYZE {} ({})").format(qualified(table), sql.SQL(", ").join(map(sql.Identifier, keys))))


def constants(conn, live: target.LiveTable, form_year: int) -> None:
    """The form year typed as the live table declares `form_year` (varchar(10) live, integer on a
    fresh database): the value is assigned to the column, PostgreSQL converts it."""
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {c} ON COMMIT DROP AS SELECT t.{y} FROM {t} AS t WITH NO DATA").format(
            c=sql.Identifier(CONSTANTS), y=sql.Identifier(target.FORM_YEAR), t=qualified(live.name)
        )
    )
    conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(CONSTANTS)), (str(form_year),))


def alias_value(alias: str, source: str) -> sql.Composable:
    if alias == "covered_lives":  # a count in a TEXT(7) field: only what is a whole number
        return sql.SQL("CASE WHEN {t} ~ '^[0-9]{{1,9}}$' THEN {t}::integer END").format(t=validate.text(source))
    return sql.SQL("s.{}").format(sql.Identifier(source))


def extras_value(mapping: target.Mapping) -> sql.Composable:
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


def load_of(f: FileImport, filings: target.LiveTable | None) -> Load:
    """`filings`: for Schedule A, the filings table when both have `filing_id`: a new schedule row
    is written linked to its filing at once (not rewritten by the link afterwards)."""
    dataset, live, mapping, form_year = f.dataset, f.live, f.mapping, f.form_year
    columns = list(mapping.loaded)
    values = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns]
    if filings is not None and "filing_id" not in columns:
        columns.append("filing_id")
        values.append(
            sql.SQL("(SELECT f.filing_id FROM {} AS f WHERE f.ack_id = s.ack_id)").format(qualified(filings.name))
        )
    for alias, source in mapping.aliases:
        columns.append(alias)
        values.append(alias_value(alias, source))
    if mapping.extras:
        columns.append(target.EXTRAS)
        values.append(extras_value(mapping))
    if form_year and live.writable(target.FORM_YEAR) and target.FORM_YEAR not in columns:
        columns.append(target.FORM_YEAR)
        values.append(
            sql.SQL("(SELECT c.{} FROM {} AS c)").format(sql.Identifier(target.FORM_YEAR), sql.Identifier(CONSTANTS))
        )
    compared = [c for c in columns if c not in dataset.natural_key]
    if live.writable(target.SOURCE_IMPORT) and target.SOURCE_IMPORT not in columns:
        columns.append(target.SOURCE_IMPORT)
        values.append(sql.Literal(f.import_id))
    return Load(columns, values, compared)


def filings_to_link(conn, dataset: Dataset, live: target.LiveTable) -> target.LiveTable | None:
    if dataset.name != "F_SCH_A" or not live.writable("filing_id"):
        return None
    filings = target.inspect(conn, DATASETS["F_5500"].table)
    return filings if filings is not None and filings.has("filing_id") and filings.has("ack_id") else None


def insert_new(f: FileImport, load: Load) -> tuple[int, int]:
    """The fresh load: no staged key exists in the tables and none repeats in the file, so every
    good row is new. One INSERT ... SELECT over the staging table writes the rows the validation
    passes (the same `validate.problems` expression, evaluated on the way); its RETURNING gives
    the count and checksum of the keys written. Only when fewer than the staged rows were written
    do the others go to the errors table (`validate.quarantine`, the same expression). Proof: the
    keys written are exactly the staged keys that were not quarantined (count and checksum), else
    roll back. Returns (written, quarantined)."""
    conn, dataset, live, keys = f.conn, f.dataset, f.live, f.keys
    rows = validate.checked(f, sql.SQL("s.*"), sql.SQL("false"))
    written, checksum = conn.execute(
        sql.SQL(raw_template("dol/import/insert_new")).format(
            live=qualified(live.name),
            columns=sql.SQL(", ").join(map(sql.Identifier, load.columns)),
            values=sql.SQL(", ").join(load.values),
            rows=rows,
            problems=validate.problems(f),
            keys=sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key)),
            hash=validate.key_hash(dataset, "w"),
        )
    ).fetchone()
    bad, expected = 0, keys
    if written != keys.rows:
        bad = validate.quarantine(f, repeated=False)
        expected = validate.staged_keys(conn, dataset)
    if (written, int(checksum)) != (expected.rows, expected.checksum) or written + bad != keys.rows:
        raise BadInput(
            f"{f.source.name}: {keys.rows} rows staged, {bad} quarantined, but {written} written to {live.name} with "
            "other keys than the staged ones: rolled back"
        )
    return written, bad


def upsert(f: FileImport, load: Load, rows: str = STAGE) -> tuple[int, int, int]:
    """(inserted, updated, already superseded). Matched by the natural key; a row whose values
    did not change is not rewritten; a filing already superseded by an amendment stays there; the
    row a correction replaces is kept in ple_ops.dol_row_history (so updated = rows kept there).
    `rows`: the staged rows to write (CHANGED: those whose fingerprint differs from the stored one);
    already superseded counts every staged row."""
    conn, dataset, live, superseded = f.conn, f.dataset, f.live, f.superseded.name
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
        sql.SQL(raw_template("dol/import/update")).format(
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
        {"table": live.name, "import_id": f.import_id, "file": f.source.name},
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
