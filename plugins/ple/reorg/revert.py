"""Revert a phase: an approved operation of its own, resumable at every point, that loses nothing.

Approval: subject "revert", over the plan, the engine code and the phase (`revert_fingerprint`),
re-checked with the advisory lock in every transaction. `plan` mode renders what each step's
revert would do and writes nothing.

Each step is undone in one transaction, last step first: thaw the archives the step produced (the
frozen trigger dropped, foreign keys detached at freeze composed again from ple_ops.detached_fk),
then the action's own revert, then its ledger row. A revert killed at any point leaves every step
either fully undone or untouched; the next run skips what is undone (each action's revert decides
from the live catalog) and goes on. Nothing is marked 'reverted' before everything is.

Lossless: a merged copy the application changed since the merge stays in the target (reported);
a folded column whose values the side tables cannot give back stays; a column the tool did not
create is never dropped. NOT NULLs the preflight relaxed are restored where no NULL remains
(reported otherwise). The last transaction proves the phase's tables against the preflight
snapshot: every table back under its name with the same OID, and the tables the tool owned while
the phase stood (merge sources, fold side tables) with exactly their preflight rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from ple import approval, governance
from ple.catalog import dependent_views, read_catalog
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg import compat, gate, guards, ledger, tool_changes
from ple.reorg.actions import create_target, fold_sql, merge, module_for, relocate, revert_blockers, set_aside
from ple.reorg.context import Outcome, State, StepReport, hold
from ple.reorg.plan import Phase
from ple.reorg.proof import columns_gone, fingerprint, row_hash, stable_text
from ple.reorg.session import Session
from ple.reorg.verify import stored_snapshot
from ple.sqlutil import qualified, raw_template

SUBJECT = "revert"
MATCH = {"f": sql.SQL("MATCH FULL"), "s": sql.SQL("MATCH SIMPLE"), "p": sql.SQL("MATCH PARTIAL")}
ACTIONS = {
    "a": sql.SQL("NO ACTION"),
    "r": sql.SQL("RESTRICT"),
    "c": sql.SQL("CASCADE"),
    "n": sql.SQL("SET NULL"),
    "d": sql.SQL("SET DEFAULT"),
}


def revert_fingerprint(plan_sha256: str, phase_id: str) -> approval.Fingerprint:
    """What a revert approval covers: the plan, the engine code and the phase."""
    return approval.Fingerprint(
        SUBJECT,
        {"plan": plan_sha256, "code": approval.code_sha256(), "phase": phase_id},
        approval.phase_scope(phase_id),
    )


def approve(conn: psycopg.Connection, plan_sha256: str, phase_id: str, approver: str, **kwargs) -> int:
    return approval.approve(conn, revert_fingerprint(plan_sha256, phase_id), approver, **kwargs)


def _how(fp: approval.Fingerprint) -> str:
    return f"`python -m ple.cli approve --revert {fp.parts['phase']} --approver <name>` (or the ctb_revert DAG's form)"


def archives_made_by(ex: Session, step) -> list[str]:
    """Tables in the archive schema that this step produced (frozen with its phase)."""
    return [t for _, t in relocate.relocations(ex.plan, step) if t.startswith(ex.plan.archive_schema + ".")]


def revert_phase(ex: Session, phase_id: str) -> list[StepReport]:
    phase = _as_applied(ex, phase_id)
    fp = revert_fingerprint(ex.plan.sha256, phase_id)
    if not ex.applying:
        return _render(ex, phase, fp)
    with ex.transaction(read_only=True):
        _refuse_what_is_built_on(ex.context(read_catalog(ex.conn)), phase.steps)
    reports = []
    for step in reversed(phase.steps):
        outcome = ex.retrying(lambda step=step: _revert_step(ex, step, fp))
        text = f"{step.step_id}: {outcome.status}"
        if outcome.details:
            text += f"\n  {outcome.details}"
        text += "".join(f"\n  NOTE: {n}" for n in outcome.notes)
        reports.append(StepReport(step.step_id, outcome.status, text, outcome.details))
    reports.append(ex.retrying(lambda: _finish(ex, phase, fp)))
    return reports


def _as_applied(ex: Session, phase_id: str) -> Phase:
    """The phase a revert undoes: its steps as the decisions in force shape them, and every step
    the ledger says was applied that they now leave out or shorten (a decision recorded after the
    apply, e.g. `skip`), as declared: a revert undoes what was done, not what would be done now."""
    effective, declared = ex.plan.phase(phase_id), ex.declared.phase(phase_id)
    shaped = {step.step_id: step for step in effective.steps}
    with ex.transaction(read_only=True):
        applied = {
            step_id for step_id, entry in ledger.ledger_outcomes(ex.conn).items() if entry["outcome"] == "applied"
        }
    actions: list = []
    for step in declared.steps:
        now = shaped.pop(step.step_id, None)
        if step.step_id in applied and (now is None or len(now.actions) < len(step.actions)):
            actions += step.actions
        elif now is not None:
            actions += now.actions
    for step in shaped.values():  # a step only the decisions make
        actions += step.actions
    return dataclasses.replace(effective, actions=tuple(actions))


def _built_on(ctx, steps) -> str | None:
    """What others built on what the steps' reverts would drop, as a refusal (None: nothing)."""
    problems = [p for step in steps for p in revert_blockers(ctx, step)]
    problems += [  # a view on a compatibility view: the revert drops the compatibility view first
        f"{view} reads the compatibility view {name}, which the revert drops"
        for step in steps
        for name, *_ in compat.live(ctx.conn, step.step_id)
        for view, _ in dependent_views(ctx.conn, [name])
    ]
    if not problems:
        return None
    return (
        f"revert refused before any write: {'; '.join(problems)}. Nothing was changed. Those objects are "
        "the application's and the revert would drop them, or stop half way on them: drop them yourself "
        "(keep their definitions to create again what is still wanted once the revert is done), then revert again"
    )


