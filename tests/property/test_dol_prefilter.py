"""The record prefilter changes what a refresh costs, never what it does (issue 22, item 4).

Hypothesis writes a sequence of republished files of one plan year from the real F_5500 slice:
corrections (values with quotes, commas and line breaks), corrections taken back, rows dropped
and added, amendments of a plan (the original is superseded), a row repeated byte for byte, a key
repeated with other content, rows the validation refuses, other orders, rows quoted otherwise,
line ends LF, CRLF, CR or mixed; and between files the owner changes live rows or someone removes
them. Each file is imported into two databases holding the live-shaped DOL tables with every
guard: one with the prefilter, one staging every record as before it. After every file, the two databases hold the
same rows in the live, superseded, history and errors tables, and the import reports the same
accounting; every row of every file is accounted.
"""

from __future__ import annotations

import contextlib
import itertools
import os

import psycopg
from hypothesis import event, given
from hypothesis import strategies as st

from ple import config
from ple.dol import files, importer
from ple.dol.importer import prefilter
from ple_dev import embedded_pg
from ple_dev.fixture.production.dol import create_dol_tables
from tests.integration.dol.corpus import real_rows, renumbered, with_value
from tests.property.conftest import property_settings

HEADER, BASE = real_rows(30)
_databases = itertools.count(1)
_examples = itertools.count(1001)  # each example's filings have ACK_IDs of their own
REPORTED = (  # all but staged_rows: what the prefilter saves
    "data_rows", "error_rows", "inserted", "updated", "unchanged", "superseded",
    "already_superseded", "live_rows", "superseded_rows", "history_rows",
)  # fmt: skip
VOLATILE = "'filing_id', 'created_at', 'updated_at', 'superseded_at'"

# A value a correction writes: CSV's hard cases included
value = st.text(alphabet=st.sampled_from('ab ,"\n\r;Z'), min_size=1, max_size=12).map(str.strip).filter(bool)
edit = st.one_of(
    st.tuples(st.just("correct"), st.integers(0, 99), st.sampled_from(["PLAN_NAME", "SPONS_DFE_MAIL_US_CITY"]), value),
    st.tuples(st.just("revert"), st.integers(0, 99)),
    st.tuples(st.just("drop"), st.integers(0, 99)),
    st.tuples(st.just("add"), st.integers(0, 99)),
    st.tuples(st.just("amend"), st.integers(0, 99)),
    st.tuples(st.just("repeat"), st.integers(0, 99)),
    st.tuples(st.just("conflict"), st.integers(0, 99), value),
    st.tuples(st.just("refuse"), st.integers(0, 99)),
    st.tuples(st.just("shuffle"), st.randoms(use_true_random=False)),
    st.tuples(st.just("requote"), st.integers(0, 99)),  # the same values, every field quoted
    st.tuples(st.just("owner"), st.integers(0, 99)),  # the owner changes the live row
    st.tuples(st.just("vanish"), st.integers(0, 99)),  # someone removes the live row
)
LINE_ENDS = {"lf": "\n", "crlf": "\r\n", "cr": "\r", "mixed": "\n"}
version = st.tuples(
    st.lists(edit, max_size=4), st.sampled_from(["lf", "lf", "lf", "crlf", "cr", "mixed"])
)  # edits, line ends


def _apply(rows: list[list[str]], edits, added: itertools.count, originals: dict):
    """The next version of the file's rows, the rows written with every field quoted, and what
    happens to the live rows before it is imported ((owner|vanish, ACK_ID)); `originals`: each
    key's row in the first version."""
    rows = [list(r) for r in rows]
    quoted: set[str] = set()
    outside: list[tuple[str, str]] = []
    for e in edits:
        if not rows:
            break
        i = e[1] % len(rows) if isinstance(e[1], int) else 0
        match e[0]:
            case "correct":
                rows[i] = with_value(HEADER, rows[i], e[2], e[3])
            case "revert":
                rows[i] = list(originals.get(rows[i][0], rows[i]))
            case "drop":
                del rows[i]
            case "add":
                rows.append(renumbered(HEADER, [rows[i]], next(added))[0])
            case "amend":  # the same plan and plan year filed again, received later
                amended = renumbered(HEADER, [rows[i]], next(added))[0]
                rows.append(with_value(HEADER, amended, "DATE_RECEIVED", "2030-12-31"))
            case "repeat":
                rows.append(list(rows[i]))
            case "conflict":
                rows.append(with_value(HEADER, rows[i], "PLAN_NAME", e[2]))
            case "refuse":
                rows[i] = with_value(HEADER, rows[i], "SPONS_DFE_EIN", "12AB")
            case "shuffle":
                e[1].shuffle(rows)
            case "requote":
                quoted.add(rows[i][0])
            case "owner" | "vanish":
                outside.append((e[0], rows[i][0]))
    return rows, quoted, outside


