"""Where the decisions in force live, and what of them an approval covers: the latest
`ple_ops.decision_version` of the database or, before any is recorded, its decisions file.

Small and below everything that writes: every apply transaction re-reads the decisions in force
(`require_in_force`, from reorg/context.hold) so a run that started under an earlier version
stops before it carries out anything the new version changed. The parsing and meaning of the
decisions are in reorg/decisions.py.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import psycopg

from ple.config import INCLUDE_DIR
from ple.errors import NotApproved, PlanRejected

DECISIONS_DIR_ENV = "PLE_DECISIONS_DIR"
DEFAULT_DIR = INCLUDE_DIR / "plan" / "decisions"
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


class DecisionsRejected(PlanRejected):
    """The decisions file is not valid: nothing runs until it is fixed."""


def directory() -> Path:
    return Path(os.environ.get(DECISIONS_DIR_ENV) or DEFAULT_DIR)


def path_for(database: str) -> Path:
    if not DATABASE_NAME.match(database or ""):
        raise DecisionsRejected(f"database name {database!r} cannot name a decisions file")
    return directory() / f"{database}.yaml"


def _recorded(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('ple_ops.decision_version') IS NOT NULL").fetchone()[0]


def stored(conn: psycopg.Connection) -> tuple[int, str] | None:
    """(version, YAML) of the decisions in force in the database, or None when none is recorded."""
    if not _recorded(conn):
        return None
    return conn.execute(
        "SELECT version, content FROM ple_ops.decision_version ORDER BY version DESC LIMIT 1"
    ).fetchone()


def approval_part(version: int | None, sha256: str | None) -> str:
    """The decisions' part of the approval fingerprint: the version with its content (so recording
    earlier content again, a new version, does not revive approvals the version between voided);
    a file read before any version is recorded: its SHA-256; nothing decided: 'none'."""
    if sha256 is None:
        return "none"
    return f"v{version}:{sha256}" if version is not None else sha256


def in_force(conn: psycopg.Connection) -> str:
    """`approval_part` of the decisions in force now (one indexed row, or the file's bytes)."""
    row = (
        conn.execute("SELECT version, sha256 FROM ple_ops.decision_version ORDER BY version DESC LIMIT 1").fetchone()
        if _recorded(conn)
        else None
    )
    if row:
        return approval_part(*row)
    path = path_for(conn.info.dbname)
    return approval_part(None, hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None)


def require_in_force(conn: psycopg.Connection, approved: str | None) -> None:
    """A run reads the decisions once, when it starts; a new version recorded while it runs stops
    it at its next transaction, before it carries out what the new version may have changed."""
    now = in_force(conn)
    if approved is not None and now != approved:
        raise NotApproved(
            f"the decisions changed since this run read them (approved {approved[:16]}, in force now {now[:16]}): "
            "nothing more runs under the earlier decisions. Review the decisions in force, approve them, and run again"
        )
