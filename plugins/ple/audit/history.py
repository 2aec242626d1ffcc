"""The nightly audit: numbers recorded per run, judged against thresholds and an accepted baseline.

The judgement is a Great Expectations suite over this run's numbers: one `between` expectation
per number, its bounds the tighter of the absolute threshold (include/audit/thresholds.yaml) and
the accepted baseline's value plus the allowed margin. A failed expectation is a breach, reported
as "which number moved, from what to what".

The baseline is not simply the previous run: a breached run would otherwise become the next
night's yardstick and the audit would pass again with nothing fixed, and a number could creep up
by the margin every night without ever alerting. The baseline is an *accepted* run, recorded in
ple_ops.approval (subject "audit_baseline": who, when, which run, its numbers): the first clean
run, then any clean run whose judged numbers are all at or below the baseline (improvements
ratchet it down), and otherwise only a run an operator accepts (`python -m ple.cli audit-accept`).
A breach therefore fails every night until it is fixed or someone accepts the new numbers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass

import psycopg
import yaml
from psycopg import sql

from ple import approval
from ple.config import INCLUDE_DIR
from ple.db import transaction
from ple.errors import BadInput
from ple.ops import ensure_schema

THRESHOLDS_FILE = INCLUDE_DIR / "audit" / "thresholds.yaml"
BASELINE = "audit_baseline"
ACCEPT_HOW = (
    "`python -m ple.cli audit-accept --approver <name> [--run-id <run>]` (or `make audit-accept APPROVER=<name>`)"
)


@functools.cache
def thresholds() -> dict[str, dict]:
    return yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))["numbers"]


@dataclass(frozen=True)
class Bound:
    number: str
    current: int
    previous: int | None  # the accepted baseline's value
    low: int | None
    high: int | None
    rule: str

    def describe(self) -> str:
        moved = f"from {self.previous:,} to {self.current:,}" if self.previous is not None else f"is {self.current:,}"
        limits = " and ".join(
            part
            for part in (
                f">= {self.low:,}" if self.low is not None else "",
                f"<= {self.high:,}" if self.high is not None else "",
            )
            if part
        )
        return f"{self.number} {moved}; allowed {limits} ({self.rule})"


def record(conn: psycopg.Connection, run_id: str, numbers: dict[str, int], seconds: float) -> None:
    """Store this run's numbers (idempotent: a retried task overwrites its own run)."""
    ensure_schema(conn)
    with transaction(conn):
        conn.execute(
            "INSERT INTO ple_ops.audit_run (run_id, seconds) VALUES (%s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET seconds = EXCLUDED.seconds, taken_at = now(), status = 'computed'",
            (run_id, seconds),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ple_ops.audit_history (run_id, number, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (run_id, number) DO UPDATE SET value = EXCLUDED.value",
                [(run_id, name, value) for name, value in numbers.items()],
            )


@dataclass(frozen=True)
class Baseline:
    run_id: str
    numbers: dict[str, int]
    accepted_by: str
    accepted_at: str
    via: str

    def describe(self) -> str:
        return f"run {self.run_id}, accepted by {self.accepted_by} ({self.via}) at {self.accepted_at}"


def baseline(conn: psycopg.Connection) -> Baseline | None:
    """The accepted baseline: the latest approval of subject audit_baseline that is not revoked."""
    if not conn.execute("SELECT to_regclass('ple_ops.approval') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(
        "SELECT details, approver, approved_at, approved_via FROM ple_ops.approval "
        "WHERE subject = %s AND verdict = 'approve' AND revoked_at IS NULL ORDER BY approval_id DESC LIMIT 1",
        (BASELINE,),
    ).fetchone()
    if row is None:
        return None
    details, approver, approved_at, via = row
    return Baseline(details["run_id"], details["numbers"], approver, approved_at.isoformat(), via)


def run_numbers(conn: psycopg.Connection, run_id: str) -> dict[str, int]:
    return dict(conn.execute("SELECT number, value FROM ple_ops.audit_history WHERE run_id = %s", (run_id,)).fetchall())


def accept(
    conn: psycopg.Connection, approver: str, run_id: str | None = None, *, via: str = "cli", note: str | None = None
) -> Baseline:
    """Make a run (default: the latest) the baseline later runs are compared with."""
    ensure_schema(conn)
    if run_id is None:
        row = conn.execute("SELECT run_id FROM ple_ops.audit_run ORDER BY taken_at DESC LIMIT 1").fetchone()
        if row is None:
            raise BadInput("no audit run recorded yet: run ctb_nightly_audit (or `python -m ple.cli audit`) first")
        run_id = row[0]
    numbers = run_numbers(conn, run_id)
    if not numbers:
        raise BadInput(f"no audit run {run_id!r} in ple_ops.audit_run; pick one with its run id")
    fingerprint = approval.Fingerprint(
        BASELINE,
        {
            "run": hashlib.sha256(run_id.encode()).hexdigest(),
            "numbers": hashlib.sha256(json.dumps(numbers, sort_keys=True).encode()).hexdigest(),
        },
    )
    with transaction(conn):
        approval.approve(
            conn, fingerprint, approver, via=via, note=note, details={"run_id": run_id, "numbers": numbers}
        )
    return baseline(conn)


def bounds(numbers: dict[str, int], previous: dict[str, int], margin_pct: float, margin_rows: int) -> list[Bound]:
    result = []
    for name, value in numbers.items():
        rule = thresholds().get(name, {})
        low, high, reasons = rule.get("min"), rule.get("max"), []
        if low is not None or high is not None:
            reasons.append("threshold")
        if rule.get("worse") == "up" and name in previous:
            allowed = previous[name] + max(margin_rows, math.floor(previous[name] * margin_pct / 100))
            if high is None or allowed < high:
                high = allowed
            reasons.append(f"no worse than the accepted baseline + {margin_pct}% / {margin_rows} rows")
        if low is not None or high is not None:
            result.append(Bound(name, value, previous.get(name), low, high, "; ".join(reasons)))
    return result


def numbers_query(run_id: str, names: list[str]) -> sql.Composable:
    """This run's numbers as one row, one column per number (what the suite validates)."""
    return sql.SQL("SELECT {} FROM ple_ops.audit_history WHERE run_id = {}").format(
        sql.SQL(", ").join(
            sql.SQL("max(value) FILTER (WHERE number = {}) AS {}").format(sql.Literal(n), sql.Identifier(n))
            for n in names
        ),
        sql.Literal(run_id),
    )


def judge(
    conn: psycopg.Connection, run_id: str, margin_pct: float, margin_rows: int
) -> tuple[list[Bound], list[Bound]]:
    """(all bounds, the breached ones), validated by Great Expectations against the database.

    A clean run becomes the baseline when there is none yet or when none of its judged numbers is
    above the baseline's; a breached run never does (see the module docstring)."""
    from ple.db import sqlalchemy_url
    from ple.expectations import TableSuite, validate

    numbers = run_numbers(conn, run_id)
    accepted = baseline(conn)
    previous = accepted.numbers if accepted and accepted.run_id != run_id else {}
    all_bounds = bounds(numbers, previous, margin_pct, margin_rows)
    suite = TableSuite(
        table="ple_ops.audit_history",
        query=numbers_query(run_id, [b.number for b in all_bounds]).as_string(conn),
        row_count=1,
        value_ranges={b.number: (b.low, b.high) for b in all_bounds},
    )
    results = validate(sqlalchemy_url(conn), [suite], name=f"ctb_nightly_audit_{abs(hash(run_id))}")
    failed_columns = {r.detail.get("column") for r in results if not r.success}
    breached = [b for b in all_bounds if b.number in failed_columns]
    with transaction(conn):
        conn.execute(
            "UPDATE ple_ops.audit_run SET status = %s WHERE run_id = %s", ("breached" if breached else "passed", run_id)
        )
    if not breached and (accepted is None or (accepted.run_id != run_id and _improves(numbers, accepted.numbers))):
        reason = "the first clean audit run" if accepted is None else "clean, better than the baseline, worse nowhere"
        accept(conn, "ple (automatic)", run_id, via="automatic", note=reason)
    return all_bounds, breached


def _improves(numbers: dict[str, int], base: dict[str, int]) -> bool:
    """Some number judged for regressions (worse: up) went down and none went up."""
    judged = [n for n, rule in thresholds().items() if rule.get("worse") == "up" and n in numbers and n in base]
    return all(numbers[n] <= base[n] for n in judged) and any(numbers[n] < base[n] for n in judged)
