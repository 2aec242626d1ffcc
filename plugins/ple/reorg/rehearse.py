"""Rehearse a phase: carry it out, verify it, and roll it all back.

What a static lint cannot foresee (a CHECK it cannot read, a trigger that raises, a unique index,
a foreign key the merged rows break) shows up here with real counts, before `apply`. Everything
runs in ONE transaction with the same lock_timeout and statement_timeout as apply: the preflight
DDL, each step in a savepoint of its own (a failing step is reported and the rest still run), the
verification against an in-memory snapshot, and then a ROLLBACK. Index builds are plain (CREATE
INDEX CONCURRENTLY cannot run in a transaction); the low-lock ADD_PK path is rehearsed by its
outcome, the primary key itself. The rehearsal writes nothing, so it needs no approval; the
ledger rows it writes inside the transaction vanish with it.

Where it runs. On the target itself (the default) the one transaction holds the phase's locks
(ACCESS EXCLUSIVE on what it renames) until the rollback, so it has a budget
(`rehearse_budget_seconds`, 30 s by default): each step's statements get at most what is left of
it as their statement_timeout, and once it is spent the rehearsal rolls back and reports which
steps were rehearsed and which were not. With `rehearse_conn_id` (an Airflow connection to a copy
of the target, such as a Neon branch) it runs there instead: the target is not touched at all, and
no budget applies. The decisions are the target's: the branch rehearses exactly what apply would.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import time

import psycopg
from psycopg import sql

from ple import governance
from ple.catalog import read_catalog
from ple.db import connect
from ple.errors import PermanentError, RehearsalFailed
from ple.ops import ensure_schema
from ple.reorg import gate, guards, lint
from ple.reorg.actions import add_pk, create_target, module_for, set_aside
from ple.reorg.context import Outcome, State, StepReport
from ple.reorg.decisions import ResolvedStep
from ple.reorg.proof import columns_gone, fingerprint, native_count
from ple.reorg.session import Session
from ple.server import require_supported_server
from ple.sqlutil import qualified, split_qualified


class _Rehearsed(Exception):
    """Raised inside the rehearsal's transaction to roll it back, carrying the report out."""

    def __init__(self, report: StepReport):
        super().__init__(report.step_id)
        self.report = report