def _refuse_what_is_built_on(ctx, steps) -> None:
    """Before the revert's first write (and again in each step's own transaction, against a view
    created meanwhile): a named refusal instead of a DROP failing half way through the phase."""
    refusal = _built_on(ctx, steps)
    if refusal:
        raise PlanRejected(refusal)


def _render(ex: Session, phase: Phase, fp: approval.Fingerprint) -> list[StepReport]:
    """Plan mode: what the revert would do, step by step, and whether it is approved."""
    reports = []
    with ex.transaction(read_only=True):
        approved = approval.current(ex.conn, fp)
        ctx = ex.context(read_catalog(ex.conn))
        for step in reversed(phase.steps):
            try:
                undone = set_aside.restored(ex.conn, ctx.catalog, step.step_id)  # the name is the hand copy's
                state = State.PENDING if undone else module_for(step).check(ctx, step)
            except PlanRejected as exc:  # reported; plan mode acts on nothing
                state = f"unknown ({exc})"
            would = "would undo" if state == State.DONE else "nothing to undo"
            archives = archives_made_by(ex, step)
            text = f"{step.step_id}: {would} ({step.kind})" + (
                f"; thaws {', '.join(archives)}" if archives and state == State.DONE else ""
            )
            reports.append(StepReport(step.step_id, "planned", text))
        refusal = _built_on(ctx, phase.steps)
    how = (
        f"approved by {approved['approver']} at {approved['approved_at']}"
        if approved
        else f"NOT approved: approve with {_how(fp)} (fingerprint {fp.describe()})"
    )
    if refusal:
        how += f"; {refusal}"
    reports.append(StepReport(f"{phase.phase}__revert", "planned", f"revert of phase {phase.phase}: {how}"))
    return reports


