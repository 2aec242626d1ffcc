"""Input files: what is in the landing folder, what each holds, in which encoding.

A DOL dataset arrives as a CSV or as a zip archive holding one (DOL publishes zips). Every CSV,
loose or zipped, is one *input*, identified by the SHA-256 of its bytes: the same data imported
again, under another name or inside a zip, is recognised and skipped.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ple.dol.layouts import layout_datasets, union_fields

CHUNK = 1 << 20
UTF8_BOM = codecs.BOM_UTF8
YEAR_IN_NAME = re.compile(r"(?<!\d)(20[0-4]\d|19\d\d)(?!\d)")

# A header column that only one dataset has tells which dataset a file is.
DATASET_MARKERS = (
    ("F_5500_SF", {"SF_PLAN_NAME", "SF_SPONS_EIN", "SF_SPONSOR_NAME"}),
    ("F_SCH_A", {"INS_CARRIER_NAME", "INS_CONTRACT_NUM", "SCH_A_EIN"}),
    ("F_5500", {"SPONSOR_DFE_NAME", "SPONS_DFE_EIN", "TYPE_PLAN_ENTITY_CD"}),
)


@dataclass(frozen=True)
class Input:
    """One CSV to import: a file, or a member of a zip."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.member}" if self.member else self.path.name

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if self.member is None:
            with self.path.open("rb") as handle:
                yield handle
        else:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                yield handle

    def form_year_from_name(self) -> int | None:
        match = YEAR_IN_NAME.search(Path(self.member or self.path.name).name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Skipped:
    """Something in the landing folder that is not an input, and why."""

    name: str
    reason: str


def discover(landing_dir: Path) -> tuple[list[Input], list[Skipped]]:
    """Every CSV in the folder and in its zips (sorted: deterministic order); the rest reported."""
    inputs: list[Input] = []
    skipped: list[Skipped] = []
    for path in sorted(p for p in Path(landing_dir).iterdir() if p.is_file() and not p.name.startswith(".")):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            inputs.append(Input(path))
        elif suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    for info in archive.infolist():
                        if info.is_dir():
                            continue
                        if info.filename.lower().endswith(".csv"):
                            inputs.append(Input(path, info.filename))
                        else:
                            skipped.append(Skipped(f"{path.name}:{info.filename}", "zip member is not a CSV"))
            except zipfile.BadZipFile as exc:
                skipped.append(Skipped(path.name, f"not a readable zip archive: {exc}"))
        else:
            skipped.append(Skipped(path.name, f"not a CSV or zip ({suffix or 'no extension'})"))
    return inputs, skipped


@dataclass(frozen=True)
class Scan:
    """What one pass over a file's bytes tells: identity, size, lines, whether it is UTF-8."""

    sha256: str
    size: int
    data_lines: int  # newline-terminated lines after the header (+1 for a last line without one)
    utf8: bool


def scan(source: Input) -> Scan:
    """One streaming pass: checksum, size, line count and a UTF-8 check (constant memory)."""
    digest, size, lines, last = hashlib.sha256(), 0, 0, b""
    decoder, utf8 = codecs.getincrementaldecoder("utf-8")(), True
    with source.open() as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            # ASCII is UTF-8 (most DOL files are ASCII throughout): only other bytes, or a
            # multi-byte character cut by the previous chunk, need the decoder
            if utf8 and (not chunk.isascii() or decoder.getstate()[0]):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if last and last != b"\n":
        lines += 1
    return Scan(digest.hexdigest(), size, max(lines - 1, 0), utf8)


def detect_encoding(source: Input) -> str:
    """utf-8 (a BOM is stripped) when every byte decodes; else cp1252 if that decodes; else latin-1,
    which decodes anything. Importers disagree about DOL's encoding; this keeps every byte."""
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with source.open() as handle:
                while chunk := handle.read(CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def read_header(source: Input, encoding: str) -> list[str] | None:
    with source.open() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
        try:
            return next(csv.reader(text))
        except StopIteration:
            return None


def detect_dataset(header: list[str]) -> str | None:
    """The dataset of a header: the filings and Schedule A by a column only they have; any other
    dataset with a layout when every column of the header is in its layout but ACK_ID, FORM_ID,
    ROW_ORDER (the one whose layout has most of them; a new DOL column is tolerated when at least
    nine in ten are known). None: no known layout."""
    names = {h.strip().lstrip("\ufeff").upper() for h in header} - {""}
    for dataset, markers in DATASET_MARKERS:
        if names & markers:
            return dataset
    if "ACK_ID" not in names:
        return None
    common = {"ACK_ID", "FORM_ID", "ROW_ORDER"}
    best = None
    for dataset in layout_datasets():
        fields = {f.name for f in union_fields(dataset)}
        known = len(names & fields)
        if not (names - common) & fields or known * 10 < len(names) * 9:
            continue
        score = (known, -len(fields))
        if best is None or score > best[0]:
            best = (score, dataset)
    return best[1] if best else None


def describe_header(header: list[str], limit: int = 2000) -> str:
    text = ", ".join(h.strip() for h in header)
    return text if len(text) <= limit else text[:limit] + " ..."


FETCH_STATE_DIR = ".dol_fetch_state"  # hidden: discover() looks at files, not folders
