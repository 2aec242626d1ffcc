"""Phase 2, the leaf lock: register each sub-hub's tables by class, then refuse new tables in the
leaf schemas that have no CTB path assignment.

A table a Phase 1L answer moved into a sub-hub (`ple.reorg.pending`) is assigned to that sub-hub,
with the class `DECIDED_1L`: the answer says who owns it, not which class it is.

Enforcement is an event trigger (ddl_command_end on CREATE TABLE). Creating one needs superuser
(on Neon, the neon_superuser role); where the role lacks it, the lock is recorded as audit-only and
the report lists the unassigned tables instead of refusing them. Where the owner's own DDL gate
exists (ple/governance.py), the lock adopts it instead of adding a second one: it records which
event triggers enforce the owner's registry, and reports the plan's tables the registry does not
list, or lists in the archive's leaf type, as proposals for the owner; it writes nothing into the
owner's registry.
"""

from __future__ import annotations

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from ple import approval, governance
from ple.catalog import read_catalog
from ple.db import transaction
from ple.errors import PlanRejected
from ple.ops import ensure_schema, schema_exists
from ple.reorg import decisions, pending
from ple.reorg.plan import Plan

DECIDED_1L = "DECIDED_1L"


def assignments(plan: Plan, answers: dict[str, pending.Answer] | None = None) -> list[tuple[str, str, str]]:
    """(table, sub_hub, class) of every table the Phase 2 table, the tools and the 1L answers name."""
    rows = [
        (table, sub_hub, ctb_class)
        for sub_hub, classes in plan.leaf_lock.get("sub_hubs", {}).items()
        for ctb_class, tables in classes.items()
        for table in tables
    ]
    rows += [
        (table, sub_hub, "TOOL")
        for sub_hub, tables in plan.leaf_lock.get("tool_tables", {}).items()
        for table in tables
    ]
    rows += [(a.target, a.answer, DECIDED_1L) for a in (answers or {}).values() if a.action == "MOVE"]
    return rows


def run(conn: psycopg.Connection, plan: Plan, run_id: str, apply: bool) -> str:
    lines = []
    with transaction(conn, read_only=not apply):
        catalog = read_catalog(conn)
        assigned_tables = assignments(plan, pending.latest(conn))
        frozen = set()
        if schema_exists(conn):
            frozen = {r[0] for r in conn.execute("SELECT phase FROM ple_ops.phase_status WHERE status = 'frozen'")}
        answered = pending.answered(plan, pending.latest(conn))
        unfinished = [p.phase for p in answered.phases if p.steps and p.phase not in frozen]
        missing = [t for t, _, c in assigned_tables if c != "TOOL" and not catalog.exists(t)]
        schemas = plan.leaf_lock.get("schemas", [])
        assigned = {t for t, _, _ in assigned_tables}
        unassigned = sorted(
            name
            for name, table in catalog.tables.items()
            if name.split(".")[0] in schemas and table.kind in ("r", "p") and name not in assigned
        )
        lines.append(f"Phase 1 phases not yet frozen: {', '.join(unfinished) or 'none'}")
        lines.append(f"Phase 2 tables missing: {', '.join(missing) or 'none'}")
        lines += [f"  {sub_hub:<16} {ctb_class:<18} {table}" for table, sub_hub, ctb_class in assigned_tables]
        lines.append(
            f"{len(unassigned)} existing tables in leaf schemas have no CTB path (they stay; new ones would be refused)"
        )
        owner_gate = governance.detect(conn)
        if owner_gate:
            lines += _owner_gate_lines(conn, owner_gate, [a for a in assigned_tables if catalog.exists(a[0])])
        if not apply:
            lines.append("plan mode: nothing written")
            return "\n".join(lines)
        if unfinished or missing:
            raise PlanRejected(
                "the leaf lock needs Phase 1 complete and every Phase 2 table present:\n" + "\n".join(lines)
            )
        approval.require(
            conn,
            decisions.fingerprint(plan, decisions.for_connection(conn)).scoped(approval.phase_scope("2")),
            run_id=run_id,
        )
        ensure_schema(conn)
        for table, sub_hub, ctb_class in assigned_tables:
            conn.execute(
                "INSERT INTO ple_ops.ctb_path_assignment (table_name, sub_hub, ctb_class, assigned_by) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (table_name) DO UPDATE SET sub_hub = EXCLUDED.sub_hub, ctb_class = EXCLUDED.ctb_class",
                (table, sub_hub, ctb_class, f"leaf_lock:{run_id}"),
            )
            if ctb_class != "TOOL":
                conn.execute(
                    "INSERT INTO ple_ops.table_registry (table_oid, table_name, sub_hub, ctb_class, phase, run_id) "
                    "VALUES (%s::regclass::oid, %s, %s, %s, '2', %s) ON CONFLICT (table_oid) DO UPDATE SET sub_hub = EXCLUDED.sub_hub",
                    (table, table, sub_hub, ctb_class, run_id),
                )
        adopted = None
        if owner_gate and owner_gate.triggers:  # the owner's gate refuses unregistered tables already
            enforcement = "owner_gate"
            adopted = Jsonb({"event_triggers": list(owner_gate.triggers), "registry": "ctb.table_registry"})
        else:
            enforcement = "event_trigger"
            try:
                with conn.transaction():
                    if not conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = 'ple_leaf_lock'").fetchone():
                        conn.execute(
                            "CREATE EVENT TRIGGER ple_leaf_lock ON ddl_command_end "
                            "WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') EXECUTE FUNCTION ple_ops.enforce_leaf_lock()"
                        )
            except errors.InsufficientPrivilege:
                enforcement = "audit_only"
        for schema in schemas:
            conn.execute(
                "INSERT INTO ple_ops.leaf_lock (schema_name, enforcement, run_id, adopted) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (schema_name) DO UPDATE SET enforcement = EXCLUDED.enforcement, adopted = EXCLUDED.adopted",
                (schema, enforcement, run_id, adopted),
            )
        lines.append(f"leaf lock on {', '.join(schemas)}: enforcement {enforcement}")
    return "\n".join(lines)


def _owner_gate_lines(
    conn: psycopg.Connection, gate: governance.Gate, assigned: list[tuple[str, str, str]]
) -> list[str]:
    """What the owner's gate already enforces, and what the plan's Phase 2 table asks of the tables
    that exist that the owner's registry does not say (proposals for the owner: the tool writes
    nothing there)."""
    known = governance.entries(conn, [t for t, _, c in assigned if c != "TOOL"])
    unregistered = [t for t, _, c in assigned if c != "TOOL" and t not in known]
    archived = [t for t, _, c in assigned if c != "TOOL" and known.get(t, ("",))[0] in ("ARCHIVE", "DEPRECATED")]
    lines = [f"adopted: {gate.describe()}; the leaf lock adds no event trigger of its own"]
    if unregistered:
        lines.append(f"proposal for the owner: register {', '.join(unregistered)} (Phase 2 assigns them a sub-hub)")
    if archived:
        lines.append(
            f"proposal for the owner: {', '.join(archived)} are registered as ARCHIVE/DEPRECATED but assigned a live sub-hub"
        )
    return lines
