"""Approvals: who approved exactly what, for which scope, re-checked in every transaction that changes data.

An approval binds a *subject* (the kind of run: the reorganization, the 2C cleanup, a revert) and a
*scope* (what the request showed: one phase, or the whole plan) to a *fingerprint*: one SHA-256 over
the scope and the named parts that decide what the run will do. For the reorganization those are
the plan file, the decisions of the database, and the code (the engine package and its SQL
templates), so editing any of them voids an approval exactly as editing the plan does. Approvals
live in the target database (`ple_ops.approval`), beside the ledger.

What an approval means (issue 21: an approval is never wider than what it showed):
- a phase's approval covers that phase only; an approval of the whole plan covers each of its phases;
- it authorises each scope it covers for **one run** (the first run that writes under it claims it,
  in the transaction of that write: `ple_ops.approval_use`); a later run asks again, unless the
  approval is *standing* (given explicitly as such); an approval given in answer to a run's request
  is bound to that run;
- a *rejection* vetoes its scope (a phase, or the whole plan: every phase) until a later approval;
- any approval or rejection can be revoked (who, when, why); a revoked approval stops the next
  transaction that re-checks it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ple.config import INCLUDE_DIR, REPO_ROOT
from ple.errors import BadInput, NotApproved
from ple.ops import ensure_schema
from ple.sqlutil import raw_template

REORGANIZATION = "reorganization"
CODE_ROOTS = (REPO_ROOT / "plugins" / "ple", INCLUDE_DIR / "sql")
CODE_SUFFIXES = (".py", ".sql")
DEVELOPMENT_SQL = INCLUDE_DIR / "sql" / "fixture"  # the fixture builder's DDL, never run in production
WHOLE_PLAN = "plan"
ALL = "all"  # the scope of a subject with nothing to scope (a cleanup preview, DOL columns)


@dataclass(frozen=True)
class Fingerprint:
    """What an approval covers: a subject, a scope and the SHA-256 of each part, combined into one."""

    subject: str
    parts: dict[str, str] = field(hash=False)
    scope: str = ALL

    @property
    def sha256(self) -> str:
        canonical = {"subject": self.subject, "parts": self.parts}
        if self.scope != ALL:
            canonical["scope"] = self.scope
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def scoped(self, scope: str) -> Fingerprint:
        return Fingerprint(self.subject, self.parts, scope)

    def covering(self) -> list[Fingerprint]:
        """This scope and the wider one whose approval also covers it (a phase: the whole plan)."""
        if self.scope.startswith("phase "):
            return [self, self.scoped(WHOLE_PLAN)]
        return [self]

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value[:12]}" for name, value in sorted(self.parts.items()))
        scope = "" if self.scope == ALL else f" [{self.scope}]"
        return f"{self.subject}{scope} {self.sha256[:12]} ({parts})"


def phase_scope(phase_id: str) -> str:
    return f"phase {phase_id}"


def code_files() -> list[Path]:
    """What the fingerprint's `code` part covers: every Python module of the shipped package and
    every SQL template. Development tooling (devtools/ple_dev: demo, local Airflow, embedded
    server, fixture; the fixture's DDL in include/sql/fixture) is outside it, so changing the demo never voids an approval."""
    return [
        path
        for root in CODE_ROOTS
        for path in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts)
        if not path.is_relative_to(DEVELOPMENT_SQL)
    ]


def code_sha256() -> str:
    """The engine as it is on disk (`code_files`)."""
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def reorganization(
    plan_sha256: str, decisions_sha256: str | None = None, answers_1l_sha256: str | None = None
) -> Fingerprint:
    """The whole plan's fingerprint (scope `plan`); `.scoped(phase_scope(p))` narrows it to a phase.
    `answers_1l_sha256`: the Phase 1L answers recorded in ple_ops (reorg/pending.py), a part only
    once an answer decides an action, so approvals given before any answer stay valid."""
    parts = {"plan": plan_sha256, "decisions": decisions_sha256 or "none", "code": code_sha256()}
    if answers_1l_sha256:
        parts["answers_1l"] = answers_1l_sha256
    return Fingerprint(REORGANIZATION, parts, WHOLE_PLAN)


