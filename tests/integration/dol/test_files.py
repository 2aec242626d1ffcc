"""The one pass over a file's bytes before an import (checksum, size, lines, UTF-8 or not): the
UTF-8 check skips ASCII chunks, and still sees a character cut by a chunk boundary."""

from __future__ import annotations

import pytest

from ple.dol import files

A_CHUNK_BUT_ONE = b"A" * (files.CHUNK - 1)


@pytest.mark.parametrize(
    ("data", "utf8"),
    [
        (b"ACK_ID\n" + b"x" * (3 * files.CHUNK) + b"\n", True),  # ASCII only
        (A_CHUNK_BUT_ONE + "é".encode() + b"\nB\n", True),  # a 2-byte character across two chunks
        (A_CHUNK_BUT_ONE + "€".encode() + b"\nB\n", True),  # a 3-byte one
        (A_CHUNK_BUT_ONE + b"\xc3" + b"A\n", False),  # cut, then an ASCII chunk: not UTF-8
        (A_CHUNK_BUT_ONE + b"\xe9\n", False),  # cp1252 é
        (b"A" * files.CHUNK + b"\xc3", False),  # cut at the end of the file
    ],
)
def test_the_utf8_check_across_chunks(tmp_path, data, utf8):
    path = tmp_path / "f_5500_2023.csv"
    path.write_bytes(data)
    scanned = files.scan(files.Input(path))
    assert scanned.utf8 is utf8
    assert scanned.size == len(data)
    assert scanned.data_lines == data.count(b"\n") - 1 + (not data.endswith(b"\n"))
