"""The nightly audit's structural findings: what the database's own objects would do to any write,
reported beside the Phase 2C numbers (they are not numbers with thresholds, and fail nothing):
triggers left dangling by a drop, and where the owner's governance layer exists, its registry's
drift from the catalog (the owner's drift audit classes: registered but gone, present but not
registered)."""

from __future__ import annotations

from collections import defaultdict

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
        drift: dict[str, list[str]] = defaultdict(list)
        for kind, name in governance.drift(conn):
            drift[kind].append(name)
        lines += [f"registry drift ({kind}): {len(names)}: {', '.join(names[:10])}" for kind, names in drift.items()]
    return lines
