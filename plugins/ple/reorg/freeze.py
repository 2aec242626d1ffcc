"""Freeze a phase: record it complete and make the archive tables it produced read-only.

A trigger refuses every write to a frozen archive, even the owner's; its foreign keys into live
tables are detached (recorded as structured catalog data in ple_ops.detached_fk) so that an
archive never constrains live data; revert composes them again from that record.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from ple.reorg.context import StepReport
from ple.reorg.plan import Phase
from ple.reorg.session import Session
from ple.sqlutil import qualified


def archives_of(ex: Session, phase: Phase) -> list[str]:
    tables = []
    for step in phase.steps:
        for action in step.actions:
            if step.kind == "ARCHIVE":
                tables.append(action.target)
            elif step.kind in ("MERGE", "FOLD"):
                tables.append(ex.plan.archive_name(action.source))
    return tables


def freeze_phase(ex: Session, phase_id: str) -> StepReport:
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
            ex.require_approval(phase_id)
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
                detached[name] = _detach_foreign_keys(ex, name, phase_id)
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


def _detach_foreign_keys(ex: Session, archive: str, phase_id: str) -> list[str]:
    """A frozen archive must not constrain the live tables it left: its foreign keys into live
    tables are dropped, recorded first as structured catalog data in ple_ops.detached_fk (columns,
    referenced table by OID, match type, actions, deferrability), from which revert composes them
    again. A record stays until revert restores its key: freezing again forgets nothing."""
    keys = ex.conn.execute(
        """
        SELECT c.conname,
               array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
               c.confrelid, c.confrelid::regclass::text,
               array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
               c.confmatchtype, c.confupdtype, c.confdeltype, c.condeferrable, c.condeferred, c.convalidated
        FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND n.nspname <> %s
        """,
        (archive, ex.plan.archive_schema),
    ).fetchall()
    for name, columns, ref_oid, ref_name, ref_columns, match, on_update, on_delete, deferrable, deferred, valid in keys:
        ex.conn.execute(
            "INSERT INTO ple_ops.detached_fk (table_oid, constraint_name, table_name, columns, referenced_oid, "
            "referenced_table, referenced_columns, match_type, on_update, on_delete, is_deferrable, is_deferred, validated, "
            "phase, run_id) VALUES (%s::regclass::oid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (table_oid, constraint_name) DO UPDATE SET restored_at = NULL, detached_at = now()",
            [
                archive,
                name,
                archive,
                columns,
                ref_oid,
                ref_name,
                ref_columns,
                match,
                on_update,
                on_delete,
                deferrable,
                deferred,
                valid,
                phase_id,
                ex.run_id,
            ],
        )
        ex.conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified(archive), sql.Identifier(name)))
    return [f"{name} -> {ref_name}" for name, _c, _o, ref_name, *_rest in keys]
