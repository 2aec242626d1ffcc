"""The prefilter splits a file into records where COPY does (a newline outside double quotes),
whatever the values hold and wherever a read chunk ends: each piece is one record, whole, with
its line end."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from ple.dol.importer.prefilter import body, split

field = st.text(alphabet=st.sampled_from('ab,"\n\r Z;'), max_size=8)
row = st.lists(field, min_size=1, max_size=5).filter(lambda r: r != [""])  # a blank line is no record


def _quoted(value: str) -> str:
    """As a CSV writer quotes: a value holding a comma, a quote or a line break character."""
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


@given(rows=st.lists(row, min_size=1, max_size=12), crlf=st.booleans(), chunk=st.integers(1, 64), last=st.booleans())
def test_each_piece_is_one_record_whole(rows, crlf, chunk, last):
    data = "".join(",".join(map(_quoted, r)) + ("\r\n" if crlf else "\n") for r in rows).encode()
    if not last:
        data = data.removesuffix(b"\r\n" if crlf else b"\n")  # the last record without its line end
    pieces = list(split(io.BytesIO(data), chunk_size=chunk))
    assert [next(csv.reader(io.StringIO(p.decode(), newline=""))) if p else [""] for p in pieces] == rows


def test_a_quoted_line_break_does_not_end_a_record():
    data = b'A,B\r\n1,"two\r\nlines"\r\n3,"say ""hi""\n"\n4'
    pieces = list(split(io.BytesIO(data), chunk_size=3))
    assert pieces == [b"A,B\r\n", b'1,"two\r\nlines"\r\n', b'3,"say ""hi""\n"\n', b"4"]
    assert [body(p) for p in pieces] == [
        (b"A,B", b"\r\n"),
        (b'1,"two\r\nlines"', b"\r\n"),
        (b'3,"say ""hi""\n"', b"\n"),
        (b"4", b""),
    ]