def _revert_step(ex: Session, step, fp: approval.Fingerprint) -> Outcome:
    started = datetime.now(UTC)
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        stable_text(ex.conn)
        catalog = read_catalog(ex.conn)
        given_back = set_aside.restored(ex.conn, catalog, step.step_id)
        if given_back:
            return Outcome(step, "already_done", details={"set_asides_restored_before": given_back})
        _refuse_what_is_built_on(ex.context(catalog), [step])
        thawed, restored = [], []
        for archive in archives_made_by(ex, step):
            table = catalog.get(archive)
            if table is None:
                continue
            ex.conn.execute(sql.SQL("DROP TRIGGER IF EXISTS ple_ctb_frozen ON {}").format(qualified(archive)))
            ex.conn.execute(
                "DELETE FROM ple_ops.table_registry WHERE table_oid = %s AND ctb_class = 'ARCHIVE'", (table.oid,)
            )
            thawed.append(archive)
            restored += _restore_foreign_keys(ex, table.oid, archive)
        accepted = ex.decisions.accepted if ex.decisions is not None else {}
        compat_dropped, compat_notes = compat.revert_step(ex.context(catalog), step)  # the names go back first
        unfreeze = gate.admit_revert(ex.conn, ex.plan, step, ex.run_id, accepted)
        ctx = ex.context(read_catalog(ex.conn))
        ctx.approval = fp
        ctx.bypass = tuple(guards.revert_bypass(ex.conn, step, ex.decisions, merge.applied_target(ex.conn, step)))
        ctx.unfreeze = tuple(unfreeze)
        with ctx.bypassing_triggers():
            outcome = module_for(step).revert(ctx, step)
        if restored:
            outcome.details["foreign_keys_restored"] = restored
        if compat_dropped:
            outcome.details["compat_views_dropped"] = compat_dropped
        outcome.notes += compat_notes
        _restore_set_asides(ex, step, outcome, started)
        governance.forget_gone(ex.conn, [step.step_id])  # the names the step gave tables, gone again
        if outcome.status == "reverted" or thawed or compat_dropped:
            ex.write_ledger(
                step.phase,
                step.step_id,
                step.kind,
                started,
                "reverted",
                mode="revert",
                sources=[a.source for a in step.actions],
                target=step.target,
                details=outcome.details | {"thawed": thawed, "notes": outcome.notes},
            )
            outcome.status = "reverted"
        return outcome


def _restore_set_asides(ex: Session, step, outcome: Outcome, started: datetime) -> None:
    """Once the step's revert has freed the names, each occupant the step set aside (its SET_ASIDE
    ledger rows) gets its name back: the same OID, renamed; its ledger row says `reverted`."""
    ctx = ex.context(read_catalog(ex.conn))
    for occupant, name, oid in set_aside.recorded(ex.conn, step.step_id):
        item = set_aside.SetAside(occupant, name, step.step_id)
        result = set_aside.revert(ctx, item, oid)
        if result in ("reverted", "already_done"):
            ex.write_ledger(
                step.phase,
                set_aside.ledger_key(item),
                set_aside.ACTION,
                started,
                "reverted",
                mode="revert",
                sources=[name],
                target=occupant,
                details={"set_aside": {"from": name, "to": occupant, "oid": oid}},
            )
            outcome.details.setdefault("set_asides_restored", []).append(f"{name} -> {occupant}")
            ctx = ex.context(read_catalog(ex.conn))
        else:
            outcome.notes.append(result)


def _restore_foreign_keys(ex: Session, table_oid: int, archive: str) -> list[str]:
    """Compose each detached key again from its structured record (psycopg.sql, no SQL text from
    the ledger). NOT VALID first (no scan under the lock), then validated where the referenced rows
    still exist; a key whose referenced rows were deleted meanwhile stays NOT VALID, reported."""
    rows = ex.conn.execute(
        "SELECT d.constraint_name, d.columns, d.referenced_oid, d.referenced_columns, d.match_type, d.on_update, "
        "d.on_delete, d.is_deferrable, d.is_deferred, n.nspname, c.relname, d.validated FROM ple_ops.detached_fk d "
        "JOIN pg_class c ON c.oid = d.referenced_oid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE d.table_oid = %s AND d.restored_at IS NULL ORDER BY d.constraint_name",
        (table_oid,),
    ).fetchall()
    restored = []
    for (
        name,
        columns,
        _ref_oid,
        ref_columns,
        match,
        on_update,
        on_delete,
        deferrable,
        deferred,
        ref_schema,
        ref_table,
        validated,
    ) in rows:
        note = ""
        exists = ex.conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conrelid = %s AND conname = %s", (table_oid, name)
        ).fetchone()
        if not exists:
            timing = sql.SQL("")
            if deferrable:
                timing = sql.SQL(" DEFERRABLE INITIALLY DEFERRED" if deferred else " DEFERRABLE INITIALLY IMMEDIATE")
            ex.conn.execute(
                sql.SQL(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) REFERENCES {ref} ({ref_columns}) "
                    "{match} ON UPDATE {on_update} ON DELETE {on_delete}{timing} NOT VALID"
                ).format(
                    table=qualified(archive),
                    name=sql.Identifier(name),
                    columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    ref=sql.Identifier(ref_schema, ref_table),
                    ref_columns=sql.SQL(", ").join(sql.Identifier(c) for c in ref_columns),
                    match=MATCH[match],
                    on_update=ACTIONS[on_update],
                    on_delete=ACTIONS[on_delete],
                    timing=timing,
                )
            )
            if validated:
                try:
                    with ex.conn.transaction():  # a savepoint: a failed validation must not end the revert
                        ex.conn.execute(
                            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                                qualified(archive), sql.Identifier(name)
                            )
                        )
                except psycopg.errors.ForeignKeyViolation:
                    note = " (NOT VALID: referenced rows were deleted since the freeze)"
        ex.conn.execute(
            "UPDATE ple_ops.detached_fk SET restored_at = now() WHERE table_oid = %s AND constraint_name = %s",
            (table_oid, name),
        )
        restored.append(f"{name}{note} -> {ref_schema}.{ref_table}")
    return restored