class _Budget:
    """How long the rehearsal's transaction may still hold its locks on the target (seconds None:
    no limit, on a copy of the target)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.started = time.monotonic()

    def spent(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.started >= self.seconds

    def bound_statements(self, ex) -> None:
        """The next statements may run for what is left of the budget, never longer than apply's
        statement_timeout (SET LOCAL, through set_config: pool-safe)."""
        if self.seconds is None:
            return
        left = max(0.001, self.seconds - (time.monotonic() - self.started))
        ex.conn.execute(
            "SELECT set_config('statement_timeout', "
            "(ceil(extract(epoch FROM least(%s::interval, make_interval(secs => %s))) * 1000))::bigint || 'ms', true)",
            (ex.settings.statement_timeout, left),
        )

    def bound_step(self, ctx) -> None:
        """A step with transactions of its own (a fold, a batched merge) sets the statement_timeout of
        each from its settings: inside the rehearsal those are savepoints of the one transaction, so
        they get what is left of the budget, not apply's limit. A merge is rehearsed in one statement:
        nothing commits between batches here, so batching would only hold the target's locks longer,
        batch after batch, past the budget."""
        if self.seconds is None:
            return
        left = ctx.conn.execute("SELECT current_setting('statement_timeout')").fetchone()[0]
        ctx.settings = dataclasses.replace(ctx.settings, statement_timeout=left, backfill_batch_pages=sys.maxsize)


def rehearse_phase(ex: Session, phase_id: str) -> StepReport:
    """Preflight, every step and verify of one phase in one transaction, then ROLLBACK; on the
    connection `rehearse_conn_id` names when given, else on the target within the lock budget."""
    conn_id = ex.settings.rehearse_conn_id
    if not conn_id:
        return _rolled_back(ex, phase_id, *_on_target(ex, None))
    with connect(conn_id) as copy:
        if _same_database(ex.conn, copy):
            return _rolled_back(ex, phase_id, *_on_target(ex, conn_id))
        require_supported_server(copy)
        on_copy = type(ex)(copy, ex.declared, ex.run_id, ex.settings, ex.decisions)  # the same executor, on the copy
        where = f"on connection {conn_id} ({copy.info.dbname} on {copy.info.host}:{copy.info.port}; the target is not touched)"
        return _rolled_back(on_copy, phase_id, where, None)


NOT_CLEAN = {
    "failed": "found problems",
    "blocked": "was not carried out: the lint blocks apply",
    "incomplete": "did not cover every step (its lock budget was spent)",
}


def require_clean(report: StepReport) -> None:
    """Fail the task or command whose rehearsal was not clean (red task, non-zero exit): its
    report, logged first, names each problem and its fix."""
    if report.status in NOT_CLEAN:
        raise RehearsalFailed(
            f"{report.step_id}: the rehearsal {NOT_CLEAN[report.status]}; apply would not go through as "
            "rehearsed (the report above names each problem and what to do); nothing stayed"
        )


def _same_database(target: psycopg.Connection, other: psycopg.Connection) -> bool:
    """Whether two connections reach one database, whatever their host names say (localhost and
    127.0.0.1, a Neon database's pooled and direct endpoints): a transaction-level advisory lock
    (scoped to its database) held on the target is refused to the other only if it is the same
    database; a branch or a clone grants it. Pool-safe: both locks end with their transactions."""
    key = secrets.randbits(62)
    with target.transaction():
        target.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        with other.transaction():
            granted = other.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]
    return not granted


def _on_target(ex: Session, conn_id: str | None) -> tuple[str, float]:
    seconds = ex.settings.rehearse_budget_seconds
    named = f" (connection {conn_id} is the target)" if conn_id else ""
    return f"on the target itself{named}, holding its locks for at most {seconds:g} s", seconds


def _rolled_back(ex: Session, phase_id: str, where: str, budget_seconds: float | None) -> StepReport:
    try:
        ex.retrying(lambda: _rehearse(ex, phase_id, where, budget_seconds))
    except _Rehearsed as done:
        return done.report
    raise AssertionError("a rehearsal always rolls back")


def _rehearse(ex: Session, phase_id: str, where: str, budget_seconds: float | None) -> None:
    with ex.transaction():
        raise _Rehearsed(_phase(ex, phase_id, where, _Budget(budget_seconds)))


def _phase(ex: Session, phase_id: str, where: str, budget: _Budget) -> StepReport:
    """One phase's preflight, steps and verification inside the rehearsal's open transaction (on
    the state the phases rehearsed before it in that transaction leave); its report."""
    phase = ex.plan.phase(phase_id)
    step_id = f"{phase_id}__preflight"
    lines = [f"phase {phase_id}: REHEARSAL {where} (one transaction, rolled back at the end: nothing stays)"]
    results: dict[str, str] = {}
    try:
        try:
            budget.bound_statements(ex)
            snapshot = _prepare(ex, phase, step_id, lines)
            for step in phase.steps:
                budget.bound_statements(ex)
                if budget.spent():
                    _stop(phase, step_id, results, lines, budget)
                results[step.step_id] = _rehearse_step(ex, ex.resolve(step.step_id), lines, budget)
            budget.bound_statements(ex)
            lines += _verify(ex, phase, snapshot)
        except psycopg.errors.QueryCanceled:
            if not budget.spent():
                raise
            _stop(phase, step_id, results, lines, budget)
    except _Rehearsed as stopped:  # blocked by the lint, or the budget spent
        return stopped.report
    failed = [s for s, r in results.items() if r == "failed"] + [line for line in lines if "PROBLEM" in line]
    status = "rehearsed" if not failed else "failed"
    lines.append(
        f"rehearsal of phase {phase_id}: {len(results)} steps, {len(failed)} problems; rolled back"
        + ("" if not failed else ": apply would fail the same way")
    )
    return StepReport(step_id, status, "\n".join(lines), {"steps": results, "problems": len(failed)})


def rehearse_phases(ex: Session, phase_ids: list[str]) -> StepReport:
    """Several phases in order in ONE transaction, each on the state the ones before it leave, then
    ROLLBACK: what a request for the whole plan rehearses. On `rehearse_conn_id` when given, else on
    the target within one lock budget for them all. A phase that is not clean ends the chain: the
    phases after it are not rehearsed (they would start from a state apply never reaches)."""
    conn_id = ex.settings.rehearse_conn_id
    if not conn_id:
        return _chain_rolled_back(ex, phase_ids, *_on_target(ex, None))
    with connect(conn_id) as copy:
        if _same_database(ex.conn, copy):
            return _chain_rolled_back(ex, phase_ids, *_on_target(ex, conn_id))
        require_supported_server(copy)
        on_copy = type(ex)(copy, ex.declared, ex.run_id, ex.settings, ex.decisions)
        where = f"on connection {conn_id} ({copy.info.dbname} on {copy.info.host}:{copy.info.port}; the target is not touched)"
        return _chain_rolled_back(on_copy, phase_ids, where, None)


def _chain_rolled_back(ex: Session, phase_ids: list[str], where: str, budget_seconds: float | None) -> StepReport:
    def chain() -> None:
        with ex.transaction():
            budget, texts, phases, status = _Budget(budget_seconds), [], {}, "rehearsed"
            for phase_id in phase_ids:
                if status != "rehearsed":
                    phases[phase_id] = {"status": "not rehearsed", "steps": {}}
                    continue
                report = _phase(ex, phase_id, where, budget)
                texts.append(report.text)
                phases[phase_id] = {"status": report.status, "steps": report.summary.get("steps", {})}
                status = report.status
            skipped = [p for p, r in phases.items() if r["status"] == "not rehearsed"]
            texts.append(
                f"rehearsal of phases {', '.join(phase_ids)} in order, in one transaction: {status}"
                + (f"; not rehearsed after it: {', '.join(skipped)}" if skipped else "")
                + "; rolled back, nothing stays"
            )
            step_id = f"{'_'.join(phase_ids)}__preflight" if len(phase_ids) < 4 else "plan__preflight"
            raise _Rehearsed(StepReport(step_id, status, "\n\n".join(texts), {"phases": phases}))

    try:
        ex.retrying(chain)
    except _Rehearsed as done:
        return done.report
    raise AssertionError("a rehearsal always rolls back")


def _prepare(ex: Session, phase, step_id: str, lines: list[str]) -> dict:
    """The phase's lint, preflight DDL and snapshot, inside the rehearsal's transaction."""
    ex.lock_exclusive()
    catalog = read_catalog(ex.conn)
    report = lint.lint_live(ex.conn, ex.declared, [phase.phase], catalog, ex.decisions)
    lines.append(report.render())
    if not report.ok:
        lines.append("rehearsal: not carried out, the lint blocks apply (see ERRORS)")
        raise _Rehearsed(StepReport(step_id, "blocked", "\n".join(lines), {"blocking": len(report.errors)}))
    ensure_schema(ex.conn)
    for target, _ in ex.targets_to_create(phase):  # as create_target.ensure does
        create_target.register_first(ex.conn, phase.phase, target)
    for statement in ex.created_targets(phase, catalog):
        ex.conn.execute(statement.query)
    accepted = ex.decisions.accepted if ex.decisions is not None else {}
    unfrozen = governance.set_frozen(ex.conn, gate.frozen_merge_targets(phase, accepted), False)
    for statement in ex.preflight_ddl(phase, read_catalog(ex.conn)):
        ex.conn.execute(statement.query)
    governance.set_frozen(ex.conn, unfrozen, True)
    for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
        ex.conn.execute(_provenance_index(target))
    return ex.snapshot(phase, read_catalog(ex.conn))


def _stop(phase, step_id: str, results: dict, lines: list[str], budget: _Budget) -> None:
    """The lock budget on the target is spent: roll back now, saying what was rehearsed and what was not."""
    rehearsed = [s for s, r in results.items() if r != "over_budget"]
    missing = [s.step_id for s in phase.steps if s.step_id not in rehearsed]
    failed = [s for s, r in results.items() if r == "failed"]
    lines.append(
        f"rehearsal of phase {phase.phase}: STOPPED, its lock budget on the target ({budget.seconds:g} s, "
        f"rehearse_budget_seconds) is spent; rolled back, nothing stays. Rehearsed: {', '.join(rehearsed) or 'none'}"
        + (f" ({len(failed)} failed)" if failed else "")
        + f". NOT rehearsed: {', '.join(missing) or 'the verification'}. Rehearse the whole phase on a copy of "
        "the target instead (rehearse_conn_id: an Airflow connection to e.g. a Neon branch), or give a larger "
        "budget at a quiet hour"
    )
    raise _Rehearsed(
        StepReport(
            step_id,
            "incomplete",
            "\n".join(lines),
            {"steps": results, "problems": len(failed), "not_rehearsed": missing},
        )
    )


def _provenance_index(target: str) -> sql.Composed:
    table = split_qualified(target)[1]
    return sql.SQL(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (ctb_source_table, ctb_source_key) WHERE ctb_source_table IS NOT NULL"
    ).format(sql.Identifier(f"{table}_ctb_provenance"[:63]), qualified(target))


def _rehearse_step(ex: Session, resolved: ResolvedStep, lines: list[str], budget: _Budget) -> str:
    step = resolved.step
    try:
        with ex.conn.transaction():  # a savepoint: a failing step leaves the others to run
            catalog = read_catalog(ex.conn)
            ctx = ex.context(catalog)
            accepted = ex.decisions.accepted if ex.decisions is not None else {}
            asides = ex.set_asides(ctx, resolved)
            gate.admit(ex.conn, ex.plan, step, asides, ex.run_id, accepted, own=False)  # as apply does
            for item in asides:
                set_aside.apply(ctx, item)
                lines.append(f"{step.step_id}: set aside {item.occupant} as {item.name}")
                ctx = ex.context(read_catalog(ex.conn))
            module = module_for(step)
            if module.check(ctx, step) == State.DONE:
                lines.append(f"{step.step_id}: done already; nothing to rehearse")
                return "already_done"
            gate.admit(ex.conn, ex.plan, step, (), ex.run_id, accepted)
            found = guards.inspect(ex.conn, ex.plan, ctx.catalog, ex.decisions, steps=[step])
            ctx.bypass = tuple(guards.bypassed_triggers(found, step.step_id))
            ctx.unfreeze, ctx.freeze_after = map(tuple, gate.frozen_names(ex.plan, step, accepted))
            budget.bound_step(ctx)
            if module.transactional(ctx, step):
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
        if isinstance(exc, psycopg.errors.QueryCanceled) and budget.spent():
            lines.append(f"{step.step_id}: cut short, the lock budget is spent")
            return "over_budget"
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


def _verify(ex: Session, phase, snapshot: dict) -> list[str]:
    catalog = read_catalog(ex.conn)
    by_oid = {t.oid: t for t in catalog.tables.values()}
    rekeyed = {s.action.source for s in phase.steps if s.kind == "ADD_PK"}  # a key column may rewrite it
    lines, located = [], {}
    for name, fp in snapshot.items():
        table = by_oid.get(fp.oid)
        if table is None:
            lines.append(f"  PROBLEM: {name} (oid {fp.oid}) vanished")
            continue
        located[name] = table.name
        if fp.checksum is None:  # proven by identity: the same OID and data file, its rows counted
            now_rows = native_count(ex.conn, table)
            same = now_rows == fp.rows and (table.relfilenode == fp.relfilenode or name in rekeyed)
            lines.append(
                f"  verify {name} -> {table.name}: same table{', same data file' if table.relfilenode == fp.relfilenode else ''}, "
                f"rows {fp.rows:,} -> {now_rows:,}"
            )
        else:
            gone = columns_gone(name, table, fp.columns)
            if gone:
                lines.append(f"  PROBLEM: {gone}")
                continue
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
