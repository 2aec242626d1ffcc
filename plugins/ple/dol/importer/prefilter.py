"""The record prefilter: a refresh stages only the records whose bytes changed.

Why: a refresh of DOL's republished "latest" file changes about 1% of its records, but reading
the whole file into the database and fingerprinting its rows there cost more than COPY of the
whole file (measured: 1.03 s + 1.09 s against a 1.90 s floor, F_5500_SF). Splitting the file into
records and hashing each in Python costs a ninth of that floor.

Each data record's digest is BLAKE2b-128 of its bytes (its line terminator left out), keyed by the
import's context: the live table and every column of it as the catalog declares it, the header's
mapping onto it, the form year, the encoding, the header's bytes and this module's version. Same
bytes in the same context make the same row. The import keeps, by natural key, the digest of the
record that last wrote that key (ple_ops.dol_rd_<schema>_<table>, the tool's own schema: no DDL on
the live tables). A record whose digest is stored for a key that is still in the live or the
superseded table is *unchanged* and is not staged; only the others are, with their own record
numbers, and go through the usual validate, write, supersede and prove stages. The unchanged
records are still accounted (probed in the live and superseded tables) by `prove`.

The prefilter gives way to staging the whole file (the results are the same; only the cost
differs) whenever it cannot be sure: the file name has no form year, a record is blank, a
record holds a carriage return or the lines end differently (COPY refuses such a file and the
careful path's reader splits it its own way), two unchanged records are the same bytes (a
repeated key: the validation must see both), a changed record's key is also an unchanged
record's key (the same), more than a fifth of the records changed, or COPY refuses the changed
records. Whatever way the rows were staged, the store is brought up to date in the import's
transaction: the staged good rows' digests are stored, or, when their digests are not known (the
careful path), their keys' stored digests are removed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import BinaryIO

from psycopg import sql

from ple import governance
from ple.dol import files, target
from ple.dol.importer import stage
from ple.dol.importer.state import DIGESTS, STAGE, UNCHANGED, FileImport, timed
from ple.sqlutil import qualified, raw_template

log = logging.getLogger(__name__)

VERSION = b"ple.dol.prefilter/1"  # a change to what a digest covers changes this: every record then counts as changed
CHANGED_SHARE = 0.2  # above this share of changed records, staging the whole file costs less


class GiveWay(Exception):
    """The prefilter cannot be sure: the whole file is staged instead."""


def split(handle: BinaryIO, chunk_size: int = files.CHUNK) -> Iterator[bytes]:
    """Each CSV record's bytes with its line end, split where PostgreSQL's COPY splits a file
    whose lines end in LF or CRLF: at a newline outside double quotes (quote parity; a doubled
    quote inside a quoted field counts twice). The first one is the header; the last one may have
    no line end. Streams in chunks: memory holds one chunk and the record being read."""
    pending: list[bytes] = []  # the current record's bytes from earlier chunks
    quotes = 0  # double quotes in the current record so far
    while chunk := handle.read(chunk_size):
        start = position = 0
        while (end := chunk.find(b"\n", position)) >= 0:
            quotes += chunk.count(b'"', position, end)
            position = end + 1
            if quotes % 2 == 0:
                yield b"".join([*pending, chunk[start:position]]) if pending else chunk[start:position]
                pending, quotes, start = [], 0, position
        quotes += chunk.count(b'"', position)
        pending.append(chunk[start:])
    last = b"".join(pending)
    if last:
        yield last


def body(record: bytes) -> tuple[bytes, bytes]:
    """(the record without its line end, the line end: CRLF, LF or nothing)."""
    if record.endswith(b"\r\n"):
        return record[:-2], b"\r\n"
    if record.endswith(b"\n"):
        return record[:-1], b"\n"
    return record, b""


def context(f: FileImport, header: bytes) -> bytes:
    """The key every digest of this file is made with: what decides how a record's bytes become a row."""
    described = repr(
        (
            f.live.name,
            sorted(f.live.columns.items()),
            f.mapping,
            f.dataset.natural_key,
            f.form_year,
            f.result.encoding,
        )
    ).encode()
    return hashlib.blake2b(VERSION + b"\0" + described + b"\0" + header, digest_size=32).digest()


def store_table(live: target.LiveTable) -> str:
    """ple_ops.dol_rd_<schema>_<table>: the digest of the record that last wrote each natural key."""
    return f"ple_ops.dol_rd_{live.name.replace('.', '_')}"


