"""Relocating a table: RENAME and SET SCHEMA. Metadata only, constant time in rows.

Shared by ARCHIVE, MOVE and the archiving of merged sources. The table keeps its OID and its data
file (relfilenode), which is the proof that not a byte of its content changed. Views follow by
OID; function bodies that name the table do not (the preflight reports them). Indexes and owned
sequences whose names start with the old table name are renamed in step, so that names stay
unique in the target schema (two `pressure_signals_pkey` in `archive` would collide).
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql

from ple.catalog import Catalog
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg.context import State, Statement
from ple.reorg.findings import Finding
from ple.sqlutil import qualified, raw_template, split_qualified

MAX_NAME = 63


def renamed(name: str, old_table: str, new_table: str) -> str:
    if old_table == new_table or not name.startswith(old_table + "_"):
        return name
    new = new_table + name[len(old_table) :]
    if len(new) > MAX_NAME:
        new = new[: MAX_NAME - 9] + "_" + hashlib.sha1(new.encode()).hexdigest()[:8]
    return new


def check(catalog: Catalog, source: str, target: str) -> State:
    here, there = catalog.exists(source), catalog.exists(target)
    if here and not there:
        return State.PENDING
    if there and not here:
        return State.DONE
    if here and there:
        raise PlanRejected(f"both {source} and {target} exist: refusing to guess which one is the real table")
    raise PlanRejected(f"{source} does not exist (and neither does {target})")


def dependents(conn: psycopg.Connection, oid: int) -> list[tuple[str, str]]:
    return [(kind, name) for kind, name in conn.execute(raw_template("catalog/relation_dependents"), {"oid": oid})]


def statements(conn: psycopg.Connection, catalog: Catalog, source: str, target: str) -> list[Statement]:
    source_schema, source_table = split_qualified(source)
    target_schema, target_table = split_qualified(target)
    info = catalog.get(source)
    result: list[Statement] = []
    if source_table != target_table:
        result.append(
            Statement(
                f"rename {source} to {target_table}",
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(qualified(source), sql.Identifier(target_table)),
            )
        )
        for kind, name in dependents(conn, info.oid):
            new_name = renamed(name, source_table, target_table)
            if new_name != name:
                result.append(
                    Statement(
                        f"rename {kind} {name} with its table",
                        sql.SQL("ALTER {} {} RENAME TO {}").format(
                            sql.SQL("INDEX" if kind == "index" else "SEQUENCE"),
                            sql.Identifier(source_schema, name),
                            sql.Identifier(new_name),
                        ),
                    )
                )
    if source_schema != target_schema:
        result.append(
            Statement(
                f"move {source_schema}.{target_table} to schema {target_schema}",
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    sql.Identifier(source_schema, target_table), sql.Identifier(target_schema)
                ),
            )
        )
    return result


def name_collisions(conn: psycopg.Connection, catalog: Catalog, source: str, target: str) -> list[str]:
    """Relation names the relocation would create that already exist (lint: fail before writing)."""
    source_schema, source_table = split_qualified(source)
    target_schema, target_table = split_qualified(target)
    info = catalog.get(source)
    if info is None:
        return []
    wanted = {target_table} | {renamed(n, source_table, target_table) for _, n in dependents(conn, info.oid)}
    collisions = []
    for schema in {source_schema, target_schema}:
        existing = {r[0] for r in conn.execute(raw_template("catalog/relations_in_schema"), {"schema": schema})}
        mine = {source_table} | {n for _, n in dependents(conn, info.oid)} if schema == source_schema else set()
        collisions += [f"{schema}.{n}" for n in sorted((wanted & existing) - mine)]
    return collisions


def apply(conn: psycopg.Connection, catalog: Catalog, source: str, target: str) -> dict:
    """Relocate in the caller's transaction; prove the same OID and data file now answer to `target`."""
    info = catalog.get(source)
    for statement in statements(conn, catalog, source, target):
        conn.execute(statement.query)
    row = conn.execute(
        "SELECT c.oid, c.relfilenode, n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        (info.oid,),
    ).fetchone()
    if row is None or row[2] != target or row[1] != info.relfilenode:
        raise VerificationFailed(
            f"{source} -> {target}: relation {info.oid} is now {row}; expected {target} with the same data file"
        )
    return {"oid": info.oid, "relfilenode": info.relfilenode}


def relocations(plan, step) -> list[tuple[str, str]]:
    """(source, destination) of every table a step relocates."""
    if step.kind in ("ARCHIVE", "MOVE"):
        return [(step.action.source, step.action.target)]
    if step.kind in ("MERGE", "FOLD"):
        return [(a.source, plan.archive_name(a.source)) for a in step.actions]
    return []


# (catalog read, {(source, target): names}): the names depend only on the catalog, and the lint
# asks for every earlier relocation of the plan at each step.
_NAMES: list = [None, {}]


def _created_names(conn: psycopg.Connection, catalog: Catalog, source: str, target: str) -> set[str]:
    """Qualified names a pending relocation would bring into the target schema: the table, and its
    indexes and sequences (renamed with the table where their names start with its name)."""
    if _NAMES[0] is not catalog:
        _NAMES[:] = [catalog, {}]
    if (source, target) not in _NAMES[1]:
        _NAMES[1][(source, target)] = _names_now(conn, catalog, source, target)
    return _NAMES[1][(source, target)]


def _names_now(conn: psycopg.Connection, catalog: Catalog, source: str, target: str) -> set[str]:
    info = catalog.get(source)
    if info is None or catalog.exists(target):
        return set()
    source_table = split_qualified(source)[1]
    target_schema, target_table = split_qualified(target)
    names = {target_table} | {renamed(n, source_table, target_table) for _, n in dependents(conn, info.oid)}
    return {f"{target_schema}.{n}" for n in names}


def plan_collisions(conn: psycopg.Connection, catalog: Catalog, plan, step) -> list[str]:
    """Names this step's relocations would create that an earlier relocation of the plan creates
    too (two tables moved into one schema, each with an index `idx_status`): the live catalog
    cannot show that before the first of them runs, and the second would fail half way."""
    earlier: dict[str, str] = {}
    for other in plan.steps:
        if other.step_id == step.step_id:
            break
        for source, target in relocations(plan, other):
            for name in _created_names(conn, catalog, source, target):
                earlier.setdefault(name, source)
    collisions = []
    for source, target in relocations(plan, step):
        for name in sorted(_created_names(conn, catalog, source, target)):
            if name in earlier:
                collisions.append(
                    f"{source} -> {target} would create {name}, which moving {earlier[name]} creates first: "
                    "rename one of the two indexes (or relations) before the phase runs; nothing was written"
                )
    return collisions


def lint(ctx, step) -> list:
    return [Finding("name-collision", step.step_id, c) for c in plan_collisions(ctx.conn, ctx.catalog, ctx.plan, step)]
