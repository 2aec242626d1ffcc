"""The nightly audit's structural findings: what the database's own objects would do to any write,
reported beside the Phase 2C numbers (they are not numbers with thresholds, and fail nothing):
triggers left dangling by a drop, and where the owner's governance layer exists, its registry's
drift from the catalog in the owner's drift audit classes (governance.DRIFT_CLASSES; those that
need the owner's column registry file are named as not computed)."""

from __future__ import annotations

import psycopg

from ple import governance
from ple.catalog import dangling_triggers


def findings(conn: psycopg.Connection) -> list[str]:
    lines = [
        f"dangling trigger {trigger} on {table} ({function}) names {missing}, which does not exist: "
        "every write that fires it fails"
        for table, trigger, function, missing in dangling_triggers(conn)
    ]
    if governance.detect(conn):
        lines += [f"registry drift {line}" for line in governance.drift_lines(conn)]
    return lines