def _finish(ex: Session, phase: Phase, fp: approval.Fingerprint) -> StepReport:
    """Restore relaxed NOT NULLs, prove against the preflight snapshot, mark the phase reverted."""
    started = datetime.now(UTC)
    step_id = f"{phase.phase}__revert"
    # each in short transactions of its own, so that their ACCESS EXCLUSIVE locks on live targets
    # are not held through the proof's scans; both are idempotent (tool_changes, ledger)
    notes = _restore_not_null(ex, phase, fp)
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        _drop_created_targets(ex, phase, notes, started)
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        dropped = create_target.dropped_by_revert(ex.conn, phase.phase)
        catalog = read_catalog(ex.conn)
        problems, reported, lines = _prove(ex, phase, catalog, dropped)
        outcome = "failed" if problems else "reverted"
        ex.write_ledger(
            phase.phase,
            step_id,
            "REVERT",
            started,
            outcome,
            mode="revert",
            details={"problems": problems, "live_changes": reported, "notes": notes, "proof": lines},
        )
        if not problems:
            ex.conn.execute(
                "INSERT INTO ple_ops.phase_status (phase, status, run_id, plan_sha256) VALUES (%s, 'reverted', %s, %s) "
                "ON CONFLICT (phase) DO UPDATE SET status = 'reverted', run_id = EXCLUDED.run_id, "
                "plan_sha256 = EXCLUDED.plan_sha256, changed_at = now()",
                (phase.phase, ex.run_id, ex.plan.sha256),
            )
    text = "\n".join(
        [
            f"{step_id}: {outcome}; proof against the preflight snapshot:",
            *lines,
            *[f"  NOTE: {n}" for n in notes + reported],
            *[f"  PROBLEM: {p}" for p in problems],
        ]
    )
    if problems:
        raise VerificationFailed(text)
    return StepReport(step_id, outcome, text, {"notes": len(notes), "live_changes": len(reported)})


def _drop_created_targets(ex: Session, phase: Phase, notes: list[str], started: datetime) -> None:
    """Merge targets this tool created in the phase (CREATE_TARGET ledger rows), dropped only
    while they hold no row (ledger row `reverted`, dropped); kept and reported otherwise."""
    ctx = ex.context(read_catalog(ex.conn))
    for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"}):
        oid = create_target.created_by_tool(ex.conn, target, phase.phase)
        if oid is None:
            continue
        result = create_target.revert(ctx, target, phase.phase)
        if result == "dropped":
            notes.append(f"{target}: created by this tool in phase {phase.phase}, empty again: dropped")
            governance.forget_gone(ex.conn, [create_target.ledger_key(phase.phase, target)])
            ex.write_ledger(
                phase.phase,
                create_target.ledger_key(phase.phase, target),
                create_target.ACTION,
                started,
                "reverted",
                mode="revert",
                target=target,
                details={"oid": oid, "dropped": True},
            )
        else:
            notes.append(result)


def _restore_not_null(ex: Session, phase: Phase, fp: approval.Fingerprint) -> list[str]:
    """Each NOT NULL the tool relaxed, set again without scanning the live table under an ACCESS
    EXCLUSIVE lock: a helper CHECK (col IS NOT NULL) is added NOT VALID (brief lock, no scan),
    validated under SHARE UPDATE EXCLUSIVE (the scan; the application keeps reading and writing),
    then SET NOT NULL finds it proven (no scan) and the helper goes. Each in its own transaction;
    a run killed between them leaves a helper the next run reuses or drops."""
    notes = []
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        catalog = read_catalog(ex.conn)
        relaxed = [
            (target, table.oid, column)
            for target in sorted({s.action.target for s in phase.steps if s.kind == "MERGE"})
            if (table := catalog.get(target)) is not None
            for column in tool_changes.columns_with(ex.conn, table.oid, tool_changes.RELAXED_NOT_NULL)
        ]
    for target, oid, column in relaxed:
        notes.append(_restore_one_not_null(ex, fp, target, oid, column))
    return notes


