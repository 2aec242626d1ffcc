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

from ple import approval, governance
from ple.catalog import Catalog, dependent_views, functions_naming, read_catalog
from ple.db import transaction, with_lock_retry
from ple.errors import NotApproved, PermanentError, PlanRejected
from ple.ops import ensure_schema
from ple.reorg import compat, decision_store, gate, guards, ledger, lint, pending, reconcile
from ple.reorg import decisions as decisions_module
from ple.reorg.actions import create_target, merge_sql, module_for, set_aside
from ple.reorg.context import ADVISORY_LOCK, Context, Mode, Outcome, Settings, State, Statement, StepReport
from ple.reorg.freeze import freeze_phase
from ple.reorg.plan import Phase, Plan, Step
from ple.reorg.proof import Fingerprint, fingerprint, identity
from ple.reorg.rehearse import rehearse_phase
from ple.reorg.revert import revert_phase
from ple.reorg.verify import verify_phase
from ple.server import require_supported_server

# Errors in the data or the SQL: a retry would fail the same way.
PERMANENT_DB_ERRORS = (
    pg_errors.DataError,
    pg_errors.IntegrityError,
    pg_errors.ProgrammingError,
    pg_errors.FeatureNotSupported,
)


class Executor:
    """`plan` is the declared plan; the executor runs it as this database's decisions shape it
    (`self.plan`, see decisions.effective_plan), and the approval covers both."""

    def __init__(
        self,
        conn: psycopg.Connection,
        plan: Plan,
        run_id: str,
        settings: Settings,
        decisions: decisions_module.Decisions | None = None,
    ):
        self.conn = conn
        self.decisions = decisions if decisions is not None else decisions_module.for_connection(conn)
        self.declared = pending.answered(plan, self.decisions.answers)  # 1L questions as answered
        self.plan = decisions_module.effective_plan(self.declared, self.decisions)
        self.run_id = run_id
        self.settings = settings
        self.fingerprint = decisions_module.fingerprint(plan, self.decisions)

    @property
    def applying(self) -> bool:
        return self.settings.mode == Mode.APPLY

    @property
    def rehearsing(self) -> bool:
        return self.settings.mode == Mode.REHEARSE

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

    def approval_of(self, phase_id: str) -> approval.Fingerprint:
        """What an apply of this phase writes under: the plan's fingerprint scoped to the phase
        (an approval of the phase, or of the whole plan, covers it: ple/approval.py)."""
        return self.fingerprint.scoped(approval.phase_scope(phase_id))

    def require_approval(self, phase_id: str, step_id: str | None = None) -> dict:
        """Re-checked in every transaction that writes, and claimed by this run for the phase. An
        approval given on a rehearsal (a phase's request rehearses it) covers what that rehearsal
        carried out cleanly, and nothing else."""
        fingerprint = self.approval_of(phase_id)
        decision_store.require_in_force(self.conn, fingerprint.parts.get("decisions"))
        pending.require_in_force(self.conn, fingerprint.parts.get("answers_1l"))
        granted = approval.require(self.conn, fingerprint, run_id=self.run_id)
        rehearsal = (granted.get("details") or {}).get("rehearsal") or {}
        if phase_id in rehearsal:
            rehearsed = rehearsal[phase_id]
            if rehearsed.get("status") != "rehearsed":
                raise NotApproved(
                    f"approval {granted['approval_id']} was given on a rehearsal of phase {phase_id} that "
                    f"{rehearsed.get('status')}: rehearse again and ask for a new approval"
                )
            steps = rehearsed.get("steps") or {}
            if step_id is not None and steps.get(step_id) in (None, "failed", "over_budget"):
                raise NotApproved(
                    f"approval {granted['approval_id']} covers the steps its rehearsal carried out; {step_id} "
                    f"was {steps.get(step_id, 'not rehearsed')}: nothing written. "
                    "Rehearse the phase again and ask for a new approval"
                )
        return granted

    def context(self, catalog: Catalog, phase_id: str | None = None) -> Context:
        """`phase_id`: the phase whose approval the context's batched transactions re-check."""
        held = self.approval_of(phase_id) if self.applying and phase_id else None
        ctx = Context(self.conn, self.plan, self.run_id, self.settings, catalog, held)
        ctx.no_compat = tuple(s for s, entry in self.decisions.actions.items() if (entry or {}).get("compat") == "none")
        return ctx

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
            return lint.lint_live(self.conn, self.declared, phases, decisions=self.decisions)

    # ---------------------------------------------------------------- preflight
    def preflight(self, phase_id: str) -> StepReport:
        """Lint; then (apply) schemas, discriminator and provenance columns, and the snapshot."""
        require_supported_server(self.conn)
        if self.rehearsing:
            return rehearse_phase(self, phase_id)
        phase = self.plan.phase(phase_id)
        started = datetime.now(UTC)
        step_id = f"{phase_id}__preflight"
        try:
            with self.transaction(read_only=True):
                catalog = read_catalog(self.conn)
                report = lint.lint_live(self.conn, self.declared, [phase_id], catalog, self.decisions)
                ddl = self.preflight_ddl(phase, catalog)
                rendered = [f"-- {s.purpose}\n{s.render(self.conn)};" for s in ddl]
                moving = [
                    a.source for s in phase.steps for a in s.actions if s.kind in ("ARCHIVE", "MOVE", "MERGE", "FOLD")
                ]
                broken_functions = functions_naming(self.conn, [t for t in moving if catalog.exists(t)])
                naming = compat.readers(
                    self.context(catalog),
                    phase,
                    broken_functions,
                    dependent_views(self.conn, [t for t in moving if catalog.exists(t)]),
                )
            if not self.applying:
                # plan mode runs to the end and shows what blocks apply; it never raises on it
                with self.transaction(read_only=True):
                    snapshot = self.snapshot(phase, read_catalog(self.conn), counted=False)
                text = _preflight_text(phase, report, rendered, snapshot, naming, applied=False)
                return StepReport(
                    step_id,
                    "planned",
                    text,
                    {
                        "tables": len(snapshot),
                        "ddl": len(ddl),
                        "blocking": len(report.errors),
                        "broken_functions": [f"{function} names {table}" for function, table in broken_functions],
                    },
                )
            report.raise_if_failed()
            with self.transaction():
                self.lock_exclusive()
                approved = self.require_approval(phase_id)
                ensure_schema(self.conn)
            for target, definition in self.targets_to_create(phase):
                self.retrying(lambda t=target, d=definition: create_target.ensure(self, phase_id, t, d))
            for statement in self.preflight_ddl(phase, read_catalog(self.conn)):
                self.retrying(lambda statement=statement: self._run_ddl(statement, phase))
            for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
                self._provenance_index(target)
            with self.transaction():
                self.lock_exclusive()
                catalog = read_catalog(self.conn)
                snapshot = self.snapshot(phase, catalog, counted=False)
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
                    rows_before={n: fp.rows for n, fp in snapshot.items() if fp.checksum is not None},
                    checksums_before={n: str(fp.checksum) for n, fp in snapshot.items() if fp.checksum is not None},
                    details={
                        "approval": approved,
                        "broken_functions": broken_functions,
                        "lint_warnings": [w.message for w in report.warnings],
                    },
                )
            text = _preflight_text(phase, report, rendered, snapshot, naming, applied=True)
            return StepReport(step_id, "applied", text, {"tables": len(snapshot), "ddl": len(rendered)})
        except PermanentError as exc:
            self._record_failure(step_id, phase_id, "PREFLIGHT", started, exc)
            raise

    def targets_to_create(self, phase: Phase) -> list[tuple[str, dict]]:
        """Merge targets of the phase that the decisions create (actions/create_target.py)."""
        targets = sorted({s.action.target for s in phase.steps if s.kind == "MERGE"})
        return [(t, d) for t in targets if (d := (self.decisions.targets.get(t) or {}).get("create")) is not None]

    def created_targets(self, phase: Phase, catalog: Catalog) -> list[Statement]:
        """Merge targets that are gone and that the decisions create, as statements (plan, rehearse)."""
        ctx = self.context(catalog)
        return [
            statement
            for target, definition in self.targets_to_create(phase)
            if create_target.check(ctx, target) == State.PENDING
            for statement in create_target.statements(ctx, target, definition)
        ]

    def preflight_ddl(self, phase: Phase, catalog: Catalog):
        statements = []
        ctx = self.context(catalog)
        schemas = {self.plan.archive_schema} | {s.action.target.split(".")[0] for s in phase.steps if s.kind == "MOVE"}
        for schema in sorted(schemas - catalog.schemas):
            statements.append(
                Statement(f"schema {schema}", sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            )
        if not self.applying:  # plan mode shows the targets the decisions create, before their columns
            statements += self.created_targets(phase, catalog)
        for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
            if catalog.exists(target):
                statements += merge_sql.prepare_target(ctx, target)
        return statements

    def _run_ddl(self, statement, phase: Phase) -> None:
        """One preflight statement in its own transaction; a merge target frozen in the owner's
        registry that a person let the phase alter is unfrozen for it and frozen again before commit."""
        accepted = self.decisions.accepted if self.decisions is not None else {}
        with self.transaction():
            self.lock_exclusive()
            self.require_approval(phase.phase)
            unfrozen = governance.set_frozen(self.conn, gate.frozen_merge_targets(phase, accepted), False)
            self.conn.execute(statement.query)
            governance.set_frozen(self.conn, unfrozen, True)

    def _provenance_index(self, target: str) -> None:
        """CREATE INDEX CONCURRENTLY cannot run in a transaction; an invalid leftover of a killed
        build is dropped and rebuilt."""
        statement = merge_sql.provenance_index(target)
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

    def snapshot(self, phase: Phase, catalog: Catalog, counted: bool = True) -> dict[str, Fingerprint]:
        """Every table the phase touches, wherever it stands now: the rows a merge or fold moves
        (their sources) by count and checksum; every other table by its identity (proof.identity:
        OID and data file, no scan). Merge and fold targets are counted too (verify reports the
        application's writes to them); `counted` counts every table, as a rehearsal compares."""
        moved = {a.source for s in phase.steps if s.kind in ("MERGE", "FOLD") for a in s.actions}
        receiving = {s.target for s in phase.steps if s.kind in ("MERGE", "FOLD")}  # counted: verify reports writes
        result = {}
        for name, after in self.touched(phase):
            table = catalog.get(name) or catalog.get(after)
            if table is None or name in result:
                continue
            result[name] = (
                fingerprint(self.conn, table)
                if name in moved
                else identity(self.conn, table, counted=counted or name in receiving)
            )
        return result

    # ---------------------------------------------------------------- steps
    def resolve(self, step_id: str) -> decisions_module.ResolvedStep:
        """The step as decided, resolved once: what runs, what is left out, what is set aside."""
        return decisions_module.resolve(self.declared, self.plan, self.decisions, step_id)

    def run_step(self, step_id: str) -> StepReport:
        if self.rehearsing:
            return StepReport(step_id, "rehearsed", f"{step_id}: carried out and rolled back in the phase's rehearsal")
        resolved = self.resolve(step_id)
        step = resolved.step
        lines = [item.line() for item in resolved.left_out]
        if step is None:
            status = self._record_left_out(resolved) if self.applying else "planned"
            return StepReport(step_id, status, "\n".join(lines))
        module = module_for(step)
        started = datetime.now(UTC)
        sources = [a.source for a in step.actions]
        if not self.applying:
            with self.transaction(read_only=True):
                catalog = read_catalog(self.conn)
                ctx = self.context(catalog)
                aside = self.set_asides(ctx, resolved)
                found = guards.inspect(self.conn, self.plan, catalog, self.decisions, steps=[step])
                if aside:  # the step's own SQL is rendered on the catalog as the set-aside leaves it
                    lines += [f"{step_id}: first, in the same transaction, set aside (decided):"] + [
                        f"-- {s.purpose}\n{s.render(self.conn)};"
                        for item in aside
                        for s in set_aside.statements(ctx, item)
                    ]
                    ctx = self.context(set_aside.as_after(catalog, aside))
                created = self._created_first(step, ctx)
                if created:  # its SQL needs the table the preflight creates: rendered once it exists
                    return StepReport(step_id, "planned", "\n".join([*lines, created]))
                try:
                    state = module.check(ctx, step)
                except PlanRejected as exc:
                    return StepReport(step_id, "planned", "\n".join([*lines, f"{step_id}: BLOCKED: {exc}"]))
                if state == State.DONE:
                    refusal = self._unproven_done(step)
                    if refusal:  # what apply would say: not "done" on the catalog's word alone
                        return StepReport(step_id, "planned", "\n".join([*lines, f"{step_id}: BLOCKED: {refusal}"]))
                    return StepReport(
                        step_id, "already_done", "\n".join([*lines, f"{step_id}: done; would change nothing"])
                    )
                try:
                    statements = module.statements(ctx, step)
                    preview = (
                        {"set_aside_first": {i.occupant: set_aside.preview(self.context(catalog), i) for i in aside}}
                        if aside  # the names the step reads exist only once the set-aside ran
                        else module.preview(ctx, step)
                    )
                except PlanRejected as exc:
                    return StepReport(step_id, "planned", "\n".join([*lines, f"{step_id}: BLOCKED: {exc}"]))
                text = f"{step_id}: would run\n" + "\n".join(
                    f"-- {s.purpose}\n{s.render(self.conn)};" for s in statements
                )
                kept = compat.render(self.conn, compat.planned(ctx, step))
                if kept:
                    text += "\n-- then, in the same transaction, the old names keep working (compat):\n"
                    text += "\n".join(kept)
                bypass = guards.bypassed_triggers(found, step_id)
                if bypass:
                    text += "\n-- with these triggers disabled for the step's transaction only: " + ", ".join(
                        f"{t}.{name}" for t, name in bypass
                    )
                if governance.detect(self.conn):
                    names = gate.registrations(self.conn, self.plan, step)
                    known = governance.entries(self.conn, [r.table for r in names])
                    text += "".join(
                        f"\n-- first, in the same transaction: {r.line()}" for r in names if r.table not in known
                    )
                text += f"\n-- live: {preview}"
            return StepReport(step_id, "planned", "\n".join([*lines, text]), preview)
        if resolved.left_out:
            self._record_left_out(resolved)
        try:
            outcome = self.retrying(lambda: self._apply_step(resolved, module, started))
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
        text = "\n".join([*lines, f"{step_id}: {outcome.status}"])
        if outcome.details:
            text += f"\n  {outcome.details}"
        return StepReport(
            step_id, outcome.status, text, {"rows_before": outcome.rows_before, "rows_after": outcome.rows_after}
        )

    def _created_first(self, step: Step, ctx: Context) -> str | None:
        """A merge into a target the decisions create, which the phase's preflight has not created
        yet: what plan mode can say of it honestly (the rehearsal carries it out on the created
        table), instead of calling it blocked."""
        if step.kind != "MERGE" or ctx.catalog.exists(step.target):
            return None
        if step.target not in {t for t, _ in self.targets_to_create(self.plan.phase(step.phase))}:
            return None
        line = (
            f"{step.step_id}: would merge {step.action.source} into {step.target}, which the preflight creates "
            f"first (decided; its CREATE TABLE is in the preflight above): the INSERT is rendered on the created "
            f"table, and carried out by a rehearsal (mode=rehearse)"
        )
        try:
            kept = compat.render(self.conn, compat.planned(ctx, step))
        except PlanRejected:  # a database error is not swallowed: it would leave the read-only transaction aborted
            kept = []
        if kept:
            line += "\n-- then, in the same transaction, the old names keep working (compat):\n" + "\n".join(kept)
        return line

    def _record_left_out(self, resolved: decisions_module.ResolvedStep) -> str:
        """Record each skipped or adopted action once: `skipped` with the reason, `adopted` with the
        evidence re-read now (an adoption whose evidence no longer holds is refused)."""
        statuses = []
        for item in resolved.left_out:
            action, how, entry, key = item.action, item.how, item.entry, item.ledger_key
            started = datetime.now(UTC)
            with self.transaction():
                self.lock_exclusive()
                self.require_approval(action.phase)
                ensure_schema(self.conn)
                outcome = "skipped" if how == "skip" else "adopted"
                if ledger.ledger_outcomes(self.conn).get(key, {}).get("outcome") == outcome:
                    statuses.append("already_done")
                    continue
                details = {"decision": entry}
                if how == "adopt":
                    verdict = self._verdict(resolved.declared, action)
                    if verdict.status != reconcile.Status.ADOPTED:
                        raise PlanRejected(
                            f"{action.source}: adoption decided, but the evidence does not hold now: {verdict.evidence}"
                        )
                    details |= {"evidence": verdict.evidence, **verdict.facts}
                else:
                    details["reason"] = entry["skip"]
                self.write_ledger(
                    action.phase,
                    key,
                    action.kind,
                    started,
                    outcome,
                    sources=[action.source],
                    target=action.target,
                    details=details,
                )
                statuses.append(outcome)
        return statuses[-1] if len(set(statuses)) == 1 else "decided"

    def _verdict(self, step: Step, action) -> reconcile.Verdict:
        catalog = read_catalog(self.conn)
        return reconcile.Reconciler(self.conn, self.declared, catalog, self.plan).verdict(step, action)

    def set_asides(self, ctx: Context, resolved: decisions_module.ResolvedStep) -> list:
        """Occupants of names this step needs that a decision sets aside (and that are still there)."""
        items = []
        for action in resolved.step.actions:
            name = resolved.set_aside.get(action.source)
            occupant = reconcile.destination(self.declared, resolved.declared_action(action))
            if name and occupant and ctx.catalog.exists(action.source):  # once the action is done, nothing to set aside
                item = set_aside.SetAside(occupant, name, resolved.step_id)
                if set_aside.check(ctx, item) == State.PENDING:
                    items.append(item)
        return items

    def step_schemas(self, resolved: decisions_module.ResolvedStep) -> list[str]:
        """The schemas holding every table a step names, reads, writes, produces or sets aside: its
        catalog read is scoped to them (a read of every schema before each step was most of a
        small step's time)."""
        names: set[str] = set(resolved.set_aside.values())
        for action in (*resolved.step.actions, *resolved.declared.actions):
            names |= {action.source, action.target, self.plan.archive_name(action.source)}
            if action.join is not None:
                names.add(action.join.via_table)
            if action.target in self.plan.merge_targets:
                names.add(self.plan.merge_targets[action.target].table)
        return sorted({name.split(".", 1)[0] for name in names if name})

    def _apply_step(self, resolved: decisions_module.ResolvedStep, module, started: datetime) -> Outcome:
        step = resolved.step
        schemas = self.step_schemas(resolved)
        with self.transaction():
            self.lock_exclusive()
            self.require_approval(step.phase, step.step_id)
            catalog = read_catalog(self.conn, schemas)
            ctx = self.context(catalog, step.phase)
            pending_asides = self.set_asides(ctx, resolved)
            accepted = self.decisions.accepted if self.decisions is not None else {}
            gate.admit(self.conn, self.plan, step, pending_asides, self.run_id, accepted, own=False)
            unfreeze, freeze_after = gate.frozen_names(self.plan, step, accepted)
            asides = [set_aside.carry_out(self, ctx, item, step) for item in pending_asides]
            if asides:
                catalog = read_catalog(self.conn, schemas)
                ctx = self.context(catalog, step.phase)
            if module.check(ctx, step) == State.DONE:
                return self._done_with_evidence(step, started)
            gate.admit(self.conn, self.plan, step, (), self.run_id, accepted)
            found = guards.inspect(self.conn, self.plan, catalog, self.decisions, steps=[step])
            blocked = guards.blocking(found)
            if blocked:
                raise PlanRejected(
                    f"{step.step_id}: blocked by guards before any write:\n"
                    + "\n".join("  " + g.line() for g in blocked)
                )
            bypass = guards.bypassed_triggers(found, step.step_id)
            ctx.bypass, ctx.unfreeze, ctx.freeze_after = tuple(bypass), tuple(unfreeze), tuple(freeze_after)
            planned_compat = {step.step_id: compat.planned(ctx, step)}
            ctx.compat_planned = planned_compat
            if module.transactional(ctx, step):
                statements = module.statements(ctx, step)
                with ctx.bypassing_triggers():
                    outcome = module.apply(ctx, step)
                made = compat.expand(ctx, step)
                if made:
                    outcome.details = outcome.details | {"compat_views": made}
                    statements = [*statements, *(s for c in planned_compat[step.step_id] for s in c.statements)]
                for item in asides:
                    outcome.details = outcome.details | item
                if bypass:
                    outcome.details = outcome.details | {
                        "triggers_disabled_in_transaction": [f"{t}.{n}" for t, n in bypass]
                    }
                if unfreeze:  # the ledger says what the decision let the step do to the owner's registry
                    outcome.details = outcome.details | {
                        "unfrozen_in_transaction": unfreeze,
                        "frozen_after": freeze_after,
                    }
                governance.forget_gone(self.conn, [step.step_id])  # an intermediate name, gone again
                self._record(step, outcome, started, statements)
                return outcome
        # Multi-transaction actions (folds, the low-lock ADD_PK) run their own transactions.
        ctx = self.context(read_catalog(self.conn, schemas), step.phase)
        ctx.bypass, ctx.unfreeze, ctx.freeze_after = tuple(bypass), tuple(unfreeze), tuple(freeze_after)
        ctx.compat_planned = planned_compat
        outcome = module.apply(ctx, step)
        if bypass:
            outcome.details = outcome.details | {"triggers_disabled_in_transaction": [f"{t}.{n}" for t, n in bypass]}
        if unfreeze:
            outcome.details = outcome.details | {"unfrozen_in_transaction": unfreeze, "frozen_after": freeze_after}
        with self.transaction():
            governance.forget_gone(self.conn, [step.step_id])
            self._record(step, outcome, started)
        return outcome

    def _unproven_done(self, step: Step) -> str | None:
        """The catalog looks done. Only the ledger (this tool did it) may say so; otherwise why
        not (an adoption is a decision, `make decide`, carried out as `adopted` with its evidence)."""
        verdicts = [self._verdict(step, a) for a in step.actions]
        if all(v.facts.get("ledger") for v in verdicts):
            return None
        return (
            f"{step.step_id}: the catalog looks done, but nothing proves this tool or anyone did it: "
            + "; ".join(f"{v.action.source}: {v.status.value}: {v.evidence}" for v in verdicts)
            + ". Decide (skip or adopt) with `make decide` after review"
        )

    def _done_with_evidence(self, step: Step, started: datetime) -> Outcome:
        refusal = self._unproven_done(step)
        if refusal:
            raise PlanRejected(refusal)
        outcome = Outcome(step, "already_done")
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
        return verify_phase(self, phase_id)

    def freeze(self, phase_id: str) -> StepReport:
        return freeze_phase(self, phase_id)

    def revert_phase(self, phase_id: str) -> list[StepReport]:
        return revert_phase(self, phase_id)


def _ms_since(started: datetime) -> int:
    return int((datetime.now(UTC) - started).total_seconds() * 1000)


def _preflight_text(phase: Phase, report, rendered, snapshot, naming: list[str], *, applied: bool) -> str:
    lines = [f"phase {phase.phase}: {phase.title}", report.render()]
    if rendered:
        lines.append(("ran" if applied else "would run") + " preflight DDL:")
        lines += ["  " + line for r in rendered for line in r.splitlines()]
    if naming:
        lines.append("function bodies and views that name tables this phase takes away:")
        lines += naming
    for action in phase.pending:
        lines.append(f"PENDING {action.source}: {action.question}")
    lines.append(f"snapshot ({'stored' if applied else 'not stored in plan mode'}): {len(snapshot)} tables")
    lines += [
        f"  {name:<48} "
        + (
            f"{fp.rows:>10,} rows  checksum {fp.checksum}"
            if fp.checksum is not None
            else f"~{fp.rows:>9,} rows  identity"
        )
        for name, fp in snapshot.items()
    ]
    return "\n".join(lines)