def digest_records(f: FileImport) -> None:
    """Every data record's digest into the temporary table DIGESTS (record_no, digest), numbered
    as COPY numbers the staged rows (1 = the first record after the header). Sets `f.records`.
    Raises GiveWay on a blank record (COPY and the careful path would not number it alike)."""
    conn = f.conn
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} (record_no bigint, digest uuid) ON COMMIT DROP").format(
            sql.Identifier(DIGESTS)
        )
    )
    number = 0
    with f.source.open() as handle, conn.cursor() as cur:
        records = split(handle)
        header, line_end = body(next(records, b"").removeprefix(files.UTF8_BOM))
        if b"\r" in header:
            raise GiveWay("a carriage return in the header (lines that end in CR alone)")
        key = context(f, header)
        lines: list[str] = []
        with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(DIGESTS))) as copy:
            for raw in records:
                record, end = body(raw)
                # COPY takes a file whose lines all end alike, and a CR only inside quotes; the
                # careful path (Python's CSV reader) ends a line at any of them: where the two
                # could read a record differently, the whole file is staged as before
                if end not in (line_end, b"") or b"\r" in record:
                    raise GiveWay("a carriage return inside a record, or lines that end differently")
                if not record.strip():
                    raise GiveWay("a blank record")
                number += 1
                lines.append(f"{number}\t{hashlib.blake2b(record, digest_size=16, key=key).hexdigest()}\n")
                if len(lines) >= 10_000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))
    f.records = number


def find_unchanged(f: FileImport) -> int:
    """The records whose digest is stored for a key still in the live or the superseded table,
    with their key and where it is (1 live, 2 superseded only), into UNCHANGED. Returns how many.
    Raises GiveWay when two of them are the same key (the same bytes twice in the file)."""
    conn, dataset = f.conn, f.dataset
    store = store_table(f.live)
    if conn.execute("SELECT to_regclass(%s) IS NULL", (store,)).fetchone()[0]:
        raise GiveWay("no record digests are stored yet")
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(DIGESTS)))

    def exists(table: str) -> sql.Composable:
        return sql.SQL("EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
            qualified(table),
            sql.SQL(" AND ").join(sql.SQL("t.{k} = r.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key),
        )

    unchanged = conn.execute(
        sql.SQL(raw_template("dol/import/unchanged")).format(
            unchanged=sql.Identifier(UNCHANGED),
            rkeys=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(k)) for k in dataset.natural_key),
            digests=sql.Identifier(DIGESTS),
            store=qualified(store),
            live=exists(f.live.name),
            superseded=exists(f.superseded.name),
        )
    ).rowcount
    repeated = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1)").format(
            sql.Identifier(UNCHANGED), sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
        )
    ).fetchone()[0]
    if repeated:
        raise GiveWay("a record repeats, byte for byte")
    # planned on real counts: unanalyzed, the collision check's join became a nested loop over
    # every unchanged record per changed one (3.3 s for 760 changed in 76,000, measured)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(UNCHANGED)))
    return unchanged


def stage_changed(f: FileImport) -> bool:
    """Stage only the records that changed, when the prefilter can be sure (see the module's
    docstring); False when the whole file must be staged instead (nothing is left behind then but
    the digests, which the store still needs)."""
    conn, result = f.conn, f.result
    if f.form_year is None:
        return False
    try:
        with conn.transaction(), timed(result, "digest"):  # a refused digest COPY rolls back alone
            digest_records(f)
    except GiveWay as why:
        log.info("%s: every record is staged (%s)", f.source.name, why)
        f.records = None
        return False
    try:
        with conn.transaction(), timed(result, "prefilter"):
            unchanged = find_unchanged(f)
            changed = [
                n
                for (n,) in conn.execute(
                    sql.SQL(
                        "SELECT d.record_no FROM {} AS d WHERE NOT EXISTS "
                        "(SELECT 1 FROM {} AS u WHERE u.record_no = d.record_no) ORDER BY 1"
                    ).format(sql.Identifier(DIGESTS), sql.Identifier(UNCHANGED))
                )
            ]
            if len(changed) > CHANGED_SHARE * f.records:
                raise GiveWay(f"{len(changed)} of {f.records} records changed")
            stage.create_stage(conn, f.live, f.mapping)
            f.staged = copy_records(f, changed)
            if collides(f):
                raise GiveWay("a changed record's key is also an unchanged record's key")
    except GiveWay as why:
        log.info("%s: every record is staged (%s)", f.source.name, why)
        return False
    except stage.COPY_REFUSALS as exc:
        log.info("%s: every record is staged (COPY refused a changed record: %s)", f.source.name, exc)
        return False
    f.unchanged = unchanged
    result.path = "prefilter"
    log.info(
        "%s: %d of %d records changed since the import last wrote them; only those staged",
        f.source.name,
        len(changed),
        f.records,
    )
    return True


