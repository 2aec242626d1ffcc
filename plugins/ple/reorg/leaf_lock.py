"""Phase 2, the leaf lock: register each sub-hub's tables by class, then refuse new tables in the
leaf schemas that have no CTB path assignment.

A table a Phase 1L answer moved into a sub-hub (`ple.reorg.pending`) is assigned to that sub-hub,
with the class `DECIDED_1L`: the answer says who owns it, not which class it is.

Enforcement is an event trigger (ddl_command_end on CREATE TABLE). Creating one needs superuser
(on Neon, the neon_superuser role); where the role lacks it, the lock is recorded as audit-only and
the report lists the unassigned tables instead of refusing them. Where the owner's own DDL gate
exists (ple/governance.py), the lock adopts it instead of adding a second one: it records which
event triggers enforce the owner's registry, and adds only what is missing and was decided: a
registry row (`leaf_lock.<table>.register` in the decisions file) for a Phase 2 table the owner's
registry does not list, written by governance.register and recorded under the step `leaf_lock`.

A Phase 2 table that is gone, and that no action of Phase 1 as decided will bring back, is moot,
not a reason to refuse the lock forever: reconcile explains it from the live evidence (the owner's
registry, copies of its rows elsewhere, the drop lists) and proposes `leaf_lock.<table>.skip`; with
that decision approved the lock assigns the tables that exist and reports the moot ones with their
evidence. Without it the lock refuses, naming them. revert() takes away exactly what run() wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from ple import approval, governance
from ple.catalog import Catalog, read_catalog
from ple.db import transaction
from ple.errors import PlanRejected
from ple.ops import ensure_schema, schema_exists
from ple.reorg import decisions, pending, reconcile
from ple.reorg.context import hold
from ple.reorg.plan import Plan
from ple.reorg.revert import revert_fingerprint

DECIDED_1L = "DECIDED_1L"
PHASE = "2"  # the leaf lock's name in a revert approval and in ple_ops.table_registry
STEP_ID = "leaf_lock"  # the tool's record of the owner's registry rows the lock wrote
# The plan's Phase 2 classes in the owner's registry's leaf types (ctb.table_registry CHECK)
LEAF_TYPES = {"CANONICAL": "CANONICAL", "ERRORS": "ERROR", "MATERIALIZED_VIEW": "MV", "REGISTRY": "REGISTRY"}


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


@dataclass
class Review:
    """The leaf lock against one read of the catalog and the decisions in force."""

    assigned: list[tuple[str, str, str]]  # what the lock assigns (moot tables left out)
    moot: dict[str, tuple[str, bool]] = field(default_factory=dict)  # gone table -> (evidence, decided)
    stale: list[str] = field(default_factory=list)  # decided moot, but present now
    register: list[governance.Registration] = field(default_factory=list)  # decided, not yet registered
    proposals: dict[str, dict] = field(default_factory=dict)  # leaf_lock section entries not yet decided

    @property
    def undecided(self) -> list[str]:
        return [t for t, (_, decided) in self.moot.items() if not decided]


def review(
    conn: psycopg.Connection, plan: Plan, catalog: Catalog, decided: decisions.Decisions, *, after_phase_1: bool
) -> Review:
    """What the lock would assign, which Phase 2 tables are moot (gone, with the live evidence) and
    which registry rows it would add. Before Phase 1 (`after_phase_1` false, as `decide` runs) a
    table that a Phase 1 action as decided will create or move into place is not moot."""
    effective = decisions.effective_plan(plan, decided)
    coming = set()
    if not after_phase_1:
        for action in effective.actions:
            coming.add(reconcile.destination(plan, action))
            if action.kind in reconcile.RELOCATING and "create" in (decided.targets.get(action.target) or {}):
                coming.add(action.target)  # a merge target created as decided (actions/create_target.py)
    reconciler = None
    result = Review([])
    gate = governance.detect(conn)
    live = [a for a in assignments(plan, decided.answers) if a[2] != "TOOL"]
    registered = governance.entries(conn, [t for t, _, _ in live]) if gate else {}
    for table, sub_hub, ctb_class in assignments(plan, decided.answers):
        entry = decided.leaf_lock.get(table) or {}
        exists = catalog.exists(table) or table in coming
        if ctb_class == "TOOL" or exists:
            result.assigned.append((table, sub_hub, ctb_class))
            if "skip" in entry and catalog.exists(table):
                result.stale.append(table)
            if gate and ctb_class in LEAF_TYPES and catalog.exists(table) and table not in registered:
                leaf_type = LEAF_TYPES[ctb_class]
                if "register" in entry:  # the leaf type as decided (a person may have changed the proposal)
                    result.register.append(
                        governance.Registration(
                            table, entry["register"], f"Phase 2 assigns it to the sub-hub {sub_hub}"
                        )
                    )
                else:
                    result.proposals[table] = {
                        "state": "pending",
                        "evidence": f"{table} exists and ctb.table_registry does not list it; Phase 2 assigns it "
                        f"to the sub-hub {sub_hub} as {ctb_class}",
                        "register": leaf_type,
                    }
            continue
        reconciler = reconciler or reconcile.Reconciler(conn, plan, catalog, effective)
        evidence = reconciler.gone_because(table)
        result.moot[table] = (evidence, "skip" in entry)  # what the live database says now
        if "skip" not in entry:
            result.proposals[table] = {
                "state": "moot",
                "evidence": evidence,
                "skip": f"gone from the live database; Phase 2 cannot assign it ({evidence})",
            }
    return result


def proposals(conn: psycopg.Connection, plan: Plan, catalog: Catalog, decided: decisions.Decisions) -> dict:
    """The leaf_lock section entries `decide --accept proposed` writes (reorg/proposals.py)."""
    return review(conn, plan, catalog, decided, after_phase_1=False).proposals


def run(conn: psycopg.Connection, plan: Plan, run_id: str, apply: bool) -> str:
    lines = []
    with transaction(conn, read_only=not apply):
        catalog = read_catalog(conn)
        decided = decisions.for_connection(conn)
        found = review(conn, plan, catalog, decided, after_phase_1=True)
        assigned_tables = found.assigned
        frozen = set()
        if schema_exists(conn):
            frozen = {r[0] for r in conn.execute("SELECT phase FROM ple_ops.phase_status WHERE status = 'frozen'")}
        answered = pending.answered(plan, decided.answers)
        unfinished = [p.phase for p in answered.phases if p.steps and p.phase not in frozen]
        schemas = plan.leaf_lock.get("schemas", [])
        assigned = {t for t, _, _ in assigned_tables}
        unassigned = sorted(
            name
            for name, table in catalog.tables.items()
            if name.split(".")[0] in schemas and table.kind in ("r", "p") and name not in assigned
        )
        lines.append(f"Phase 1 phases not yet frozen: {', '.join(unfinished) or 'none'}")
        lines.append(f"Phase 2 tables missing: {', '.join(found.undecided) or 'none'}")
        lines += [
            f"  moot ({'decided: skip' if decided_skip else 'UNDECIDED: `make decide ACCEPT=proposed`'}) {table}: {evidence}"
            for table, (evidence, decided_skip) in found.moot.items()
        ]
        lines += [f"  decided moot, but present now (decide again): {table}" for table in found.stale]
        lines += [f"  {sub_hub:<16} {ctb_class:<18} {table}" for table, sub_hub, ctb_class in assigned_tables]
        lines.append(
            f"{len(unassigned)} existing tables in leaf schemas have no CTB path (they stay; new ones would be refused)"
        )
        owner_gate = governance.detect(conn)
        if owner_gate:
            lines += _owner_gate_lines(conn, owner_gate, [a for a in assigned_tables if catalog.exists(a[0])], found)
        if not apply:
            lines.append("plan mode: nothing written")
            return "\n".join(lines)
        if unfinished or found.undecided or found.stale:
            raise PlanRejected(
                "the leaf lock needs Phase 1 complete and every Phase 2 table present or decided moot:\n"
                + "\n".join(lines)
            )
        hold(
            conn,
            decisions.fingerprint(plan, decided).scoped(approval.phase_scope(PHASE)),
            run_id=run_id,
        )
        ensure_schema(conn)
        written = len(governance.register(conn, owner_gate, found.register, STEP_ID, run_id)) if owner_gate else 0
        for table, sub_hub, ctb_class in assigned_tables:
            written += conn.execute(
                "INSERT INTO ple_ops.ctb_path_assignment (table_name, sub_hub, ctb_class, assigned_by) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (table_name) DO UPDATE SET sub_hub = EXCLUDED.sub_hub, ctb_class = EXCLUDED.ctb_class "
                "WHERE (ctb_path_assignment.sub_hub, ctb_path_assignment.ctb_class) IS DISTINCT FROM (EXCLUDED.sub_hub, EXCLUDED.ctb_class)",
                (table, sub_hub, ctb_class, f"leaf_lock:{run_id}"),
            ).rowcount
            if ctb_class != "TOOL":  # a row Phase 1 wrote for the table (its class) stays as it is
                written += conn.execute(
                    "INSERT INTO ple_ops.table_registry (table_oid, table_name, sub_hub, ctb_class, phase, run_id) "
                    "VALUES (%s::regclass::oid, %s, %s, %s, %s, %s) ON CONFLICT (table_oid) DO NOTHING",
                    (table, table, sub_hub, ctb_class, PHASE, run_id),
                ).rowcount
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
                        written += 1
            except errors.InsufficientPrivilege:
                enforcement = "audit_only"
        for schema in schemas:
            written += conn.execute(
                "INSERT INTO ple_ops.leaf_lock (schema_name, enforcement, run_id, adopted) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (schema_name) DO UPDATE SET enforcement = EXCLUDED.enforcement, adopted = EXCLUDED.adopted "
                "WHERE (leaf_lock.enforcement, leaf_lock.adopted) IS DISTINCT FROM (EXCLUDED.enforcement, EXCLUDED.adopted)",
                (schema, enforcement, run_id, adopted),
            ).rowcount
        lines.append(f"leaf lock on {', '.join(schemas)}: enforcement {enforcement}")
        lines.append(f"rows written: {written}" + (" (it was in place: nothing changed)" if not written else ""))
    return "\n".join(lines)


def _owner_gate_lines(
    conn: psycopg.Connection, gate: governance.Gate, assigned: list[tuple[str, str, str]], found: Review
) -> list[str]:
    """What the owner's gate already enforces, what the lock will add to the owner's registry (as
    decided), what it proposes, and the registry's drift in the owner's classes."""
    known = governance.entries(conn, [t for t, _, c in assigned if c != "TOOL"])
    archived = [t for t, _, c in assigned if c != "TOOL" and known.get(t, ("",))[0] in ("ARCHIVE", "DEPRECATED")]
    lines = [f"adopted: {gate.describe()}; the leaf lock adds no event trigger of its own"]
    lines += [f"  {item.line()} (decided)" for item in found.register]
    proposed = [t for t, entry in found.proposals.items() if "register" in entry]
    if proposed:
        lines.append(f"proposal: register {', '.join(proposed)} (Phase 2 assigns them a sub-hub; `make decide`)")
    unproposed = [t for t, _, c in assigned if c not in ("TOOL", *LEAF_TYPES) and t not in known and t not in proposed]
    if unproposed:
        lines.append(f"proposal for the owner: register {', '.join(unproposed)} (their class is the owner's to say)")
    if archived:
        lines.append(
            f"proposal for the owner: {', '.join(archived)} are registered as ARCHIVE/DEPRECATED but assigned a live sub-hub"
        )
    lines += [f"  drift {line}" for line in governance.drift_lines(conn)]
    return lines


def revert(conn: psycopg.Connection, plan: Plan, run_id: str, apply: bool) -> str:
    """Take the leaf lock away: its event trigger (if it created one), its assignments, its Phase 2
    rows in ple_ops.table_registry, its lock rows, and the rows it wrote into the owner's registry
    (ple_ops.registry_change, step `leaf_lock`), and nothing else. Needs `approve --revert 2`."""
    with transaction(conn, read_only=not apply):
        if not schema_exists(conn):
            return "the leaf lock was never applied here: nothing to revert"
        found = {
            "assignments": conn.execute(
                "SELECT count(*) FROM ple_ops.ctb_path_assignment WHERE assigned_by LIKE 'leaf\\_lock:%'"
            ).fetchone()[0],
            "classes": conn.execute(
                "SELECT count(*) FROM ple_ops.table_registry WHERE phase = %s", (PHASE,)
            ).fetchone()[0],
            "locks": conn.execute("SELECT count(*) FROM ple_ops.leaf_lock").fetchone()[0],
        }
        registered = [
            n
            for (n,) in conn.execute(
                "SELECT table_name FROM ple_ops.registry_change WHERE step_id = %s ORDER BY 1", (STEP_ID,)
            )
        ]
        trigger = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'ple_leaf_lock') "
            "AND EXISTS (SELECT 1 FROM ple_ops.leaf_lock WHERE enforcement = 'event_trigger')"
        ).fetchone()[0]
        lines = [
            f"remove {found['assignments']} CTB path assignments, {found['classes']} Phase 2 class rows, "
            f"{found['locks']} leaf lock rows" + (", the event trigger ple_leaf_lock" if trigger else ""),
            f"remove from ctb.table_registry the rows the lock wrote: {', '.join(registered) or 'none'}",
        ]
        if not apply:
            lines.append("plan mode: nothing written")
            return "\n".join(lines)
        hold(
            conn,
            revert_fingerprint(plan.sha256, PHASE),
            f"`python -m ple.cli approve --revert {PHASE}`",
            run_id=run_id,
        )
        if trigger:
            conn.execute("DROP EVENT TRIGGER IF EXISTS ple_leaf_lock")
        conn.execute("DELETE FROM ple_ops.ctb_path_assignment WHERE assigned_by LIKE 'leaf\\_lock:%'")
        conn.execute("DELETE FROM ple_ops.table_registry WHERE phase = %s", (PHASE,))
        conn.execute("DELETE FROM ple_ops.leaf_lock")
        for name in registered:
            schema, table = name.split(".", 1)
            conn.execute("DELETE FROM ctb.table_registry WHERE table_schema = %s AND table_name = %s", (schema, table))
        conn.execute("DELETE FROM ple_ops.registry_change WHERE step_id = %s", (STEP_ID,))
        lines.append(f"reverted by {run_id}")
    return "\n".join(lines)
