"""Freeze a phase: record it complete and make the archive tables it produced read-only.

A trigger refuses every write to a frozen archive, even the owner's; its foreign keys into live
tables are detached (recorded in the ledger) so that an archive never constrains live data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from ple import approval
from ple.reorg.context import StepReport
from ple.reorg.executor import Executor
from ple.reorg.plan import Phase
from ple.sqlutil import qualified


def archives_of(ex: Executor, phase: Phase) -> list[str]:
    tables = []
    for step in phase.steps:
        for action in step.actions:
            if step.kind == "ARCHIVE":
                tables.append(action.target)
            elif step.kind in ("MERGE", "FOLD"):
                tables.append(ex.plan.archive_name(action.source))
    return tables


def freeze_phase(ex: Executor, phase_id: str) -> StepReport:
    """Record the phase complete; make the archive tables it produced read-only."""
    phase = ex.plan.phase(phase_id)
    step_id = f"{phase_id}__freeze"
    archives = archives_of(ex, phase)
    if not ex.applying:
        return StepReport(
            step_id,
            "planned",
            f"{step_id}: would make read-only: {', '.join(archives) or 'nothing'} and mark phase {phase_id} frozen",
        )
    started = datetime.now(UTC)

    def work() -> str:
        with ex.transaction():
            ex.lock_exclusive()
            approval.require(ex.conn, ex.fingerprint)
            done = ex.conn.execute(
                "SELECT 1 FROM ple_ops.phase_status WHERE phase = %s AND status = 'frozen' AND plan_sha256 = %s",
                (phase_id, ex.plan.sha256),
            ).fetchone()
            if done:
                ex.write_ledger(
                    phase_id,
                    step_id,
                    "FREEZE",
                    started,
                    "already_done",
                )
                return "already_done"
            detached = {}
            for name in archives:
                detached[name] = _detach_foreign_keys(ex, name)
                ex.conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE TRIGGER ple_ctb_frozen BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION ple_ops.forbid_writes({})"
                    ).format(qualified(name), sql.Literal(f"phase {phase_id}"))
                )
                ex.conn.execute(
                    "INSERT INTO ple_ops.table_registry (table_oid, table_name, ctb_class, phase, run_id) "
                    "VALUES (%s::regclass::oid, %s, 'ARCHIVE', %s, %s) ON CONFLICT (table_oid) DO NOTHING",
                    (name, name, phase_id, ex.run_id),
                )
            ex.conn.execute(
                "INSERT INTO ple_ops.phase_status (phase, status, run_id, plan_sha256, frozen_tables) VALUES (%s, 'frozen', %s, %s, %s) "
                "ON CONFLICT (phase) DO UPDATE SET status = 'frozen', run_id = EXCLUDED.run_id, plan_sha256 = EXCLUDED.plan_sha256, "
                "frozen_tables = EXCLUDED.frozen_tables, changed_at = now()",
                (phase_id, ex.run_id, ex.plan.sha256, archives),
            )
            ex.write_ledger(
                phase_id,
                step_id,
                "FREEZE",
                started,
                "applied",
                details={"read_only": archives, "detached_foreign_keys": {k: v for k, v in detached.items() if v}},
            )
            return "applied"

    status = ex.retrying(work)
    return StepReport(step_id, status, f"{step_id}: {status}; read-only: {', '.join(archives) or 'nothing'}")


def _detach_foreign_keys(ex: Executor, archive: str) -> list[str]:
    """A frozen archive must not constrain the live tables it left: its foreign keys into live
    tables are dropped (their definitions go to the ledger; revert adds them back)."""
    keys = ex.conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' AND confrelid::regclass::text NOT LIKE 'archive.%%'",
        (archive,),
    ).fetchall()
    for name, _definition in keys:
        ex.conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified(archive), sql.Identifier(name)))
    return [f"{name}: {definition}" for name, definition in keys]


# ---------------------------------------------------------------- revert
