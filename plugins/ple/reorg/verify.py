"""Verify a phase: the tool's work proven against the preflight snapshot.

Every table the phase touched is found again by OID and its count and content checksum compared
with the snapshot; each step's own proof runs (archives are where they should be, merged rows match
their archived sources); then Great Expectations checks row counts and canonical keys.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ple.catalog import read_catalog
from ple.errors import VerificationFailed
from ple.reorg.actions import module_for
from ple.reorg.context import StepReport
from ple.reorg.executor import Executor
from ple.reorg.plan import Phase
from ple.reorg.proof import fingerprint


def _stored_snapshot(ex: Executor, phase_id: str) -> list[tuple]:
    rows = ex.conn.execute(
        "SELECT table_name, table_oid, relfilenode, columns, row_count, checksum FROM ple_ops.table_snapshot "
        "WHERE phase = %s AND run_id = coalesce((SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s AND run_id = %s LIMIT 1), "
        "(SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s ORDER BY taken_at DESC LIMIT 1))",
        (phase_id, phase_id, ex.run_id, phase_id),
    ).fetchall()
    if not rows:
        raise VerificationFailed(f"no preflight snapshot for phase {phase_id}: run the phase's preflight first")
    return rows


def _merged_rows(ex: Executor, target: str) -> int:
    """Rows the ledger says were merged into `target` (latest applied attempt of each step)."""
    return ex.conn.execute(
        "SELECT coalesce(sum((rows_after ->> target)::bigint), 0) FROM ("
        " SELECT DISTINCT ON (step_id) rows_after, target, outcome FROM ple_ops.action_ledger"
        " WHERE action = 'MERGE' AND target = %s AND outcome = 'applied' ORDER BY step_id, attempt_id DESC) l",
        (target,),
    ).fetchone()[0]


def verify_phase(ex: Executor, phase_id: str) -> StepReport:
    """Counts and checksums against the snapshot, per-action proofs, then Great Expectations."""
    from ple.db import sqlalchemy_url
    from ple.expectations import TableSuite, validate

    phase = ex.plan.phase(phase_id)
    step_id = f"{phase_id}__verify"
    started = datetime.now(UTC)
    if not ex.applying:
        tables = ex.touched(phase)
        return StepReport(
            step_id,
            "planned",
            f"{step_id}: would compare {len(tables)} tables with the preflight snapshot and run their expectation suites",
        )
    problems, lines, suites = [], [], []
    with ex.transaction(read_only=True):
        catalog = read_catalog(ex.conn)
        by_oid = {t.oid: t for t in catalog.tables.values()}
        located = {}
        for name, oid, _relfilenode, columns, rows, checksum in _stored_snapshot(ex, phase_id):
            table = by_oid.get(oid)
            if table is None:
                problems.append(f"{name} (oid {oid}) no longer exists")
                continue
            located[name] = table.name
            merged_into = table.column("ctb_source_table") is not None
            now = fingerprint(ex.conn, table, list(columns), native_only=merged_into)
            same = (now.rows, now.checksum) == (rows, int(checksum))
            merged = _merged_rows(ex, table.name) if merged_into else 0
            lines.append(
                f"  {name:<44} -> {table.name:<50} rows {rows:>9,} -> {now.rows + merged:>9,}"
                + (f" (+{merged:,} merged)" if merged_into else "")
                + f"  checksum {'equal' if same else 'DIFFERS'}"
            )
            if not same:
                message = f"{name}: rows {rows} -> {now.rows}, content checksum {'equal' if now.checksum == int(checksum) else 'differs'} since the preflight snapshot"
                if merged_into and ex.settings.allow_concurrent_writes:
                    lines.append(f"    tolerated (allow_concurrent_writes): {message}")
                else:
                    problems.append(message)
            expected = rows + merged
            keys = [table.primary_key] if table.primary_key and (merged_into or name in _canonical(ex, phase)) else []
            suites.append(
                TableSuite(
                    table.name,
                    row_count=None if merged_into and ex.settings.allow_concurrent_writes else expected,
                    not_null=keys[0] if keys else [],
                    unique=keys,
                )
            )
        ctx = ex.context(catalog)
        for step in phase.steps:
            problems += module_for(step).verify(ctx, step, located)
    results = validate(sqlalchemy_url(ex.conn), suites, name=f"ctb_phase_{phase_id}")
    failed = [r for r in results if not r.success]
    text = "\n".join(
        [
            f"{step_id}: {len(located)} tables against the snapshot",
            *lines,
            f"  great expectations: {len(results) - len(failed)}/{len(results)} passed",
            *[f"    {r.describe()}" for r in failed],
            *[f"  PROBLEM: {p}" for p in problems],
        ]
    )
    outcome = "applied" if not problems and not failed else "failed"
    with ex.transaction():
        ex.write_ledger(
            phase_id,
            step_id,
            "VERIFY",
            started,
            outcome,
            details={
                "tables": located,
                "expectations": len(results),
                "failed_expectations": [r.describe() for r in failed],
                "problems": problems,
            },
        )
    if problems:
        raise VerificationFailed(text)
    if failed:
        from ple.errors import ExpectationFailed

        raise ExpectationFailed(text)
    return StepReport(step_id, "applied", text, {"tables": len(located), "expectations": len(results)})


def _canonical(ex: Executor, phase: Phase) -> set[str]:
    return {s.target for s in phase.steps if s.kind in ("MERGE", "FOLD", "ADD_PK")}
