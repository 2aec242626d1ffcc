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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from ple.catalog import Catalog, functions_naming, read_catalog
from ple.db import transaction, with_lock_retry
from ple.errors import PermanentError, PlanRejected, VerificationFailed
from ple.reorg import ledger, lint
from ple.reorg.actions import merge as merge_action
from ple.reorg.actions import module_for
from ple.reorg.context import Context, Mode, Outcome, Settings, State, Statement
from ple.reorg.plan import Phase, Plan, Step
from ple.reorg.proof import Fingerprint, fingerprint
from ple.server import require_supported_server
from ple.sqlutil import qualified

ADVISORY_LOCK = "ple.ctb_reorganization"
# Errors in the data or the SQL: a retry would fail the same way.
PERMANENT_DB_ERRORS = (
    pg_errors.DataError,
    pg_errors.IntegrityError,
    pg_errors.ProgrammingError,
    pg_errors.FeatureNotSupported,
)


@dataclass
class StepReport:
    step_id: str
    status: str
    text: str
    summary: dict = field(default_factory=dict)


class Executor:
    def __init__(self, conn: psycopg.Connection, plan: Plan, run_id: str, settings: Settings):
        self.conn = conn
        self.plan = plan
        self.run_id = run_id
        self.settings = settings

    @property
    def applying(self) -> bool:
        return self.settings.mode == Mode.APPLY

    # ---------------------------------------------------------------- transactions
    def _transaction(self, read_only: bool = False):
        return transaction(
            self.conn,
            lock_timeout=self.settings.lock_timeout,
            statement_timeout=self.settings.statement_timeout,
            read_only=read_only,
        )

    def _exclusive(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ADVISORY_LOCK,))

    def _context(self, catalog: Catalog) -> Context:
        return Context(self.conn, self.plan, self.run_id, self.settings, catalog)

    def _retrying(self, work):
        return with_lock_retry(work, attempts=self.settings.lock_retries)

    def _record_failure(
        self, step_id: str, phase: str, action: str, started: datetime, exc: BaseException, *, sources=(), target=None
    ) -> None:
        """Best effort, in its own transaction: the failed attempt's changes were rolled back."""
        if not self.applying:
            return
        try:
            with transaction(self.conn):
                self._ledger(
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

    def _ledger(
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
        with self._transaction(read_only=True):
            return lint.lint_live(self.conn, self.plan, phases)

    # ---------------------------------------------------------------- preflight
    def preflight(self, phase_id: str) -> StepReport:
        """Lint; then (apply) schemas, discriminator and provenance columns, and the snapshot."""
        require_supported_server(self.conn)
        phase = self.plan.phase(phase_id)
        started = datetime.now(UTC)
        step_id = f"{phase_id}__preflight"
        try:
            with self._transaction(read_only=True):
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
                with self._transaction(read_only=True):
                    snapshot = self._snapshot(phase, read_catalog(self.conn))
                text = _preflight_text(phase, report, rendered, snapshot, broken_functions, applied=False)
                return StepReport(step_id, "planned", text, {"tables": len(snapshot), "ddl": len(ddl)})
            with self._transaction():
                self._exclusive()
                approval = ledger.require_approval(self.conn, self.plan.sha256)
                ledger.ensure_schema(self.conn)
            for statement in self._preflight_ddl(phase, read_catalog(self.conn)):
                self._retrying(lambda statement=statement: self._run_ddl(statement))
            for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
                self._provenance_index(target)
            with self._transaction():
                self._exclusive()
                catalog = read_catalog(self.conn)
                snapshot = self._snapshot(phase, catalog)
                self.conn.execute(
                    "DELETE FROM ple_ops.table_snapshot WHERE run_id = %s AND phase = %s", (self.run_id, phase_id)
                )
                for name, fp in snapshot.items():
                    self.conn.execute(
                        "INSERT INTO ple_ops.table_snapshot (run_id, phase, table_name, table_oid, relfilenode, columns, row_count, checksum) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            self.run_id,
                            phase_id,
                            name,
                            fp.oid,
                            fp.relfilenode,
                            list(fp.columns),
                            fp.rows,
                            fp.checksum,
                        ),
                    )
                self._ledger(
                    phase_id,
                    step_id,
                    "PREFLIGHT",
                    started,
                    "applied",
                    sql_text="\n".join(rendered) or None,
                    rows_before={n: fp.rows for n, fp in snapshot.items()},
                    checksums_before={n: str(fp.checksum) for n, fp in snapshot.items()},
                    details={
                        "approval": approval,
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
        ctx = self._context(catalog)
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
        with self._transaction():
            self._exclusive()
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

    def _touched(self, phase: Phase) -> list[tuple[str, str]]:
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
        """Count and checksum every table the phase touches, wherever it stands now."""
        result = {}
        for name, after in self._touched(phase):
            table = catalog.get(name) or catalog.get(after)
            if table is None or name in result:
                continue
            merged_into = table.column("ctb_source_table") is not None
            result[name] = fingerprint(self.conn, table, native_only=merged_into)
        return result

    # ---------------------------------------------------------------- steps
    def run_step(self, step_id: str) -> StepReport:
        step = self.plan.step(step_id)
        module = module_for(step)
        started = datetime.now(UTC)
        sources = [a.source for a in step.actions]
        if not self.applying:
            with self._transaction(read_only=True):
                ctx = self._context(read_catalog(self.conn))
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
            outcome = self._retrying(lambda: self._apply_step(step, module, started))
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
        with self._transaction():
            self._exclusive()
            ledger.require_approval(self.conn, self.plan.sha256)
            ctx = self._context(read_catalog(self.conn))
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
        ctx = self._context(read_catalog(self.conn))
        outcome = module.apply(ctx, step)
        with self._transaction():
            self._record(step, outcome, started)
        return outcome

    def _record(self, step: Step, outcome: Outcome, started: datetime, statements=None) -> None:
        self._ledger(
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

    # ---------------------------------------------------------------- verify
    def _stored_snapshot(self, phase_id: str) -> list[tuple]:
        rows = self.conn.execute(
            "SELECT table_name, table_oid, relfilenode, columns, row_count, checksum FROM ple_ops.table_snapshot "
            "WHERE phase = %s AND run_id = coalesce((SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s AND run_id = %s LIMIT 1), "
            "(SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s ORDER BY taken_at DESC LIMIT 1))",
            (phase_id, phase_id, self.run_id, phase_id),
        ).fetchall()
        if not rows:
            raise VerificationFailed(f"no preflight snapshot for phase {phase_id}: run the phase's preflight first")
        return rows

    def _merged_rows(self, target: str) -> int:
        """Rows the ledger says were merged into `target` (latest applied attempt of each step)."""
        return self.conn.execute(
            "SELECT coalesce(sum((rows_after ->> target)::bigint), 0) FROM ("
            " SELECT DISTINCT ON (step_id) rows_after, target, outcome FROM ple_ops.action_ledger"
            " WHERE action = 'MERGE' AND target = %s AND outcome = 'applied' ORDER BY step_id, attempt_id DESC) l",
            (target,),
        ).fetchone()[0]

    def verify(self, phase_id: str) -> StepReport:
        """Counts and checksums against the snapshot, per-action proofs, then Great Expectations."""
        from ple.db import sqlalchemy_url
        from ple.expectations import TableSuite, validate

        phase = self.plan.phase(phase_id)
        step_id = f"{phase_id}__verify"
        started = datetime.now(UTC)
        if not self.applying:
            tables = self._touched(phase)
            return StepReport(
                step_id,
                "planned",
                f"{step_id}: would compare {len(tables)} tables with the preflight snapshot and run their expectation suites",
            )
        problems, lines, suites = [], [], []
        with self._transaction(read_only=True):
            catalog = read_catalog(self.conn)
            by_oid = {t.oid: t for t in catalog.tables.values()}
            located = {}
            for name, oid, _relfilenode, columns, rows, checksum in self._stored_snapshot(phase_id):
                table = by_oid.get(oid)
                if table is None:
                    problems.append(f"{name} (oid {oid}) no longer exists")
                    continue
                located[name] = table.name
                merged_into = table.column("ctb_source_table") is not None
                now = fingerprint(self.conn, table, list(columns), native_only=merged_into)
                same = (now.rows, now.checksum) == (rows, int(checksum))
                lines.append(
                    f"  {name:<44} -> {table.name:<50} rows {rows:>9,} -> {now.rows:>9,}  checksum {'equal' if same else 'DIFFERS'}"
                )
                if not same:
                    message = f"{name}: rows {rows} -> {now.rows}, content checksum {'equal' if now.checksum == int(checksum) else 'differs'} since the preflight snapshot"
                    if merged_into and self.settings.allow_concurrent_writes:
                        lines.append(f"    tolerated (allow_concurrent_writes): {message}")
                    else:
                        problems.append(message)
                expected = rows + (self._merged_rows(table.name) if merged_into else 0)
                keys = (
                    [table.primary_key] if table.primary_key and (merged_into or name in self._canonical(phase)) else []
                )
                suites.append(
                    TableSuite(
                        table.name,
                        row_count=None if merged_into and self.settings.allow_concurrent_writes else expected,
                        not_null=keys[0] if keys else [],
                        unique=keys,
                    )
                )
            ctx = self._context(catalog)
            for step in phase.steps:
                problems += module_for(step).verify(ctx, step, located)
        results = validate(sqlalchemy_url(self.conn), suites, name=f"ctb_phase_{phase_id}")
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
        with self._transaction():
            self._ledger(
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

    def _canonical(self, phase: Phase) -> set[str]:
        return {s.target for s in phase.steps if s.kind in ("MERGE", "FOLD", "ADD_PK")}

    # ---------------------------------------------------------------- freeze
    def archives_of(self, phase: Phase) -> list[str]:
        tables = []
        for step in phase.steps:
            for action in step.actions:
                if step.kind == "ARCHIVE":
                    tables.append(action.target)
                elif step.kind in ("MERGE", "FOLD"):
                    tables.append(self.plan.archive_name(action.source))
        return tables

    def freeze(self, phase_id: str) -> StepReport:
        """Record the phase complete; make the archive tables it produced read-only."""
        phase = self.plan.phase(phase_id)
        step_id = f"{phase_id}__freeze"
        archives = self.archives_of(phase)
        if not self.applying:
            return StepReport(
                step_id,
                "planned",
                f"{step_id}: would make read-only: {', '.join(archives) or 'nothing'} and mark phase {phase_id} frozen",
            )
        started = datetime.now(UTC)

        def work() -> str:
            with self._transaction():
                self._exclusive()
                ledger.require_approval(self.conn, self.plan.sha256)
                done = self.conn.execute(
                    "SELECT 1 FROM ple_ops.phase_status WHERE phase = %s AND status = 'frozen' AND plan_sha256 = %s",
                    (phase_id, self.plan.sha256),
                ).fetchone()
                if done:
                    self._ledger(
                        phase_id,
                        step_id,
                        "FREEZE",
                        started,
                        "already_done",
                    )
                    return "already_done"
                detached = {}
                for name in archives:
                    detached[name] = self._detach_foreign_keys(name)
                    self.conn.execute(
                        sql.SQL(
                            "CREATE OR REPLACE TRIGGER ple_ctb_frozen BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                            "FOR EACH STATEMENT EXECUTE FUNCTION ple_ops.forbid_writes({})"
                        ).format(qualified(name), sql.Literal(f"phase {phase_id}"))
                    )
                    self.conn.execute(
                        "INSERT INTO ple_ops.table_registry (table_oid, table_name, ctb_class, phase, run_id) "
                        "VALUES (%s::regclass::oid, %s, 'ARCHIVE', %s, %s) ON CONFLICT (table_oid) DO NOTHING",
                        (name, name, phase_id, self.run_id),
                    )
                self.conn.execute(
                    "INSERT INTO ple_ops.phase_status (phase, status, run_id, plan_sha256, frozen_tables) VALUES (%s, 'frozen', %s, %s, %s) "
                    "ON CONFLICT (phase) DO UPDATE SET status = 'frozen', run_id = EXCLUDED.run_id, plan_sha256 = EXCLUDED.plan_sha256, "
                    "frozen_tables = EXCLUDED.frozen_tables, changed_at = now()",
                    (phase_id, self.run_id, self.plan.sha256, archives),
                )
                self._ledger(
                    phase_id,
                    step_id,
                    "FREEZE",
                    started,
                    "applied",
                    details={"read_only": archives, "detached_foreign_keys": {k: v for k, v in detached.items() if v}},
                )
                return "applied"

        status = self._retrying(work)
        return StepReport(step_id, status, f"{step_id}: {status}; read-only: {', '.join(archives) or 'nothing'}")

    def _detach_foreign_keys(self, archive: str) -> list[str]:
        """A frozen archive must not constrain the live tables it left: its foreign keys into live
        tables are dropped (their definitions go to the ledger; revert adds them back)."""
        keys = self.conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' AND confrelid::regclass::text NOT LIKE 'archive.%%'",
            (archive,),
        ).fetchall()
        for name, _definition in keys:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified(archive), sql.Identifier(name))
            )
        return [f"{name}: {definition}" for name, definition in keys]

    # ---------------------------------------------------------------- revert
    def revert_phase(self, phase_id: str) -> list[StepReport]:
        """Undo a phase, last step first: thaw its archives, then revert every step. Nothing is lost
        either way: merged copies are removed only once their originals are back in place."""
        phase = self.plan.phase(phase_id)
        reports = []
        started = datetime.now(UTC)
        with self._transaction():
            self._exclusive()
            ledger.require_approval(self.conn, self.plan.sha256)
            for name in self.archives_of(phase):
                if read_catalog(self.conn, [name.split(".")[0]]).exists(name):
                    self.conn.execute(sql.SQL("DROP TRIGGER IF EXISTS ple_ctb_frozen ON {}").format(qualified(name)))
            frozen = self.conn.execute(
                "SELECT details FROM ple_ops.action_ledger WHERE step_id = %s AND outcome = 'applied' ORDER BY attempt_id DESC LIMIT 1",
                (f"{phase_id}__freeze",),
            ).fetchone()
            for archive, keys in ((frozen[0] or {}).get("detached_foreign_keys", {}) if frozen else {}).items():
                for key in keys:
                    name, definition = key.split(": ", 1)
                    # the definition is pg_get_constraintdef's own text; NOT VALID: the rows are as they were
                    self.conn.execute(
                        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                            qualified(archive), sql.Identifier(name), sql.SQL(definition)
                        )
                    )
            self.conn.execute(
                "UPDATE ple_ops.phase_status SET status = 'reverted', changed_at = now() WHERE phase = %s", (phase_id,)
            )
        for step in reversed(phase.steps):
            module = module_for(step)

            def work(step=step, module=module) -> Outcome:
                with self._transaction():
                    self._exclusive()
                    outcome = module.revert(self._context(read_catalog(self.conn)), step)
                    if outcome.status == "reverted":
                        self._ledger(
                            phase_id,
                            step.step_id,
                            step.kind,
                            started,
                            "reverted",
                            mode="revert",
                            sources=[a.source for a in step.actions],
                            target=step.target,
                            details=outcome.details,
                        )
                    return outcome

            outcome = self._retrying(work)
            reports.append(StepReport(step.step_id, outcome.status, f"{step.step_id}: {outcome.status}"))
        return reports


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
    lines += [f"  {name:<48} {fp.rows:>10,} rows  checksum {fp.checksum}" for name, fp in snapshot.items()]
    return "\n".join(lines)
