"""The careful path: a streaming CSV reader that keeps every record's raw text.

Used when the raw COPY fast path cannot take a file as it is (unknown columns to keep as JSONB,
ragged or unparsable rows, bytes the declared encoding rejects). One record at a time, so memory
does not grow with the file; a bad record is returned with its raw text and the reason, never
dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from ple.dol.files import Input

csv.field_size_limit(8 * 1024 * 1024)  # long free-text fields exist (Schedule A: TEXT(1000))


@dataclass(frozen=True)
class Record:
    number: int  # 1 = the first data record after the header
    raw: str
    fields: list[str] | None  # None: the record could not be read as fields
    problem: str | None = None


def _lines(text: io.TextIOBase, consumed: list[str]) -> Iterator[str]:
    for line in text:
        consumed.append(line)
        yield line


def records(source: Input, encoding: str, width: int) -> Iterator[Record]:
    """Data records of a file whose header has `width` columns (the header itself is skipped)."""
    with source.open() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
        consumed: list[str] = []
        reader = csv.reader(_lines(text, consumed), strict=True)
        number = -1
        while True:
            consumed.clear()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield Record(number, "".join(consumed), None, f"unreadable CSV record: {exc}")
                continue
            number += 1
            if number == 0:
                continue  # the header
            raw = "".join(consumed)
            if not fields or fields == [""]:
                continue  # a blank line is not a record
            if len(fields) != width:
                yield Record(number, raw, None, f"ragged row: {len(fields)} fields, the header has {width}")
                continue
            yield Record(number, raw, fields)


def count_records(source: Input, encoding: str) -> int:
    """Exact CSV data records (slow path; for files with multi-line quoted fields)."""
    with source.open() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
        return max(sum(1 for fields in csv.reader(text) if fields and fields != [""]) - 1, 0)
