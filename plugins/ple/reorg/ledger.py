"""The ledger in the target database: approvals, action attempts, snapshots, phase status.

The ledger is the single source of truth for what happened. A successful action writes its ledger
row in the same transaction as its changes, so the two commit or vanish together.
"""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from ple.ops import schema_exists
from ple.reporting import table
from ple.sqlutil import raw_template


def record(
    conn: psycopg.Connection,
    *,
    run_id: str,
    phase: str,
    step_id: str,
    action: str,
    mode: str,
    plan_sha256: str,
    started_at: datetime,
    duration_ms: int,
    outcome: str,
    sources: list[str] | None = None,
    target: str | None = None,
    sql_text: str | None = None,
    rows_before: dict | None = None,
    rows_after: dict | None = None,
    checksums_before: dict | None = None,
    checksums_after: dict | None = None,
    details: dict | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO ple_ops.action_ledger (run_id, phase, step_id, action, mode, sources, target, plan_sha256,
            sql_text, rows_before, rows_after, checksums_before, checksums_after, details, started_at,
            duration_ms, outcome, error)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            run_id,
            phase,
            step_id,
            action,
            mode,
            sources or [],
            target,
            plan_sha256,
            sql_text,
            _json(rows_before),
            _json(rows_after),
            _json(checksums_before),
            _json(checksums_after),
            _json(details),
            started_at,
            duration_ms,
            outcome,
            error,
        ),
    )


def _json(value):
    return None if value is None else Jsonb(json.loads(json.dumps(value, default=str)))


def last_outcomes(conn: psycopg.Connection, phase: str | None = None) -> list[tuple]:
    """The latest attempt of every step (optionally of one phase), with the rows it handled
    (for relocations, from the preflight snapshot: they move no rows one by one)."""
    return conn.execute(raw_template("ops/last_outcomes"), {"phase": phase}).fetchall()


def applied_details(conn: psycopg.Connection, step_id: str) -> dict:
    """The details the step's latest applied attempt recorded; empty if it never applied, or if it
    was reverted or adopted (done by other means) since, so that nothing stale is read."""
    if not schema_exists(conn):
        return {}
    row = conn.execute(
        "SELECT outcome, details FROM ple_ops.action_ledger "
        "WHERE step_id = %s AND outcome IN ('applied', 'reverted', 'adopted') ORDER BY attempt_id DESC LIMIT 1",
        (step_id,),
    ).fetchone()
    return (row[1] or {}) if row and row[0] == "applied" else {}


def action_outcomes(conn: psycopg.Connection) -> dict[str, int]:
    """How many action steps (not preflight/verify/freeze) last ended in each outcome."""
    return dict(
        conn.execute(
            "SELECT outcome, count(*) FROM (SELECT DISTINCT ON (step_id) outcome FROM ple_ops.action_ledger "
            "WHERE action NOT IN ('PREFLIGHT', 'VERIFY', 'FREEZE', 'SET_ASIDE', 'CREATE_TARGET') ORDER BY step_id, attempt_id DESC) l GROUP BY 1"
        ).fetchall()
    )


def report(conn: psycopg.Connection, phase: str | None = None) -> str:
    """A phase report: the last attempt of each step, its outcome, the rows it handled."""
    if not schema_exists(conn):
        return "the ledger is empty: nothing has been applied to this database"
    rows = [
        (phase_id, step_id.split("__", 1)[1], action, outcome, handled, result, duration_ms, (error or "")[:70])
        for phase_id, step_id, action, outcome, handled, result, duration_ms, error in last_outcomes(conn, phase)
    ]
    attempts = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'failed') FROM ple_ops.action_ledger "
        "WHERE %(phase)s::text IS NULL OR phase = %(phase)s",
        {"phase": phase},
    ).fetchone()
    frozen = [
        r[0] for r in conn.execute("SELECT phase FROM ple_ops.phase_status WHERE status = 'frozen' ORDER BY phase")
    ]
    text = table(rows, ("phase", "step", "action", "last outcome", "rows", "result", "ms", "error"))
    return (
        f"{text}\n{attempts[0]} attempts recorded ({attempts[1]} failed); frozen phases: {', '.join(frozen) or 'none'}"
    )


def ledger_outcomes(conn: psycopg.Connection) -> dict[str, dict]:
    """The latest applied/adopted/skipped ledger row of every step (empty without a ledger)."""
    if not conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (step_id) step_id, attempt_id, run_id, outcome, details, rows_after FROM ple_ops.action_ledger "
        "WHERE outcome IN ('applied', 'adopted', 'skipped') AND mode = 'apply' ORDER BY step_id, attempt_id DESC"
    ).fetchall()
    reverted = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT step_id, max(attempt_id) FROM ple_ops.action_ledger WHERE outcome = 'reverted' GROUP BY step_id"
        )
    }
    return {
        step_id: {"attempt": attempt, "run_id": run_id, "outcome": outcome, "details": details or {}, "rows": rows}
        for step_id, attempt, run_id, outcome, details, rows in rows
        if reverted.get(step_id, 0) < attempt
    }