def _write(path, rows: list[list[str]], quoted: set[str], line_end: str):
    """The file as a CSV writer writes it (a value quoted when it holds a comma, a quote or a
    line break), the rows of `quoted` with every field quoted, each line ending in `line_end`
    ("mixed": LF, one line CRLF)."""

    def field(value: str, always: bool) -> str:
        return '"' + value.replace('"', '""') + '"' if always or any(c in value for c in ',"\r\n') else value

    lines = [",".join(field(v, False) for v in HEADER)]
    lines += [",".join(field(v, r[0] in quoted) for v in r) for r in rows]
    ends = [LINE_ENDS[line_end]] * len(lines)
    if line_end == "mixed":
        ends[len(lines) // 2] = "\r\n"
    path.write_bytes("".join(line + end for line, end in zip(lines, ends, strict=True)).encode())
    return path


def _outside(conn, what: str, ack_id: str) -> None:
    """What someone other than the import does to a live row (past the read-only guard)."""
    with conn.transaction():
        conn.execute("SELECT set_config(%s, %s, true)", (config.DOL_GUARD_SETTING, config.DOL_GUARD_VALUE))
        if what == "owner":
            conn.execute("UPDATE dol.form_5500 SET plan_name = 'OWNER FIXED' WHERE ack_id = %s", (ack_id,))
        else:
            conn.execute("DELETE FROM dol.form_5500 WHERE ack_id = %s", (ack_id,))


@contextlib.contextmanager
def _databases_pair(pg_server):
    names = [f"dol_prefilter_{os.getpid()}_{next(_databases)}" for _ in range(2)]
    try:
        conns = []
        for name in names:
            conn = psycopg.connect(embedded_pg.create_database(pg_server, name), autocommit=True)
            create_dol_tables(conn)
            conns.append(conn)
        yield conns
    finally:
        for conn in conns:
            conn.close()
        for name in names:
            embedded_pg.drop_database(pg_server, name)


def _state(conn) -> dict:
    def rows(query: str) -> list:
        return [r[0] for r in conn.execute(query).fetchall()]

    return {
        table: rows(f"SELECT to_jsonb(t) - ARRAY[{VOLATILE}] FROM {table} t ORDER BY t.ack_id")
        for table in ("dol.form_5500", "dol.form_5500_superseded")
    } | {
        "history": rows(
            "SELECT jsonb_build_array(natural_key, replaced_row - ARRAY["
            + VOLATILE
            + "], replaced_by_import_id, replaced_by_file) FROM ple_ops.dol_row_history ORDER BY history_id"
        ),
        "errors": rows(
            "SELECT jsonb_build_array(import_id, record_no, reason, raw_line) FROM ple_ops.dol_import_error "
            "ORDER BY import_id, record_no"
        ),
    }


def _without_prefilter(f) -> bool:
    return False


@property_settings()
@given(versions=st.lists(version, min_size=1, max_size=3))
def test_a_refresh_with_the_prefilter_does_what_one_without_it_does(pg_server, tmp_path, monkeypatch, versions):
    example = next(_examples)
    added = itertools.count(example * 1000)
    rows = [with_value(HEADER, r, "ACK_ID", f"{example}" + r[0][4:]) for r in BASE]
    originals = {r[0]: r for r in rows}
    with _databases_pair(pg_server) as (with_it, without_it):
        for n, (edits, line_end) in enumerate([([], "lf"), *versions]):
            rows, quoted, outside = _apply(rows, edits, added, originals)
            for what, ack_id in outside:
                for conn in (with_it, without_it):
                    _outside(conn, what, ack_id)
            source = files.Input(_write(tmp_path / f"f_5500_2019_e{example}_v{n}.csv", rows, quoted, line_end))
            first = importer.import_file(with_it, source, f"n{n}")
            with monkeypatch.context() as m:
                m.setattr(prefilter, "stage_changed", _without_prefilter)
                second = importer.import_file(without_it, source, f"n{n}")
            assert first.status == second.status
            event(f"{first.status} {first.path or ''}")  # how often the prefilter staged the changed records alone
            if first.status != "imported":
                continue
            assert {k: getattr(first, k) for k in REPORTED} == {k: getattr(second, k) for k in REPORTED}, (
                first.message,
                second.message,
            )
            assert first.live_rows + first.superseded_rows + first.error_rows == first.data_rows
            # lines that end differently are read by the careful path's reader, which ends a record
            # at any line end: a quoted line break then counts records its own way (error rows)
            assert first.data_rows == len(rows) or first.path == second.path == "careful"
            assert _state(with_it) == _state(without_it)
