"""The record prefilter changes what a refresh costs, never what it does (issue 22, item 4).

Hypothesis writes a sequence of republished files of one plan year from the real F_5500 slice:
corrections (values with quotes, commas and line breaks), corrections taken back, rows dropped
and added, amendments of a plan (the original is superseded), a row repeated byte for byte, a key
repeated with other content, rows the validation refuses, other orders, CRLF line ends. Each file
is imported into two databases holding the live-shaped DOL tables with every guard: one with the
prefilter, one staging every record as before it. After every file, the two databases hold the
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

from ple.dol import files, importer
from ple.dol.importer import prefilter
from ple_dev import embedded_pg
from ple_dev.fixture.production.dol import create_dol_tables
from tests.integration.dol.corpus import real_rows, renumbered, with_value, write_csv
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
)
version = st.tuples(st.lists(edit, max_size=4), st.booleans())  # the edits, CRLF line ends


def _apply(rows: list[list[str]], edits, added: itertools.count, originals: dict) -> list[list[str]]:
    """The next version of the file's rows; `originals`: each key's row in the first version."""
    rows = [list(r) for r in rows]
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
    return rows


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
        for n, (edits, crlf) in enumerate([([], False), *versions]):
            rows = _apply(rows, edits, added, originals)
            path = write_csv(tmp_path / f"f_5500_2019_e{example}_v{n}.csv", HEADER, rows)
            if crlf:
                path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
            source = files.Input(path)
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
            # a bare CR in an unquoted value (csv.writer quotes only the line terminator, LF here)
            # ends a record for the careful path's reader: the pieces are error rows, counted
            assert first.data_rows == len(rows) or first.path == second.path == "careful"
            assert _state(with_it) == _state(without_it)
