"""The nightly audit: numbers recorded per run, judged against thresholds and the previous run.

The judgement is a Great Expectations suite over this run's numbers: one `between` expectation
per number, its bounds the tighter of the absolute threshold (include/audit/thresholds.yaml) and
the previous run's value plus the allowed margin. A failed expectation is a breach, reported as
"which number moved, from what to what".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import psycopg
import yaml
from psycopg import sql

from ple.config import INCLUDE_DIR
from ple.db import transaction
from ple.ops import ensure_schema

THRESHOLDS_FILE = INCLUDE_DIR / "audit" / "thresholds.yaml"


@functools.cache
def thresholds() -> dict[str, dict]:
    return yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))["numbers"]


@dataclass(frozen=True)
class Bound:
    number: str
    current: int
    previous: int | None
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


def previous_numbers(conn: psycopg.Connection, run_id: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT run_id FROM ple_ops.audit_run WHERE run_id <> %s AND taken_at < (SELECT taken_at FROM ple_ops.audit_run WHERE run_id = %s) "
        "ORDER BY taken_at DESC LIMIT 1",
        (run_id, run_id),
    ).fetchone()
    if row is None:
        return {}
    return dict(conn.execute("SELECT number, value FROM ple_ops.audit_history WHERE run_id = %s", (row[0],)).fetchall())


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
            reasons.append(f"no worse than the previous run + {margin_pct}% / {margin_rows} rows")
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
    """(all bounds, the breached ones), validated by Great Expectations against the database."""
    from ple.db import sqlalchemy_url
    from ple.expectations import TableSuite, validate

    numbers = dict(
        conn.execute("SELECT number, value FROM ple_ops.audit_history WHERE run_id = %s", (run_id,)).fetchall()
    )
    all_bounds = bounds(numbers, previous_numbers(conn, run_id), margin_pct, margin_rows)
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
    return all_bounds, breached