def approve(
    conn: psycopg.Connection,
    fingerprint: Fingerprint,
    approver: str,
    *,
    via: str = "cli",
    note: str | None = None,
    details: dict | None = None,
    standing: bool = False,
    for_run: str | None = None,
) -> int:
    """Record an approval of `fingerprint`'s scope: for one run (bound to `for_run` when given),
    or standing (every run, until revoked)."""
    return _record(conn, fingerprint, approver, "approve", via, note, details, standing, for_run)


def reject(
    conn: psycopg.Connection,
    fingerprint: Fingerprint,
    approver: str,
    *,
    via: str = "cli",
    note: str | None = None,
    details: dict | None = None,
) -> int:
    """Record a rejection: the scope is vetoed (whatever its fingerprint) until a later approval."""
    return _record(conn, fingerprint, approver, "reject", via, note, details, False, None)


def _record(conn, fingerprint, approver, verdict, via, note, details, standing, for_run) -> int:
    if not approver or not approver.strip():
        raise NotApproved("an approval needs the approver's name")
    ensure_schema(conn)
    return conn.execute(
        "INSERT INTO ple_ops.approval (subject, scope, verdict, fingerprint, parts, approver, approved_via, "
        "note, details, standing, for_run) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING approval_id",
        (
            fingerprint.subject,
            fingerprint.scope,
            verdict,
            fingerprint.sha256,
            Jsonb(fingerprint.parts),
            approver.strip(),
            via,
            note,
            Jsonb({**(details or {}), "code_files": [str(p.relative_to(REPO_ROOT)) for p in code_files()]}),
            standing,
            for_run,
        ),
    ).fetchone()[0]


def record_request(
    conn: psycopg.Connection, dag_id: str, run_id: str, subject: str, fingerprint: Fingerprint, body: str
) -> None:
    """An approval request as it was shown (the console shows it for the run)."""
    ensure_schema(conn)
    conn.execute(
        "INSERT INTO ple_ops.approval_request (dag_id, run_id, subject, scope, fingerprint, body) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (dag_id, run_id, subject, fingerprint.scope, fingerprint.sha256, body),
    )


def requests_of(conn: psycopg.Connection, run_id: str) -> list[tuple]:
    """(dag, subject, scope, asked at, body) of every request a run raised."""
    if not conn.execute("SELECT to_regclass('ple_ops.approval_request') IS NOT NULL").fetchone()[0]:
        return []
    return conn.execute(
        "SELECT dag_id, subject, scope, asked_at, body FROM ple_ops.approval_request WHERE run_id = %s "
        "ORDER BY request_id",
        (run_id,),
    ).fetchall()


def revoke(conn: psycopg.Connection, approval_id: int, by: str, reason: str | None = None) -> dict:
    """Revoke an approval or a rejection. A revoked approval authorises nothing from the next
    transaction that re-checks it on; a revoked rejection no longer vetoes its scope."""
    if not by or not by.strip():
        raise BadInput("a revocation needs the name of who revokes")
    ensure_schema(conn)
    row = conn.execute(
        "UPDATE ple_ops.approval SET revoked_at = now(), revoked_by = %s, revoke_reason = %s "
        "WHERE approval_id = %s AND revoked_at IS NULL RETURNING approval_id, subject, scope, verdict",
        (by.strip(), reason, approval_id),
    ).fetchone()
    if row is None:
        found = conn.execute(
            "SELECT revoked_at, revoked_by FROM ple_ops.approval WHERE approval_id = %s", (approval_id,)
        ).fetchone()
        if found is None:
            raise BadInput(f"approval {approval_id}: no such approval in ple_ops.approval")
        raise BadInput(f"approval {approval_id} was already revoked by {found[1]} at {found[0].isoformat()}")
    return {"approval_id": row[0], "subject": row[1], "scope": row[2], "verdict": row[3]}


def _ready(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('ple_ops.approval_use') IS NOT NULL").fetchone()[0]


def listing(conn: psycopg.Connection, limit: int = 200) -> list[dict]:
    """Every approval and rejection, newest first, with the runs that wrote under each."""
    if not _ready(conn):
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(raw_template("ops/approvals_list"), {"limit": limit}).fetchall()


def covering(conn: psycopg.Connection, fingerprint: Fingerprint, run_id: str | None = None) -> list[dict]:
    """The approvals covering the scope, not revoked, not vetoed by a later rejection; newest first
    (`interrupted_by`: of `run_id`'s claim, see approvals_covering.sql)."""
    if not _ready(conn):
        return []
    wide = fingerprint.covering()
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            raw_template("ops/approvals_covering"),
            {
                "subject": fingerprint.subject,
                "scope": fingerprint.scope,
                "scopes": [f.scope for f in wide],
                "fingerprints": [f.sha256 for f in wide],
                "run_id": run_id,
            },
        ).fetchall()