HELPER_COMMENT = "ctb: helper of revert's NOT NULL restore; dropped by it"


def _restore_one_not_null(ex: Session, fp: approval.Fingerprint, target: str, oid: int, column: str) -> str:
    """Three transactions, each reading the state afresh (the table by its OID, wherever it is now;
    the column by its name), so that a run killed between them, another revert running between
    them, or a table moved or a column renamed between them converges: the helper is the tool's only
    when it carries the tool's comment (set in the transaction that adds it) and checks exactly
    that column; a constraint of its name that does not is someone else's, never validated, relied
    on or dropped: the helper takes the next name."""
    col = sql.Identifier(column)
    nulls = 0
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        helper = _helper_name(ex, oid, column)
        if helper is None:
            return (
                f"{target}.{column} stays nullable: every name of the restore's helper check is taken by "
                f"constraints this tool did not create ({not_null_helper(column)}...); rename them, then revert again"
            )
        table = _where(ex, oid, column)
        if table is None:
            return _column_gone(ex, target, oid, column, helper)
        name, state = sql.Identifier(helper), _helper_state(ex, oid, helper)
        if not _is_not_null(ex, oid, column):
            nulls = ex.conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(table, col)).fetchone()[
                0
            ]
            if not nulls and state is None:
                ex.conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(
                        table, name, col
                    )
                )
                ex.conn.execute(
                    sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(name, table, sql.Literal(HELPER_COMMENT))
                )
    if not nulls:
        try:
            with ex.transaction():
                hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
                table = _where(ex, oid, column)
                if table is not None and _helper_state(ex, oid, helper) == "not validated":
                    ex.conn.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(table, name))
        except psycopg.errors.CheckViolation:
            nulls = None  # a NULL was written between the count and the validation
    with ex.transaction():
        hold(ex.conn, fp, _how(fp), run_id=ex.run_id)
        table = _where(ex, oid, column)
        if table is None:
            return _column_gone(ex, target, oid, column, helper)
        state = _helper_state(ex, oid, helper)
        if nulls == 0 and state == "validated" and not _is_not_null(ex, oid, column):
            ex.conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(table, col))
        restored = _is_not_null(ex, oid, column)
        if restored:
            tool_changes.forget(ex.conn, oid, column, tool_changes.RELAXED_NOT_NULL)
        if state in ("validated", "not validated"):
            ex.conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, name))
    if restored:
        return f"{target}.{column}: NOT NULL restored (validated while the table stayed writable)"
    return (
        f"{target}.{column} stays nullable: {nulls or 'some'} rows hold NULL (merged rows of other phases, or "
        "rows written since); set NOT NULL again once they have values"
    )


def _where(ex: Session, oid: int, column: str | None = None) -> sql.Composable | None:
    """The table's name now, found by OID wherever it has moved; None if it is gone, or lacks `column`."""
    row = ex.conn.execute(raw_template("revert/table_now"), {"oid": oid, "column": column}).fetchone()
    return sql.Identifier(*row) if row else None


def _column_gone(ex: Session, target: str, oid: int, column: str, helper: str) -> str:
    """The column the tool relaxed is gone (dropped, or renamed by someone): nothing to restore;
    the tool's helper, if it is still there (a rename keeps it), is dropped, the record forgotten."""
    if _helper_state(ex, oid, helper) in ("validated", "not validated"):
        ex.conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(_where(ex, oid), sql.Identifier(helper)))
    tool_changes.forget(ex.conn, oid, column, tool_changes.RELAXED_NOT_NULL)
    return (
        f"{target}.{column}: not restored, the column is gone (dropped, or renamed since the tool relaxed it); "
        "if it was renamed, set NOT NULL on it by hand once it holds no NULL"
    )


def not_null_helper(column: str) -> str:
    """The helper CHECK's name: readable, unique per column, within the 63-byte identifier limit."""
    return f"ctb_not_null_{column[:36]}_{hashlib.md5(column.encode()).hexdigest()[:8]}"


