"""Preview, approval and apply: the cleanup runs only as its approved preview, step by step."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from ple import approval
from ple.cleanup.steps import APPROVE_HOW, DEFAULT_ARTIFACTS, LOCK_KEY, STEPS, SUBJECT, StepResult, run_step
from ple.config import INCLUDE_DIR
from ple.db import transaction, with_lock_retry
from ple.errors import BadInput, NotApproved
from ple.ops import ensure_schema

log = logging.getLogger(__name__)


def definition_sha256() -> str:
    """What the cleanup is: the modules of this package and its SQL templates."""
    digest = hashlib.sha256()
    modules = sorted(Path(__file__).parent.glob("*.py"))
    for path in [*modules, *sorted((INCLUDE_DIR / "sql" / "audit").glob("*.sql"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Preview:
    results: dict[str, StepResult]
    database: str

    @property
    def counts(self) -> dict[str, dict]:
        return {name: r.approved_counts() for name, r in self.results.items()}

    @property
    def fingerprint(self) -> approval.Fingerprint:
        """Definition, database, the steps chosen (in order) and their counts: approving one step
        approves nothing of the others."""
        counts = json.dumps(self.counts, sort_keys=True).encode()
        return approval.Fingerprint(
            SUBJECT,
            {
                "definition": definition_sha256(),
                "steps": hashlib.sha256(",".join(self.results).encode()).hexdigest(),
                "counts": hashlib.sha256(counts).hexdigest(),
                "database": hashlib.sha256(self.database.encode()).hexdigest(),
            },
        )

    @property
    def changes_anything(self) -> bool:
        return any(r.rows_touched or r.archived_rows for r in self.results.values())

    def to_dict(self) -> dict:
        return {"database": self.database, "results": {n: asdict(r) for n, r in self.results.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Preview:
        return cls({n: StepResult(**r) for n, r in data["results"].items()}, data["database"])


def selected(steps: list[str] | None) -> list[str]:
    """The chosen steps in the cleanup's own order (all when none is chosen); an unknown name is refused."""
    unknown = sorted(set(steps or ()) - set(STEPS))
    if unknown:
        raise BadInput(f"no cleanup step {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    return [name for name in STEPS if not steps or name in steps]


def preview(conn: psycopg.Connection, lock_timeout: str = "2s", steps: list[str] | None = None) -> Preview:
    """Rehearse the steps (all, or `steps`) in one transaction that is rolled back: the counts
    apply would touch, in order, and what a guard would block. Writes nothing, no file either."""
    chosen = selected(steps)

    def rehearse() -> Preview:
        results = {}
        with transaction(conn, lock_timeout=lock_timeout, statement_timeout="1h"):
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
            for name in chosen:
                results[name] = run_step(conn, name, "preview", False, DEFAULT_ARTIFACTS)
            database = conn.execute("SELECT current_database()").fetchone()[0]
            raise psycopg.Rollback
        return Preview(results, database)

    return with_lock_retry(rehearse)


def approve(
    conn: psycopg.Connection, shown: Preview, approver: str, *, via: str = "cli", note: str | None = None
) -> int:
    """Record that `approver` approved the cleanup as `shown` (the definition and its counts)."""
    ensure_schema(conn)
    with transaction(conn):
        return approval.approve(
            conn, shown.fingerprint, approver, via=via, note=note, details={"preview": shown.counts}
        )


def _approved_preview(conn: psycopg.Connection, fingerprint_sha256: str) -> dict | None:
    """The approved preview of this fingerprint, unless a rejection of the cleanup came after it
    (a rejection vetoes the cleanup until someone approves it again: ple/approval.py)."""
    row = conn.execute(
        "SELECT details -> 'preview' FROM ple_ops.approval a WHERE subject = %s AND fingerprint = %s "
        "AND verdict = 'approve' AND revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM ple_ops.approval r "
        "WHERE r.subject = a.subject AND r.verdict = 'reject' AND r.revoked_at IS NULL AND r.approval_id > a.approval_id) "
        "ORDER BY approval_id DESC LIMIT 1",
        (SUBJECT, fingerprint_sha256),
    ).fetchone()
    return row[0] if row else None


def _refusal(conn: psycopg.Connection, live: dict[str, dict]) -> NotApproved:
    """Why an apply is refused: no approval at all, or how the live counts differ from the latest
    approved preview."""
    row = conn.execute(
        "SELECT details -> 'preview', approver, approved_at FROM ple_ops.approval WHERE subject = %s "
        "AND verdict = 'approve' AND revoked_at IS NULL ORDER BY approval_id DESC LIMIT 1",
        (SUBJECT,),
    ).fetchone()
    fix = f"preview (mode plan) and approve again with {APPROVE_HOW}"
    if row is None:
        return NotApproved(f"the Phase 2C cleanup has no recorded approval; execution is BLOCKED: {fix}")
    approved, approver, approved_at = row
    moved = [
        f"{step}: approved {approved.get(step)}, live {counts}"
        for step, counts in live.items()
        if approved.get(step) != counts
    ]
    return NotApproved(
        f"the live counts no longer match the preview {approver} approved at {approved_at:%Y-%m-%d %H:%M:%S %Z} "
        f"({'; '.join(moved) or 'the cleanup definition or database changed'}); nothing was changed: {fix}"
    )


def _applied_steps(conn: psycopg.Connection, run_id: str) -> tuple[set[str], str | None]:
    rows = conn.execute(
        "SELECT step, details ->> 'approval' FROM ple_ops.cleanup_ledger WHERE run_id = %s AND mode = 'apply' "
        "AND outcome IN ('applied', 'nothing_to_do', 'failed')",
        (run_id,),
    ).fetchall()
    return {step for step, _ in rows}, next((sha for _, sha in rows if sha), None)


def apply(
    conn: psycopg.Connection,
    run_id: str,
    artifacts: Path = DEFAULT_ARTIFACTS,
    lock_timeout: str = "2s",
    steps: list[str] | None = None,
) -> dict[str, StepResult]:
    """Every chosen step (all, or `steps`) not yet done in this run, each in its own transaction,
    if approved: the approval must cover exactly these steps and their counts.

    The rehearsal's fingerprint must be approved (a resumed run keeps the approval it started
    with, and its remaining steps must match that approval's counts); inside each step's
    transaction the approval is checked again and the step's counts must equal the approved
    ones, or the step rolls back. A run that would change nothing needs no approval."""
    ensure_schema(conn)
    done, pinned = _applied_steps(conn, run_id)
    remaining = [name for name in selected(steps) if name not in done]
    if not remaining:
        return {}
    rehearsal = preview(conn, lock_timeout, remaining)
    if pinned is None and not rehearsal.changes_anything:
        approved, fingerprint = rehearsal.counts, None
    else:
        fingerprint = pinned or rehearsal.fingerprint.sha256
        approved = _approved_preview(conn, fingerprint)
        if approved is None or any(approved.get(n) != c for n, c in rehearsal.counts.items()):
            raise _refusal(conn, rehearsal.counts)
    results = {}
    for name in remaining:
        results[name] = with_lock_retry(
            lambda name=name: apply_step(conn, name, run_id, artifacts, lock_timeout, fingerprint, approved[name])
        )
    return results


def apply_step(
    conn: psycopg.Connection,
    name: str,
    run_id: str,
    artifacts: Path,
    lock_timeout: str,
    fingerprint: str | None,
    approved: dict,
) -> StepResult:
    """One step in its own transaction, as `apply` runs it: the approval (`fingerprint`) is
    checked again, the step runs, and its counts must equal the `approved` ones or it rolls back."""
    started, clock = datetime.now(UTC), time.monotonic()
    with transaction(conn, lock_timeout=lock_timeout, statement_timeout="1h"):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
        if fingerprint is not None and _approved_preview(conn, fingerprint) is None:
            raise NotApproved(
                f"the approval of this cleanup run was revoked; nothing more changed. Approve with {APPROVE_HOW}"
            )
        result = run_step(conn, name, run_id, True, artifacts)
        if result.approved_counts() != approved:
            raise _refusal(conn, {name: result.approved_counts()})
        outcome = (
            "failed"
            if result.blocked
            else "applied"
            if result.rows_touched or result.archived_rows or result.artifact
            else "nothing_to_do"
        )
        conn.execute(
            "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, archived_rows, artifact, details, started_at, duration_ms, outcome) "
            "VALUES (%s, %s, 'apply', %s, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                name,
                result.rows_touched,
                result.archived_rows,
                result.artifact,
                Jsonb({**result.details, "approval": fingerprint, "blocked": result.blocked}),
                started,
                int((time.monotonic() - clock) * 1000),
                outcome,
            ),
        )
    if result.blocked:
        log.warning("%s", result.describe(True))
    return result
