"""The owner's CTB governance layer, found and respected: register first, create second.

Since 2026-02-20 the PLE database carries its owner's DDL gate (company-lifecycle-cl migrations
015/016): event triggers that refuse CREATE TABLE and ALTER TABLE of a table `ctb.table_registry`
does not list (a RENAME or SET SCHEMA is judged under the new name), any ALTER of a table it marks
frozen, and DROP TABLE of an unregistered table. The owner registers a table before creating it;
so does this tool: every name a step will give a table (its archive, a set-aside name, a created
merge target, the intermediate name of a rename followed by a move, the tool's own ple_ops tables)
is registered in the step's own transaction before its DDL, and recorded in ple_ops.registry_change;
a registration of a name that no longer exists when the step ends (an intermediate) is removed in
the same transaction, and a revert removes the tool's rows for the names it takes away. Frozen
tables are altered only where a person accepted it (a guard, `guards.accept.<table>.frozen`): the
step unfreezes them inside each of its transactions and freezes them again before it commits, so no
other session ever sees them unfrozen, and a killed step leaves them as they were.

Nothing here acts where the layer is absent: detect() returns None and every caller goes on as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ple.config import INCLUDE_DIR
from ple.sqlutil import raw_template, split_qualified

REGISTERED_BY = "ple_ctb_tool"
OPS_TABLES = tuple(
    sorted(
        set(re.findall(r"CREATE TABLE IF NOT EXISTS (ple_ops\.\w+)", (INCLUDE_DIR / "sql/ops/schema.sql").read_text()))
    )
)


@dataclass(frozen=True)
class Gate:
    """The owner's gate as found: the registry's columns and the event triggers that enforce it."""

    columns: frozenset[str]
    triggers: tuple[str, ...]

    def describe(self) -> str:
        enforced = ", ".join(self.triggers) or "no enabled event trigger (the registry is not enforced)"
        return f"the owner's CTB governance layer: ctb.table_registry, enforced by {enforced}"


@dataclass(frozen=True)
class Registration:
    table: str
    leaf_type: str
    why: str

    def line(self) -> str:
        return f"register {self.table} as {self.leaf_type} in ctb.table_registry ({self.why})"


def detect(conn: psycopg.Connection) -> Gate | None:
    row = conn.execute(raw_template("governance/detect"), {}).fetchone()
    if row is None:
        return None
    columns, triggers = row
    return Gate(frozenset(columns or ()), tuple(triggers or ()))


def entries(conn: psycopg.Connection, names: list[str]) -> dict[str, tuple[str, bool]]:
    """name -> (leaf type, frozen) for the names the registry lists."""
    return {n: (leaf, frozen) for n, leaf, frozen in conn.execute(raw_template("governance/entries"), {"names": names})}


# The owner's drift audit (company-lifecycle-cl scripts/ctb-drift-audit.sh): its 14 classes, those
# computed here from the catalog and the registry, and why the others are not.
DRIFT_CLASSES = (
    "ROGUE_TABLE",
    "PHANTOM_TABLE",
    "ORPHAN_TABLE",
    "GHOST_TABLE",
    "COLUMN_DRIFT",
    "REGISTRY_DESYNC",
    "IMMUTABILITY_MISSING",
    "RAW_COLUMNS_MISSING",
    "RAW_VIEW_MISSING",
    "JSON_IN_RAW",
    "JSON_IN_DOWNSTREAM",
    "BRIDGE_NO_VERSION",
    "VENDOR_REF_VIOLATION",
    "SUPERUSER_CONNECTION",
)
NOT_COMPUTED = {
    name: "needs the owner's column_registry.yml (the build-time column registry), which is not in the database"
    for name in ("ORPHAN_TABLE", "GHOST_TABLE", "COLUMN_DRIFT", "REGISTRY_DESYNC")
}
# Not an owner class: its Surface A leaves schema ctb out, so its own unregistered tables show nowhere.
UNREGISTERED_CTB = "UNREGISTERED_CTB_TABLE"


@dataclass(frozen=True)
class Drift:
    kind: str  # the owner's class name (or UNREGISTERED_CTB)
    name: str
    detail: str


def drift(conn: psycopg.Connection) -> list[Drift]:
    """Where the registry and the catalog disagree, in the owner's drift classes (read-only)."""
    found = [Drift(*row) for row in conn.execute(raw_template("governance/drift"), {})]
    if conn.execute("SELECT to_regclass('ctb.promotion_paths') IS NOT NULL").fetchone()[0]:
        try:
            with conn.transaction():  # a promotion_paths of another shape is no evidence either way
                found += [Drift(*row) for row in conn.execute(raw_template("governance/vendor_refs"), {})]
        except psycopg.Error:
            pass
    return found


def drift_summary(found: list[Drift]) -> list[str]:
    """One line per owner class (count and the first names), the classes not computed and why."""
    by_kind: dict[str, list[Drift]] = {}
    for item in found:
        by_kind.setdefault(item.kind, []).append(item)
    lines = []
    for kind in (*DRIFT_CLASSES, UNREGISTERED_CTB):
        if kind in NOT_COMPUTED:
            lines.append(f"{kind}: not computed ({NOT_COMPUTED[kind]})")
            continue
        items = by_kind.get(kind, [])
        if kind == UNREGISTERED_CTB and not items:
            continue
        names = sorted({i.name for i in items})
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        lines.append(f"{kind}: {len(items)}" + (f" ({len(names)} objects: {shown})" if items else ""))
    return lines


