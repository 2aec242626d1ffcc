"""Rehearse a phase: carry it out, verify it, and roll it all back.

What a static lint cannot foresee (a CHECK it cannot read, a trigger that raises, a unique index,
a foreign key the merged rows break) shows up here with real counts, before `apply`. Everything
runs in ONE transaction with the same lock_timeout and statement_timeout as apply: the preflight
DDL, each step in a savepoint of its own (a failing step is reported and the rest still run), the
verification against an in-memory snapshot, and then a ROLLBACK. Index builds are plain (CREATE
INDEX CONCURRENTLY cannot run in a transaction); the low-lock ADD_PK path is rehearsed by its
outcome, the primary key itself. The rehearsal writes nothing, so it needs no approval; the
ledger rows it writes inside the transaction vanish with it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ple.catalog import read_catalog
from ple.errors import PermanentError
from ple.ops import ensure_schema
from ple.reorg import guards, lint
from ple.reorg.actions import add_pk, module_for, set_aside
from ple.reorg.context import Outcome, State, StepReport
from ple.reorg.proof import fingerprint, native_count
from ple.sqlutil import qualified, split_qualified


class _Rehearsed(Exception):
    """Raised inside the rehearsal's transaction to roll it back, carrying the report out."""

    def __init__(self, report: StepReport):
        super().__init__(report.step_id)
        self.report = report


def rehearse_phase(ex, phase_id: str) -> StepReport:
    """Preflight, every step and verify of one phase in one transaction, then ROLLBACK."""
    try:
        ex.retrying(lambda: _rehearse(ex, phase_id))
    except _Rehearsed as done:
        return done.report
    raise AssertionError("a rehearsal always rolls back")


def _rehearse(ex, phase_id: str) -> None:
    phase = ex.plan.phase(phase_id)
    step_id = f"{phase_id}__preflight"
    lines = [f"phase {phase_id}: REHEARSAL (one transaction, rolled back at the end: nothing stays)"]
    results: dict[str, str] = {}
    with ex.transaction():
        ex.lock_exclusive()
        catalog = read_catalog(ex.conn)
        report = lint.lint_live(ex.conn, ex.declared, [phase_id], catalog, ex.decisions)
        lines.append(report.render())
        if not report.ok:
            lines.append("rehearsal: not carried out, the lint blocks apply (see ERRORS)")
            raise _Rehearsed(StepReport(step_id, "blocked", "\n".join(lines), {"blocking": len(report.errors)}))
        ensure_schema(ex.conn)
        ddl = ex._created_targets(phase, catalog)
        for statement in ddl:
            ex.conn.execute(statement.query)
        for statement in ex._preflight_ddl(phase, read_catalog(ex.conn)):
            ex.conn.execute(statement.query)
        for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
            ex.conn.execute(_provenance_index(target))
        snapshot = ex._snapshot(phase, read_catalog(ex.conn))
        for step in phase.steps:
            results[step.step_id] = _rehearse_step(ex, step, lines)
        lines += _verify(ex, phase, snapshot)
        failed = [s for s, r in results.items() if r == "failed"] + [line for line in lines if "PROBLEM" in line]
        status = "rehearsed" if not failed else "failed"
        lines.append(
            f"rehearsal of phase {phase_id}: {len(results)} steps, {len(failed)} problems; rolled back"
            + ("" if not failed else ": apply would fail the same way")
        )
        raise _Rehearsed(StepReport(step_id, status, "\n".join(lines), {"steps": results, "problems": len(failed)}))


def _provenance_index(target: str) -> sql.Composed:
    table = split_qualified(target)[1]
    return sql.SQL(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (ctb_source_table, ctb_source_key) WHERE ctb_source_table IS NOT NULL"
    ).format(sql.Identifier(f"{table}_ctb_provenance"[:63]), qualified(target))


def _rehearse_step(ex, step, lines: list[str]) -> str:
    try:
        with ex.conn.transaction():  # a savepoint: a failing step leaves the others to run
            catalog = read_catalog(ex.conn)
            ctx = ex.context(catalog)
            for item in ex._set_asides(ctx, step):
                set_aside.apply(ctx, item)
                lines.append(f"{step.step_id}: set aside {item.occupant} as {item.name}")
                ctx = ex.context(read_catalog(ex.conn))
            module = module_for(step)
            if module.check(ctx, step) == State.DONE:
                lines.append(f"{step.step_id}: done already; nothing to rehearse")
                return "already_done"
            found = guards.inspect(ex.conn, ex.plan, ctx.catalog, ex.decisions, steps=[step])
            ctx.bypass = tuple(guards.bypassed_triggers(found, step.step_id))
            if getattr(module, "transactional", lambda *_: True)(ctx, step):
                with ctx.bypassing_triggers():
                    outcome = _apply(ctx, step, module)
            else:
                outcome = _apply(ctx, step, module)
            lines.append(
                f"{step.step_id}: would apply: rows before {outcome.rows_before}, after {outcome.rows_after}"
                + (f"; {outcome.details}" if outcome.details else "")
            )
            return "applied"
    except (psycopg.Error, PermanentError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        lines.append(f"{step.step_id}: FAILS in rehearsal: {type(exc).__name__}: {first}")
        return "failed"


def _apply(ctx, step, module) -> Outcome:
    if step.kind != "ADD_PK" or add_pk.transactional(ctx, step):
        return module.apply(ctx, step)
    # the low-lock path commits as it goes; its end state is what can fail: the primary key
    table = step.action.source
    before = ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(table))).fetchone()[0]
    ctx.conn.execute(
        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(qualified(table), sql.Identifier(step.action.column))
    )
    return Outcome(
        step,
        "applied",
        rows_before={table: before},
        rows_after={table: before},
        details={"path": "low-lock, rehearsed as ADD PRIMARY KEY"},
    )


def _verify(ex, phase, snapshot: dict) -> list[str]:
    catalog = read_catalog(ex.conn)
    by_oid = {t.oid: t for t in catalog.tables.values()}
    lines, located = [], {}
    for name, fp in snapshot.items():
        table = by_oid.get(fp.oid)
        if table is None:
            lines.append(f"  PROBLEM: {name} (oid {fp.oid}) vanished")
            continue
        located[name] = table.name
        if fp.checksum is None:  # proven by identity: the same OID and data file, its rows counted
            now_rows = native_count(ex.conn, table)
            same = (table.relfilenode, now_rows) == (fp.relfilenode, fp.rows)
            lines.append(
                f"  verify {name} -> {table.name}: same table{', same data file' if table.relfilenode == fp.relfilenode else ''}, "
                f"rows {fp.rows:,} -> {now_rows:,}"
            )
        else:
            merged_into = table.column("ctb_source_table") is not None
            now = fingerprint(ex.conn, table, list(fp.columns), native_only=merged_into)
            same = (now.rows, now.checksum) == (fp.rows, fp.checksum)
            lines.append(
                f"  verify {name} -> {table.name}: rows {fp.rows:,} -> {now.rows:,}, checksum {'equal' if same else 'DIFFERS'}"
            )
        if not same:
            lines.append(f"  PROBLEM: {name} changed")
    ctx = ex.context(catalog)
    for step in phase.steps:
        lines += [f"  PROBLEM: {p}" for p in module_for(step).verify(ctx, step, located)]
    return lines
