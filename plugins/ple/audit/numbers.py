"""The Phase 2C audit numbers, computed set-based in one read-only transaction."""

from __future__ import annotations

import psycopg

from ple.db import transaction
from ple.sqlutil import raw_template


def compute(conn: psycopg.Connection, lock_timeout: str = "2s") -> dict[str, int]:
    """Every audit number (see include/reference/phase_2c_audit_definitions.md).

    One REPEATABLE READ snapshot, so "CL claimed = spine" compares two counts of the same moment.
    """
    with transaction(conn, read_only=True, snapshot=True, lock_timeout=lock_timeout, statement_timeout="10min"):
        return {name: int(value) for name, value in conn.execute(raw_template("audit/phase_2c_numbers"))}