def drift_lines(conn: psycopg.Connection) -> list[str]:
    return drift_summary(drift(conn))


def relocation_names(source: str, target: str) -> list[str]:
    """Every name a table gets on its way from `source` to `target` (relocate.statements renames
    first, then moves: the intermediate name is judged by the gate too)."""
    source_schema, source_table = split_qualified(source)
    target_schema, target_table = split_qualified(target)
    names = []
    if source_table != target_table and source_schema != target_schema:
        names.append(f"{source_schema}.{target_table}")
    return [*names, target]


def register(
    conn: psycopg.Connection, gate: Gate, registrations: list[Registration], step_id: str, run_id: str | None
) -> list[Registration]:
    """In the caller's transaction, before its DDL: the rows the registry lacks, recorded (the
    tool's ledger must exist: ensure_schema registers its own tables first). Returns those written."""
    written = []
    for item in registrations:
        schema, name = split_qualified(item.table)
        columns = ["table_schema", "table_name", "leaf_type"]
        values = [schema, name, item.leaf_type]
        if "registered_by" in gate.columns:
            columns.append("registered_by")
            values.append(REGISTERED_BY)
        if "notes" in gate.columns:
            columns.append("notes")
            values.append(f"{item.why} (step {step_id})")
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO ctb.table_registry ({columns}) SELECT {values} WHERE NOT EXISTS "
                "(SELECT 1 FROM ctb.table_registry WHERE table_schema = %s AND table_name = %s) RETURNING 1"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                values=sql.SQL(", ").join(sql.Placeholder() * len(values)),
            ),
            [*values, schema, name],
        ).fetchone()
        if inserted:
            written.append(item)
            _record(conn, item, step_id, run_id)
    return written


def _record(conn: psycopg.Connection, item: Registration, step_id: str, run_id: str | None) -> None:
    if conn.execute("SELECT to_regclass('ple_ops.registry_change') IS NULL").fetchone()[0]:
        return  # the tool's own tables, registered before they exist: recorded by register_ops
    conn.execute(
        "INSERT INTO ple_ops.registry_change (table_name, change, leaf_type, step_id, run_id) "
        "VALUES (%s, 'registered', %s, %s, %s) ON CONFLICT (table_name, change) DO NOTHING",
        (item.table, item.leaf_type, step_id, run_id),
    )


def register_ops(conn: psycopg.Connection, gate: Gate) -> list[Registration]:
    """The tool's own tables, as SYSTEM, before ple_ops is created or altered."""
    return register(
        conn,
        gate,
        [Registration(t, "SYSTEM", "the CTB reorganization tool's own ledger") for t in OPS_TABLES],
        "ple_ops",
        None,
    )


def record_ops(conn: psycopg.Connection, written: list[Registration]) -> None:
    for item in written:
        _record(conn, item, "ple_ops", None)


def forget_gone(conn: psycopg.Connection, step_ids: list[str]) -> list[str]:
    """The tool's registrations for these steps whose table does not exist now (an intermediate
    name at the end of its step; a revert's names taken away), removed from the registry and the
    tool's record. Never a row the owner wrote."""
    if conn.execute("SELECT to_regclass('ple_ops.registry_change') IS NULL").fetchone()[0]:
        return []
    gone = conn.execute(
        "SELECT table_name FROM ple_ops.registry_change WHERE step_id = ANY(%s) AND change = 'registered' "
        "AND to_regclass(format('%%I.%%I', split_part(table_name, '.', 1), split_part(table_name, '.', 2))) IS NULL",
        (step_ids,),
    ).fetchall()
    names = [n for (n,) in gone]
    for name in names:
        schema, table = split_qualified(name)
        conn.execute("DELETE FROM ctb.table_registry WHERE table_schema = %s AND table_name = %s", (schema, table))
        conn.execute("DELETE FROM ple_ops.registry_change WHERE table_name = %s AND change = 'registered'", (name,))
    return names


def set_frozen(conn: psycopg.Connection, tables: list[str], frozen: bool) -> list[str]:
    """In the caller's transaction: the registry's frozen flag of these tables; returns those changed."""
    if not tables:
        return []
    rows = conn.execute(
        "UPDATE ctb.table_registry SET is_frozen = %s WHERE format('%%s.%%s', table_schema, table_name) = ANY(%s) "
        "AND is_frozen IS DISTINCT FROM %s RETURNING format('%%s.%%s', table_schema, table_name)",
        (frozen, tables, frozen),
    ).fetchall()
    return [name for (name,) in rows]


def register_before_create(conn: psycopg.Connection, table: str, leaf_type: str, why: str, step_id: str) -> None:
    """In the caller's transaction, before it creates `table`: registered where the owner's gate
    exists (a no-op where it does not, or where the table is registered already)."""
    gate = detect(conn)
    if gate is not None:
        register(conn, gate, [Registration(table, leaf_type, why)], step_id, None)
