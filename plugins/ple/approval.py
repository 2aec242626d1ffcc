"""Approvals: who approved exactly what, re-checked in every transaction that changes data.

An approval binds a *subject* (the kind of run: the reorganization, the 2C cleanup, a revert) to a
*fingerprint*: one SHA-256 over the named parts that decide what the run will do. For the
reorganization those are the plan file, the decisions file of the database, and the code (the
engine package and its SQL templates), so editing any of them voids an approval exactly as editing
the plan does. Approvals live in the target database (`ple_ops.approval`), beside the ledger.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from ple.config import INCLUDE_DIR, REPO_ROOT
from ple.errors import NotApproved
from ple.ops import ensure_schema

REORGANIZATION = "reorganization"
CODE_ROOTS = (REPO_ROOT / "plugins" / "ple", INCLUDE_DIR / "sql")
CODE_SUFFIXES = (".py", ".sql")


@dataclass(frozen=True)
class Fingerprint:
    """What an approval covers: a subject and the SHA-256 of each part, combined into one."""

    subject: str
    parts: dict[str, str] = field(hash=False)

    @property
    def sha256(self) -> str:
        canonical = json.dumps({"subject": self.subject, "parts": self.parts}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value[:12]}" for name, value in sorted(self.parts.items()))
        return f"{self.subject} {self.sha256[:12]} ({parts})"


def code_sha256() -> str:
    """The engine as it is on disk: every Python module of the package and every SQL template."""
    digest = hashlib.sha256()
    for root in CODE_ROOTS:
        for path in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def reorganization(
    plan_sha256: str, decisions_sha256: str | None = None, answers_1l_sha256: str | None = None
) -> Fingerprint:
    """`answers_1l_sha256`: the Phase 1L answers recorded in ple_ops (reorg/pending.py), a part only
    once an answer decides an action, so approvals given before any answer stay valid."""
    parts = {"plan": plan_sha256, "decisions": decisions_sha256 or "none", "code": code_sha256()}
    if answers_1l_sha256:
        parts["answers_1l"] = answers_1l_sha256
    return Fingerprint(REORGANIZATION, parts)


def approve(
    conn: psycopg.Connection,
    fingerprint: Fingerprint,
    approver: str,
    *,
    via: str = "cli",
    note: str | None = None,
    details: dict | None = None,
) -> int:
    if not approver or not approver.strip():
        raise NotApproved("an approval needs the approver's name")
    ensure_schema(conn)
    return conn.execute(
        "INSERT INTO ple_ops.approval (subject, fingerprint, parts, approver, approved_via, note, details) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING approval_id",
        (
            fingerprint.subject,
            fingerprint.sha256,
            Jsonb(fingerprint.parts),
            approver.strip(),
            via,
            note,
            Jsonb(details or {}),
        ),
    ).fetchone()[0]


def current(conn: psycopg.Connection, fingerprint: Fingerprint) -> dict | None:
    if not conn.execute("SELECT to_regclass('ple_ops.approval') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(
        "SELECT approval_id, approver, approved_via, approved_at FROM ple_ops.approval "
        "WHERE subject = %s AND fingerprint = %s AND revoked_at IS NULL ORDER BY approval_id DESC LIMIT 1",
        (fingerprint.subject, fingerprint.sha256),
    ).fetchone()
    if row is None:
        return None
    return {"approval_id": row[0], "approver": row[1], "via": row[2], "approved_at": row[3].isoformat()}


def require(conn: psycopg.Connection, fingerprint: Fingerprint, how: str = "`make approve APPROVER=<name>`") -> dict:
    approval = current(conn, fingerprint)
    if approval is None:
        raise NotApproved(
            f"no recorded approval of {fingerprint.describe()} in ple_ops.approval; execution is BLOCKED "
            f"until approved. Review the plan output, then approve with {how}. Editing what the approval "
            "covers (plan, decisions, engine code) voids earlier approvals"
        )
    if fingerprint.subject == REORGANIZATION:
        _answers_unchanged(conn, fingerprint)
    return approval


def _answers_unchanged(conn: psycopg.Connection, fingerprint: Fingerprint) -> None:
    """A run reads the 1L answers once, when it starts; the answers live in the database and may
    change while it runs. Every transaction that re-checks the approval re-reads them, so a run never
    carries out an answer that is no longer in force (pending.record takes the same advisory lock)."""
    from ple.reorg import pending

    in_force = pending.sha256(pending.latest(conn))
    if in_force != fingerprint.parts.get("answers_1l"):
        raise NotApproved(
            f"the Phase 1L answers changed since this run read them (approved {fingerprint.parts.get('answers_1l')}, "
            f"in force now {in_force}): nothing more runs under the earlier answers. Review the answers in force "
            "(`python -m ple.cli decide-1l`), approve them, and run again"
        )
