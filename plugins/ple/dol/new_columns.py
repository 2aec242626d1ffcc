"""Adding the columns a DOL file has and its live table lacks: an explicit, approved schema change.

By default a header the live table lacks goes to the row's `extras` (when the table has that
column) or is reported and dropped from the load, and the import runs no DDL. Adding such columns
changes the hottest tables' shape, so it needs a person's approval of exactly what will be added:
the list of `table.column type` the files would add, computed read-only from their headers against
the live tables (`planned`), fingerprinted (subject `dol_add_columns`) and recorded through
`ple.approval`. The import re-checks the approval in the transaction that runs the DDL, adds only
approved columns (one `ALTER TABLE` per table under a lock timeout, the superseded twin alike), and
a later run that finds the columns present plans nothing, needs no approval and runs no DDL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from ple import approval
from ple.dol import files, target
from ple.dol.layouts import all_datasets
from ple.errors import NotApproved

SUBJECT = "dol_add_columns"
APPROVE_HOW = "`python -m ple.cli approve --approver <name> --dol-columns <landing folder or files>`"


@dataclass(frozen=True, order=True)
class Addition:
    """One column to add: the live table, the column and its type (from the layouts, else text)."""

    table: str
    column: str
    type: str

    def describe(self) -> str:
        return f"{self.table}.{self.column} {self.type}"


def for_file(conn: psycopg.Connection, source: files.Input) -> list[Addition]:
    """The columns this file would add to its live table (none when the table does not exist yet:
    a fresh table is created from the layouts with an `extras` column)."""
    encoding = "utf-8" if files.scan(source).utf8 else files.detect_encoding(source)
    header = files.read_header(source, encoding)
    dataset_name = files.detect_dataset(header) if header and header != [""] else None
    if dataset_name is None:
        return []
    dataset = all_datasets()[dataset_name]
    live = target.inspect(conn, dataset.table)
    if live is None:
        return []
    return additions(dataset, live, target.map_header(dataset, live, header).missing)


def additions(dataset, live: target.LiveTable, names: Iterable[str]) -> list[Addition]:
    return sorted(
        {
            Addition(live.name, name.lower(), target.layout_type(dataset, name) or "text")
            for name in names
            if target.plain_column(name.lower())
        }
    )


def planned(conn: psycopg.Connection, sources: Iterable[files.Input]) -> list[Addition]:
    """Read-only: every column the given files would add, over all of them, sorted."""
    return sorted({a for source in sources for a in for_file(conn, source)})


def fingerprint(planned_additions: Iterable[Addition]) -> approval.Fingerprint:
    listed = [a.describe() for a in sorted(planned_additions)]
    return approval.Fingerprint(
        SUBJECT, {"columns": hashlib.sha256(json.dumps(listed).encode()).hexdigest(), "count": str(len(listed))}
    )


def approve(
    conn, planned_additions: list[Addition], approver: str, *, via: str = "cli", note: str | None = None
) -> int:
    return approval.approve(
        conn,
        fingerprint(planned_additions),
        approver,
        via=via,
        note=note,
        details={"columns": [a.describe() for a in planned_additions]},
    )


def require(conn, planned_additions: list[Addition]) -> dict:
    """The recorded approval of exactly these additions, or NotApproved naming the command."""
    found = approval.current(conn, fingerprint(planned_additions))
    if found is None:
        raise NotApproved(
            "adding columns to the DOL tables needs an approval of exactly these columns: "
            + ", ".join(a.describe() for a in planned_additions)
            + f". Nothing was written. Review them, then approve with {APPROVE_HOW} (the same files), and run again; "
            "or run without add_columns (they are then reported and dropped from the load)"
        )
    return found


def from_dicts(items: Iterable[dict]) -> list[Addition]:
    """Additions passed between tasks (XCom) as plain dicts."""
    return sorted(Addition(i["table"], i["column"], i["type"]) for i in items)


def as_dicts(planned_additions: Iterable[Addition]) -> list[dict]:
    return [{"table": a.table, "column": a.column, "type": a.type} for a in planned_additions]