def _usable(candidate: dict, run_id: str | None) -> bool:
    """Standing: always. Otherwise only by the run it is bound to (if any), and only by the run
    that first wrote under it for this scope, while no other run wrote to the scope since (a
    revert in between ends the claim: re-running the run does not apply the phase again);
    `run_id` None asks whether a new run could use it."""
    if candidate["standing"]:
        return True
    if candidate["for_run"] is not None and candidate["for_run"] != run_id:
        return False
    return candidate["interrupted_by"] is None and all(used == run_id for used in candidate["used_by"])


def current(conn: psycopg.Connection, fingerprint: Fingerprint, run_id: str | None = None) -> dict | None:
    """The newest approval this run may write under (see `_usable`), or None."""
    for candidate in covering(conn, fingerprint, run_id):
        if _usable(candidate, run_id):
            return {
                "approval_id": candidate["approval_id"],
                "approver": candidate["approver"],
                "via": candidate["approved_via"],
                "approved_at": candidate["approved_at"].isoformat(),
                "scope": candidate["scope"],
                "standing": candidate["standing"],
                "details": candidate["details"],
            }
    return None


def require(
    conn: psycopg.Connection,
    fingerprint: Fingerprint,
    how: str = "`make approve APPROVER=<name>`",
    *,
    run_id: str,
) -> dict:
    """The approval this run writes under, claimed for the scope in the caller's transaction (so
    the claim commits with the first write); or a NotApproved that says why."""
    approval = current(conn, fingerprint, run_id)
    if approval is None:
        raise NotApproved(_why_not(conn, fingerprint, how, run_id))
    conn.execute(  # the wall-clock time: claims are ordered by it (approvals_covering.sql)
        "INSERT INTO ple_ops.approval_use (approval_id, scope, run_id, first_used_at) "
        "VALUES (%s, %s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
        (approval["approval_id"], fingerprint.scope, run_id),
    )
    return approval


def _why_not(conn: psycopg.Connection, fingerprint: Fingerprint, how: str, run_id: str | None = None) -> str:
    head = f"no approval in force for {fingerprint.describe()} in ple_ops.approval; execution is BLOCKED"
    tail = (
        f"Review the plan output, then approve with {how}. Editing what the approval covers "
        "(plan, decisions, engine code) voids earlier approvals"
    )
    candidates = covering(conn, fingerprint, run_id)
    interrupted = [c for c in candidates if c["interrupted_by"] and not c["standing"]]
    if interrupted:
        c = interrupted[0]
        return (
            f"{head}: approval {c['approval_id']} ({c['scope']}, by {c['approver']}) authorised {fingerprint.scope} "
            f"once, for run {run_id}; run {c['interrupted_by']} wrote to {fingerprint.scope} since (a revert or "
            f"another apply), so that run is over: a new one asks again (or approve it as standing). {tail}"
        )
    used = [c for c in candidates if c["used_by"] or c["for_run"]]
    if used:
        c = used[0]
        by = f"run {c['used_by'][0]}" if c["used_by"] else f"the run whose request it answered ({c['for_run']})"
        return (
            f"{head}: approval {c['approval_id']} ({c['scope']}, by {c['approver']}) authorised "
            f"{fingerprint.scope} once, for {by}; a later run asks again (or approve it as standing). {tail}"
        )
    if _ready(conn):
        vetoed = conn.execute(
            "SELECT approval_id, approver, approved_at, scope FROM ple_ops.approval WHERE subject = %s "
            "AND verdict = 'reject' AND revoked_at IS NULL AND scope = ANY(%s) ORDER BY approval_id DESC LIMIT 1",
            (fingerprint.subject, [f.scope for f in fingerprint.covering()]),
        ).fetchone()
        if vetoed:
            return (
                f"{head}: {vetoed[3]} was rejected by {vetoed[1]} at {vetoed[2].isoformat()} (approval {vetoed[0]}) "
                f"and nobody approved it since. {tail}"
            )
    return f"{head} until approved. {tail}"