def copy_records(f: FileImport, numbers: list[int]) -> int:
    """The records numbered `numbers` (ascending) into the staging table, each with its own record
    number: its bytes as they are, with the number appended as one more CSV field."""
    wanted = iter(numbers)
    next_wanted = next(wanted, None)
    columns = sql.SQL(", ").join(map(sql.Identifier, f.mapping.staging))
    statement = sql.SQL(
        "COPY {} ({}, record_no) FROM STDIN (FORMAT csv, NULL '', FORCE_NULL ({}), ENCODING {})"
    ).format(sql.Identifier(STAGE), columns, columns, sql.Literal(stage.PG_ENCODING[f.result.encoding]))
    with f.source.open() as handle, f.conn.cursor() as cur:
        with cur.copy(statement) as copy:
            records = split(handle)
            next(records, None)  # the header
            for number, record in enumerate(records, start=1):
                if next_wanted is None:
                    break
                if number == next_wanted:
                    copy.write(body(record)[0] + b"," + str(number).encode() + b"\n")
                    next_wanted = next(wanted, None)
        return cur.rowcount


def collides(f: FileImport) -> bool:
    """Whether a staged (changed) record's key is also an unchanged record's key."""
    f.conn.execute(
        sql.SQL("ANALYZE {} ({})").format(
            sql.Identifier(STAGE), sql.SQL(", ").join(map(sql.Identifier, f.dataset.natural_key))
        )
    )
    match = sql.SQL(" AND ").join(sql.SQL("u.{k} = s.{k}").format(k=sql.Identifier(k)) for k in f.dataset.natural_key)
    return f.conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} AS s JOIN {} AS u ON {})").format(
            sql.Identifier(STAGE), sql.Identifier(UNCHANGED), match
        )
    ).fetchone()[0]


def unchanged_places(f: FileImport) -> tuple[int, int]:
    """(unchanged records whose key is live, those whose key is only superseded), as found before the write."""
    if not f.unchanged:
        return 0, 0
    return f.conn.execute(
        sql.SQL("SELECT count(*) FILTER (WHERE place = 1), count(*) FILTER (WHERE place = 2) FROM {}").format(
            sql.Identifier(UNCHANGED)
        )
    ).fetchone()


def numbered(f: FileImport) -> bool:
    """Whether the staged rows carry the record numbers the digests were made with: staged by the
    prefilter, or by the fast COPY of the whole file (which numbers the records in file order)."""
    return f.records is not None and (
        f.result.path == "prefilter" or (f.result.path == "copy" and f.staged == f.records)
    )


def remember(f: FileImport) -> None:
    """Bring the store up to date with what this import wrote: the staged good rows' digests by
    key, when the staged rows carry the record numbers the digests were made with; otherwise those
    keys' stored digests are removed (a later file with the bytes they had is then staged again)."""
    conn, dataset = f.conn, f.dataset
    store = store_table(f.live)
    exists = not conn.execute("SELECT to_regclass(%s) IS NULL", (store,)).fetchone()[0]
    keys = sql.SQL(", ").join(map(sql.Identifier, dataset.natural_key))
    if not numbered(f):
        if exists:
            conn.execute(
                sql.SQL("DELETE FROM {} AS r USING {} AS s WHERE {}").format(
                    qualified(store),
                    sql.Identifier(STAGE),
                    sql.SQL(" AND ").join(
                        sql.SQL("r.{k} = s.{k}").format(k=sql.Identifier(k)) for k in dataset.natural_key
                    ),
                )
            )
        return
    skeys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in dataset.natural_key)
    if not exists:
        # the first import of the table fills the store, then builds its indexes (a fresh load of
        # 760,000 rows: 0.8 s instead of 3.7 s inserting into built indexes, measured)
        governance.register_before_create(
            conn, store, "SYSTEM", f"the DOL import's record digests of {f.live.name}", "dol_import"
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} AS SELECT {}, d.digest FROM {} AS s JOIN {} AS d ON d.record_no = s.record_no"
            ).format(qualified(store), skeys, sql.Identifier(STAGE), sql.Identifier(DIGESTS))
        )
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(qualified(store), keys))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN digest SET NOT NULL").format(qualified(store)))
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} (digest)").format(
                sql.Identifier(store.split(".")[1] + "_digest"), qualified(store)
            )
        )
        return
    conn.execute(
        sql.SQL(raw_template("dol/import/remember_digests")).format(
            store=qualified(store),
            keys=keys,
            skeys=skeys,
            stage=sql.Identifier(STAGE),
            digests=sql.Identifier(DIGESTS),
        )
    )
