"""Input files for the DOL import tests, written from the real F_5500 slice shipped in the project.

Each function writes one file that does what QUIRKS.md says real DOL files do to importers, and
returns what the import must make of it.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from ple.config import DOL_SAMPLE_DIR

REAL_2019 = DOL_SAMPLE_DIR / "f_5500_2019_dbplans_slice.csv"


def real_rows(limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    with REAL_2019.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1 : (limit + 1) if limit else None]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8", bom: bool = False) -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def column(header: list[str], name: str) -> int:
    return header.index(name)


def with_value(header, row, name, value) -> list[str]:
    row = list(row)
    row[column(header, name)] = value
    return row


def renumbered(header, rows, start: int) -> list[list[str]]:
    """Rows with fresh ACK_IDs (30 characters, DOL's shape), so files do not collide."""
    return [with_value(header, r, "ACK_ID", r[0][:17] + str(start + i).zfill(13)) for i, r in enumerate(rows)]


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