def _helper_name(ex: Session, oid: int, column: str) -> str | None:
    """The tool's helper of `column` if there is one, else the first of its names that is free."""
    base = not_null_helper(column)
    candidates = [base] + [f"{base}_{n}" for n in range(1, 10)]
    states = {name: _helper_state(ex, oid, name) for name in candidates}
    mine = [n for n in candidates if states[n] in ("validated", "not validated")]
    free = [n for n in candidates if states[n] is None]
    return (mine or free or [None])[0]


def _helper_state(ex: Session, oid: int, helper: str) -> str | None:
    """None (absent), 'not validated' or 'validated' (the tool's), or 'foreign' (someone else's)."""
    row = ex.conn.execute(
        raw_template("revert/not_null_helper_state"), {"oid": oid, "helper": helper, "comment": HELPER_COMMENT}
    ).fetchone()
    if row is None:
        return None
    validated, ours = row
    if not ours:
        return "foreign"
    return "validated" if validated else "not validated"


def _is_not_null(ex: Session, oid: int, column: str) -> bool:
    return ex.conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s AND attname = %s", (oid, column)
    ).fetchone()[0]


def _returned(ex: Session, phase: Phase, name: str, columns: list[str]) -> tuple[int, int]:
    """(rows, checksum over `columns`) of the rows written through a folded side table's old name
    that a revert returned to it since the phase's latest preflight snapshot: the side table holds
    its snapshot's rows and these (fold.py `_return_written`)."""
    if not any(s.kind == "FOLD" and any(a.source == name for a in s.actions) for s in phase.steps):
        return 0, 0
    writes = fold_sql.writes_table(ex.plan.archive_name(name))
    written = fold_sql.writes_columns(ex.conn, writes)
    if written is None or any(c not in written for c in columns):
        return 0, 0
    rows, checksum = ex.conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum({hash}::numeric), 0) FROM {w} AS t WHERE {rat} > "
            "(SELECT max(taken_at) FROM ple_ops.table_snapshot WHERE phase = %s)"
        ).format(hash=row_hash("t", columns), w=qualified(writes), rat=sql.Identifier(fold_sql.RETURNED_AT)),
        (phase.phase,),
    ).fetchone()
    return int(rows), int(checksum)


def _prove(ex: Session, phase: Phase, catalog, dropped: set[int]) -> tuple[list[str], list[str], list[str]]:
    """Every snapshot table is back under its own name with its OID; the tables the phase took
    over (merge sources, fold side tables) hold exactly their preflight rows; live tables that
    differ are reported (other sessions write to them), never hidden."""
    owned = {a.source for s in phase.steps if s.kind in ("MERGE", "FOLD") for a in s.actions}
    by_oid = {t.oid: t for t in catalog.tables.values()}
    problems, reported, lines = [], [], []
    for name, oid, _relfilenode, columns, rows, checksum, proof in stored_snapshot(ex, phase.phase):
        table = by_oid.get(oid)
        if table is None and oid in dropped:
            lines.append(f"  {name:<50} dropped: the tool created it in this phase, and it was empty again")
            continue
        if table is None or table.name != name:
            problems.append(f"{name} (oid {oid}) is {'gone' if table is None else 'at ' + table.name}")
            continue
        if proof != "checksum":
            lines.append(f"  {name:<50} same table (oid {oid})")
            continue
        gone = columns_gone(name, table, columns)
        if gone:
            (problems if name in owned else reported).append(gone)
            continue
        now = fingerprint(ex.conn, table, list(columns), native_only=table.column("ctb_source_table") is not None)
        returned = _returned(ex, phase, name, list(columns)) if name in owned else (0, 0)
        same = (now.rows, now.checksum) == (rows + returned[0], int(checksum) + returned[1])
        lines.append(
            f"  {name:<50} rows {rows:>9,} -> {now.rows:>9,}  checksum {'equal' if same else 'DIFFERS'}"
            + (f" (with the {returned[0]:,} rows written through its old name, returned)" if returned[0] else "")
        )
        if not same:
            message = (
                f"{name}: rows {rows} -> {now.rows}, content {'equal' if now.checksum == int(checksum) else 'differs'}"
            )
            (problems if name in owned else reported).append(message)
    return problems, reported, lines
