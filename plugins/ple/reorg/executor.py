"""Runs the plan's steps against the target database: transactions, limits, locks, ledger.

Every `apply` step is one transaction that
  - sets its own lock_timeout and statement_timeout (SET LOCAL: safe on pooled connections),
  - takes a transaction-level advisory lock (concurrent runs wait their turn; nothing leaks if the
    connection dies),
  - re-checks the approval of this exact plan file and the live catalog (idempotency: a step that
    is already done records `already_done` and changes nothing),
  - applies and proves the action, and writes its ledger row, all committing together.
Lock timeouts are retried with backoff; anything a retry cannot fix raises a PermanentError.
`plan` mode runs the same checks in READ ONLY transactions and writes nothing at all.

The stages after the steps each have a module of their own, over the same executor:
verify.py (proof against the preflight snapshot), freeze.py (read-only archives), revert.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from ple import approval
from ple.catalog import Catalog, functions_naming, read_catalog
from ple.db import transaction, with_lock_retry
from ple.errors import PermanentError, PlanRejected
from ple.ops import ensure_schema
from ple.reorg import ledger, lint
from ple.reorg.actions import merge as merge_action
from ple.reorg.actions import module_for
from ple.reorg.context import ADVISORY_LOCK, Context, Mode, Outcome, Settings, State, Statement, StepReport
from ple.reorg.plan import Phase, Plan, Step
from ple.reorg.proof import Fingerprint, fingerprint, identity
from ple.server import require_supported_server

# Errors in the data or the SQL: a retry would fail the same way.
PERMANENT_DB_ERRORS = (
    pg_errors.DataError,
    pg_errors.IntegrityError,
    pg_errors.ProgrammingError,
    pg_errors.FeatureNotSupported,
)


class Executor:
    def __init__(self, conn: psycopg.Connection, plan: Plan, run_id: str, settings: Settings):
        self.conn = conn
        self.plan = plan
        self.run_id = run_id
        self.settings = settings
        self.fingerprint = approval.reorganization(plan.sha256)

    @property
    def applying(self) -> bool:
        return self.settings.mode == Mode.APPLY

    # ---------------------------------------------------------------- transactions
    def transaction(self, read_only: bool = False):
        return transaction(
            self.conn,
            lock_timeout=self.settings.lock_timeout,
            statement_timeout=self.settings.statement_timeout,
            read_only=read_only,
        )

    def lock_exclusive(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ADVISORY_LOCK,))

    def context(self, catalog: Catalog) -> Context:
        return Context(
            self.conn, self.plan, self.run_id, self.settings, catalog, self.fingerprint if self.applying else None
        )

    def retrying(self, work):
        return with_lock_retry(work, attempts=self.settings.lock_retries)

    def _record_failure(
        self, step_id: str, phase: str, action: str, started: datetime, exc: BaseException, *, sources=(), target=None
    ) -> None:
        """Best effort, in its own transaction: the failed attempt's changes were rolled back."""
        if not self.applying:
            return
        try:
            with transaction(self.conn):
                self.write_ledger(
                    phase,
                    step_id,
                    action,
                    started,
                    "failed",
                    sources=list(sources),
                    target=target,
                    error=f"{type(exc).__name__}: {exc}"[:4000],
                )
        except psycopg.Error:
            pass

    def write_ledger(
        self, phase: str, step_id: str, action: str, started: datetime, outcome: str, mode: str = "apply", **fields
    ) -> None:
        ledger.record(
            self.conn,
            run_id=self.run_id,
            phase=phase,
            step_id=step_id,
            action=action,
            mode=mode,
            plan_sha256=self.plan.sha256,
            started_at=started,
            duration_ms=_ms_since(started),
            outcome=outcome,
            **fields,
        )

    # ---------------------------------------------------------------- lint
    def lint(self, phases: list[str] | None = None) -> lint.LintReport:
        with self.transaction(read_only=True):
            return lint.lint_live(self.conn, self.plan, phases)

    # ---------------------------------------------------------------- preflight
    def preflight(self, phase_id: str) -> StepReport:
        """Lint; then (apply) schemas, discriminator and provenance columns, and the snapshot."""
        require_supported_server(self.conn)
        phase = self.plan.phase(phase_id)
        started = datetime.now(UTC)
        step_id = f"{phase_id}__preflight"
        try:
            with self.transaction(read_only=True):
                report = lint.lint_live(self.conn, self.plan, [phase_id])
                catalog = read_catalog(self.conn)
                ddl = self._preflight_ddl(phase, catalog)
                rendered = [f"-- {s.purpose}\n{s.render(self.conn)};" for s in ddl]
                moving = [
                    a.source for s in phase.steps for a in s.actions if s.kind in ("ARCHIVE", "MOVE", "MERGE", "FOLD")
                ]
                broken_functions = functions_naming(self.conn, [t for t in moving if catalog.exists(t)])
            report.raise_if_failed()
            if not self.applying:
                with self.transaction(read_only=True):
                    snapshot = self._snapshot(phase, read_catalog(self.conn))
                text = _preflight_text(phase, report, rendered, snapshot, broken_functions, applied=False)
                return StepReport(step_id, "planned", text, {"tables": len(snapshot), "ddl": len(ddl)})
            with self.transaction():
                self.lock_exclusive()
                approved = approval.require(self.conn, self.fingerprint)
                ensure_schema(self.conn)
            for statement in self._preflight_ddl(phase, read_catalog(self.conn)):
                self.retrying(lambda statement=statement: self._run_ddl(statement))
            for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
                self._provenance_index(target)
            with self.transaction():
                self.lock_exclusive()
                catalog = read_catalog(self.conn)
                snapshot = self._snapshot(phase, catalog)
                self.conn.execute(
                    "DELETE FROM ple_ops.table_snapshot WHERE run_id = %s AND phase = %s", (self.run_id, phase_id)
                )
                for name, fp in snapshot.items():
                    self.conn.execute(
                        "INSERT INTO ple_ops.table_snapshot (run_id, phase, table_name, table_oid, relfilenode, columns, row_count, checksum, proof) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            self.run_id,
                            phase_id,
                            name,
                            fp.oid,
                            fp.relfilenode,
                            list(fp.columns),
                            fp.rows,
                            fp.checksum,
                            fp.proof,
                        ),
                    )
                self.write_ledger(
                    phase_id,
                    step_id,
                    "PREFLIGHT",
                    started,
                    "applied",
                    sql_text="\n".join(rendered) or None,
                    rows_before={n: fp.rows for n, fp in snapshot.items()},
                    checksums_before={n: str(fp.checksum) for n, fp in snapshot.items() if fp.checksum is not None},
                    details={
                        "approval": approved,
                        "broken_functions": broken_functions,
                        "lint_warnings": [w.message for w in report.warnings],
                    },
                )
            text = _preflight_text(phase, report, rendered, snapshot, broken_functions, applied=True)
            return StepReport(step_id, "applied", text, {"tables": len(snapshot), "ddl": len(rendered)})
        except PermanentError as exc:
            self._record_failure(step_id, phase_id, "PREFLIGHT", started, exc)
            raise

    def _preflight_ddl(self, phase: Phase, catalog: Catalog):
        statements = []
        ctx = self.context(catalog)
        schemas = {self.plan.archive_schema} | {s.action.target.split(".")[0] for s in phase.steps if s.kind == "MOVE"}
        for schema in sorted(schemas - catalog.schemas):
            statements.append(
                Statement(f"schema {schema}", sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            )
        for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
            if catalog.exists(target):
                statements += merge_action.prepare_target(ctx, target)
        return statements

    def _run_ddl(self, statement) -> None:
        with self.transaction():
            self.lock_exclusive()
            approval.require(self.conn, self.fingerprint)
            self.conn.execute(statement.query)

    def _provenance_index(self, target: str) -> None:
        """CREATE INDEX CONCURRENTLY cannot run in a transaction; an invalid leftover of a killed
        build is dropped and rebuilt."""
        statement = merge_action.provenance_index(target)
        schema = target.split(".", maxsplit=1)[0]
        name = f"{target.split('.', 1)[1]}_ctb_provenance"[:63]
        valid = self.conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        ).fetchone()
        if valid and not valid[0]:
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name)))
        self.conn.execute(statement.query)

    def touched(self, phase: Phase) -> list[tuple[str, str]]:
        """(table as the plan names it, where it is after the phase) for every table it touches."""
        pairs = []
        for step in phase.steps:
            for action in step.actions:
                if step.kind in ("ARCHIVE", "MOVE"):
                    pairs.append((action.source, action.target))
                elif step.kind in ("MERGE", "FOLD"):
                    pairs.append((action.source, self.plan.archive_name(action.source)))
                    pairs.append((action.target, action.target))
                else:
                    pairs.append((action.source, action.source))
        return list(dict.fromkeys(pairs))

    def _snapshot(self, phase: Phase, catalog: Catalog) -> dict[str, Fingerprint]:
        """Every table the phase touches, wherever it stands now: the rows a merge or fold moves
        (their sources) by count and checksum; every other table by its identity (proof.identity)."""
        moved = {a.source for s in phase.steps if s.kind in ("MERGE", "FOLD") for a in s.actions}
        result = {}
        for name, after in self.touched(phase):
            table = catalog.get(name) or catalog.get(after)
            if table is None or name in result:
                continue
            result[name] = fingerprint(self.conn, table) if name in moved else identity(self.conn, table)
        return result

    # ---------------------------------------------------------------- steps
    def run_step(self, step_id: str) -> StepReport:
        step = self.plan.step(step_id)
        module = module_for(step)
        started = datetime.now(UTC)
        sources = [a.source for a in step.actions]
        if not self.applying:
            with self.transaction(read_only=True):
                ctx = self.context(read_catalog(self.conn))
                state = module.check(ctx, step)
                if state == State.DONE:
                    return StepReport(step_id, "already_done", f"{step_id}: already applied; would change nothing")
                statements = module.statements(ctx, step)
                preview = module.preview(ctx, step)
                text = f"{step_id}: would run\n" + "\n".join(
                    f"-- {s.purpose}\n{s.render(self.conn)};" for s in statements
                )
                text += f"\n-- live: {preview}"
            return StepReport(step_id, "planned", text, preview)
        try:
            outcome = self.retrying(lambda: self._apply_step(step, module, started))
        except PermanentError as exc:
            self._record_failure(step_id, step.phase, step.kind, started, exc, sources=sources, target=step.target)
            raise
        except PERMANENT_DB_ERRORS as exc:
            self._record_failure(step_id, step.phase, step.kind, started, exc, sources=sources, target=step.target)
            raise PlanRejected(
                f"{step_id}: the database refused the step ({type(exc).__name__}: {exc}); nothing was written"
            ) from exc
        except psycopg.Error as exc:
            self._record_failure(step_id, step.phase, step.kind, started, exc, sources=sources, target=step.target)
            raise
        text = f"{step_id}: {outcome.status}"
        if outcome.details:
            text += f"\n  {outcome.details}"
        return StepReport(
            step_id, outcome.status, text, {"rows_before": outcome.rows_before, "rows_after": outcome.rows_after}
        )

    def _apply_step(self, step: Step, module, started: datetime) -> Outcome:
        with self.transaction():
            self.lock_exclusive()
            approval.require(self.conn, self.fingerprint)
            ctx = self.context(read_catalog(self.conn))
            if module.check(ctx, step) == State.DONE:
                outcome = Outcome(step, "already_done")
                self._record(step, outcome, started)
                return outcome
            if getattr(module, "transactional", lambda *_: True)(ctx, step):
                statements = module.statements(ctx, step)
                outcome = module.apply(ctx, step)
                self._record(step, outcome, started, statements)
                return outcome
        # Multi-transaction actions (the low-lock ADD_PK) run their own transactions.
        ctx = self.context(read_catalog(self.conn))
        outcome = module.apply(ctx, step)
        with self.transaction():
            self._record(step, outcome, started)
        return outcome

    def _record(self, step: Step, outcome: Outcome, started: datetime, statements=None) -> None:
        self.write_ledger(
            step.phase,
            step.step_id,
            step.kind,
            started,
            outcome.status,
            sources=[a.source for a in step.actions],
            target=step.target,
            sql_text="\n".join(s.render(self.conn) for s in statements) if statements else None,
            rows_before=outcome.rows_before,
            rows_after=outcome.rows_after,
            checksums_before=outcome.checksums_before,
            checksums_after=outcome.checksums_after,
            details=outcome.details | ({"notes": outcome.notes} if outcome.notes else {}),
        )

    # ---------------------------------------------------------------- verify, freeze, revert
    def verify(self, phase_id: str) -> StepReport:
        from ple.reorg.verify import verify_phase

        return verify_phase(self, phase_id)

    def freeze(self, phase_id: str) -> StepReport:
        from ple.reorg.freeze import freeze_phase

        return freeze_phase(self, phase_id)

    def revert_phase(self, phase_id: str) -> list[StepReport]:
        from ple.reorg.revert import revert_phase

        return revert_phase(self, phase_id)


def _ms_since(started: datetime) -> int:
    return int((datetime.now(UTC) - started).total_seconds() * 1000)


def _preflight_text(phase: Phase, report, rendered, snapshot, broken_functions, *, applied: bool) -> str:
    lines = [f"phase {phase.phase}: {phase.title}", report.render()]
    if rendered:
        lines.append(("ran" if applied else "would run") + " preflight DDL:")
        lines += ["  " + line for r in rendered for line in r.splitlines()]
    if broken_functions:
        lines.append("functions that name tables this phase moves (edit them after the phase):")
        lines += [f"  {function} names {table}" for function, table in broken_functions]
    for action in phase.pending:
        lines.append(f"PENDING {action.source}: {action.question}")
    lines.append(f"snapshot ({'stored' if applied else 'not stored in plan mode'}): {len(snapshot)} tables")
    lines += [
        f"  {name:<48} {fp.rows:>10,} rows  " + (f"checksum {fp.checksum}" if fp.checksum is not None else "identity")
        for name, fp in snapshot.items()
    ]
    return "\n".join(lines)
