"""Revert a phase, last step first: thaw its archives, then undo every step."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from ple import approval
from ple.catalog import read_catalog
from ple.reorg.actions import module_for
from ple.reorg.context import Outcome, StepReport
from ple.reorg.executor import Executor
from ple.reorg.freeze import archives_of
from ple.sqlutil import qualified


def revert_phase(ex: Executor, phase_id: str) -> list[StepReport]:
    """Undo a phase, last step first: thaw its archives, then revert every step. Nothing is lost
    either way: merged copies are removed only once their originals are back in place."""
    phase = ex.plan.phase(phase_id)
    reports = []
    started = datetime.now(UTC)
    with ex.transaction():
        ex.lock_exclusive()
        approval.require(ex.conn, ex.fingerprint)
        for name in archives_of(ex, phase):
            if read_catalog(ex.conn, [name.split(".")[0]]).exists(name):
                ex.conn.execute(sql.SQL("DROP TRIGGER IF EXISTS ple_ctb_frozen ON {}").format(qualified(name)))
        frozen = ex.conn.execute(
            "SELECT details FROM ple_ops.action_ledger WHERE step_id = %s AND outcome = 'applied' ORDER BY attempt_id DESC LIMIT 1",
            (f"{phase_id}__freeze",),
        ).fetchone()
        for archive, keys in ((frozen[0] or {}).get("detached_foreign_keys", {}) if frozen else {}).items():
            for key in keys:
                name, definition = key.split(": ", 1)
                # the definition is pg_get_constraintdef's own text; NOT VALID: the rows are as they were
                ex.conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                        qualified(archive), sql.Identifier(name), sql.SQL(definition)
                    )
                )
        ex.conn.execute(
            "UPDATE ple_ops.phase_status SET status = 'reverted', changed_at = now() WHERE phase = %s", (phase_id,)
        )
    for step in reversed(phase.steps):
        module = module_for(step)

        def work(step=step, module=module) -> Outcome:
            with ex.transaction():
                ex.lock_exclusive()
                outcome = module.revert(ex.context(read_catalog(ex.conn)), step)
                if outcome.status == "reverted":
                    ex.write_ledger(
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

        outcome = ex.retrying(work)
        reports.append(StepReport(step.step_id, outcome.status, f"{step.step_id}: {outcome.status}"))
    return reports
