"""Benchmark: the whole of Phase 1 (1A-1K) by this tool, proof included, against the copy-based
approach the owner used by hand, on the same fixture, in the same run.

The hand-written approach, written here from its description (not from this engine's code):
archives and moves are `CREATE TABLE ... AS SELECT *` copies followed by `DROP TABLE ... CASCADE`;
merges are plain `INSERT ... SELECT` of the columns both tables share (plus the plan's constants for
required columns) followed by a copy of the source into the archive; folds are one UPDATE per side
table; keys are `ADD COLUMN ... serial PRIMARY KEY`; one transaction per phase; no proof, no ledger.

The tool runs every phase as the DAGs do: preflight (lint, snapshot), every step (with its proof,
its ledger row, the advisory lock and the approval check), verify (the tool's rows proven, live
tables' changes reported) and freeze.

The proof floor is the least any tool can do that meets the issue's own proof requirements, timed
the same way: the hand-written writes with the copies replaced by renames (what the tool does
instead of copying), plus the reads no proving tool can skip, all of them of the rows that moved
only ("proof at the cost of what moved"; targets are not read whole): every merged or folded
source row once when it is written (proven on the rows it moved) and twice at verify (the archive
against what was written, and the copies against the archive: as many rows again). It has no
preflight snapshot, no ledger, no approval check, no lint, no catalog reads. If the floor is slower
than the hand-written approach, so is every tool that proves its work.

Each repetition runs the three on fresh clones of one fixture, rotating which goes first.

    make bench-reorg                                  # scale 1.0, 3 repetitions
    .venv/bin/python bench/reorganization.py --scale 0.1 --repetitions 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from ple import approval, config
from ple.reorg.context import Mode, Settings
from ple.reorg.executor import Executor
from ple.reorg.plan import Plan, load
from ple_dev import embedded_pg
from ple_dev.fixture.builder import build


def _columns(conn, table: str) -> dict[str, tuple[str, bool, bool]]:
    """name -> (type as written, NOT NULL, has a default), as a person reads them off \\d."""
    schema, name = table.split(".")
    return {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef OR a.attidentity <> '' "
            "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "AND a.attgenerated = '' ORDER BY a.attnum",
            (f"{schema}.{name}",),
        )
    }


def _ident(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


def _copy_and_drop(source: str, target: str) -> list[sql.Composable]:
    return [
        sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(_ident(target), _ident(source)),
        sql.SQL("DROP TABLE {} CASCADE").format(_ident(source)),
    ]


def _merge(conn, plan: Plan, action, relocate) -> list[tuple[sql.Composable, dict]]:
    spec = plan.merge_targets[action.target]
    disc = spec.discriminator_column
    out: list[tuple[sql.Composable, dict]] = [
        (
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                _ident(action.target), sql.Identifier(disc), sql.SQL(spec.discriminator_type)
            ),
            {},
        )
    ]
    out += [
        (sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(_ident(action.target), sql.Identifier(c)), {})
        for c in spec.relax_not_null
    ]
    source, target = _columns(conn, action.source), _columns(conn, action.target)
    keys = [
        r[0]
        for r in conn.execute(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p'",
            (action.target,),
        )
    ]
    names, values, params = [sql.Identifier(disc)], [sql.Literal(action.value)], {}
    for column, (column_type, _not_null, has_default) in target.items():
        if column == disc or (column in keys and has_default):  # a serial key numbers the new rows itself
            continue
        rule = spec.fill.get(column)
        value = None
        if rule:
            present = [
                sql.SQL("s.{}::{}").format(sql.Identifier(c), sql.SQL(column_type))
                for c in rule.get("from", [])
                if c in source
                and (source[c][0] == column_type or column_type in ("text", "jsonb") or "char" in column_type)
            ]
            if "value" in rule:
                present.append(sql.SQL("{}::{}").format(sql.Literal(rule["value"]), sql.SQL(column_type)))
            elif rule.get("discriminator"):
                present.append(sql.Literal(action.value))
            elif rule.get("generate") == "uuid":
                present.append(sql.SQL("gen_random_uuid()"))
            elif rule.get("generate") == "merged_at":
                present.append(sql.SQL("now()"))
            elif rule.get("generate") == "source_row":
                present.append(sql.SQL("to_jsonb(s)::{}").format(sql.SQL(column_type)))
            value = sql.SQL("COALESCE({})").format(sql.SQL(", ").join(present)) if present else None
        elif column in source and (source[column][0] == column_type or "char" in column_type or column_type == "text"):
            value = sql.SQL("s.{}::{}").format(sql.Identifier(column), sql.SQL(column_type))
        if value is not None:
            names.append(sql.Identifier(column))
            values.append(value)
    where = sql.SQL("")
    if spec.on_key_conflict == "keep_target" and keys and all(k in source for k in keys):
        where = sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {} x WHERE {})").format(
            _ident(action.target),
            sql.SQL(" AND ").join(sql.SQL("x.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys),
        )
    out.append(
        (
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} s {}").format(
                _ident(action.target),
                sql.SQL(", ").join(names),
                sql.SQL(", ").join(values),
                _ident(action.source),
                where,
            ),
            params,
        )
    )
    out += [(q, {}) for q in relocate(action.source, plan.archive_name(action.source))]
    return out


def _fold(conn, plan: Plan, action, relocate) -> list[tuple[sql.Composable, dict]]:
    join = action.join
    key = sql.SQL("s.{}").format(sql.Identifier(join.source))
    source = sql.SQL("{} s").format(_ident(action.source))
    if join.via_table:
        key = sql.SQL("b.{}").format(sql.Identifier(join.via_target))
        source = sql.SQL("{} s JOIN {} b ON b.{} = s.{}").format(
            _ident(action.source), _ident(join.via_table), sql.Identifier(join.via_source), sql.Identifier(join.source)
        )
    target = _ident(action.target)
    out = []
    if action.kind == "MERGE_JSONB":
        agg = sql.SQL("jsonb_agg(to_jsonb(s))") if action.shape == "array" else sql.SQL("(jsonb_agg(to_jsonb(s)))->0")
        columns = [(action.column, "jsonb", agg)]
    elif action.pivot:
        p = action.pivot
        columns = [
            (
                f"{k}{p['suffix']}",
                "numeric",
                sql.SQL("(array_agg(s.{} ORDER BY s.{} DESC) FILTER (WHERE s.{} = {}))[1]").format(
                    sql.Identifier(p["value"]), sql.Identifier(p["latest_by"]), sql.Identifier(p["key"]), sql.Literal(k)
                ),
            )
            for k in p["keys"]
        ]
    else:
        types = _columns(conn, action.source)
        columns = [
            (name, types[col][0], sql.SQL("max(s.{}::text)::{}").format(sql.Identifier(col), sql.SQL(types[col][0])))
            for name, col in action.columns
        ]
    for name, column_type, _ in columns:
        out.append(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(target, sql.Identifier(name), sql.SQL(column_type))
        )
    out.append(
        sql.SQL("UPDATE {} t SET {} FROM (SELECT {} AS k, {} FROM {} GROUP BY 1) side WHERE t.{} = side.k").format(
            target,
            sql.SQL(", ").join(sql.SQL("{c} = side.{c}").format(c=sql.Identifier(n)) for n, _, _ in columns),
            key,
            sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(n)) for n, _, e in columns),
            source,
            sql.Identifier(join.target),
        )
    )
    out += relocate(action.source, plan.archive_name(action.source))
    return [(q, {}) for q in out]


def handwritten_phase(conn, plan: Plan, phase_id: str, relocate=_copy_and_drop) -> list[tuple[sql.Composable, dict]]:
    out: list[tuple[sql.Composable, dict]] = [(sql.SQL("CREATE SCHEMA IF NOT EXISTS archive"), {})]
    for kind in ("ARCHIVE", "MERGE", "MERGE_JSONB", "MERGE_COLS", "MOVE", "ADD_PK", "KEEP_AS_MV"):
        for action in plan.phase(phase_id).actions:
            if action.kind != kind:
                continue
            if kind in ("ARCHIVE", "MOVE"):
                out += [(q, {}) for q in relocate(action.source, action.target)]
            elif kind == "MERGE":
                out += _merge(conn, plan, action, relocate)
            elif kind in ("MERGE_JSONB", "MERGE_COLS"):
                out += _fold(conn, plan, action, relocate)
            elif kind == "ADD_PK":
                out.append(
                    (
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} serial PRIMARY KEY").format(
                            _ident(action.source), sql.Identifier(action.column)
                        ),
                        {},
                    )
                )
            else:
                out.append((sql.SQL("COMMENT ON TABLE {} IS 'MATERIALIZED_VIEW'").format(_ident(action.source)), {}))
    return out


COPY_SECONDS: list[float] = []  # per hand-written run: its copies' share (CREATE TABLE AS + DROP)


def _run_script(dsn: str, plan: Plan, statements_of) -> tuple[dict[str, float], float]:
    """Each phase's statements in one transaction: seconds per phase, and the copies' share."""
    seconds, copies = {}, 0.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for phase in plan.phases:
            if not phase.steps:
                continue
            started = time.perf_counter()
            with conn.transaction():
                for statement, params in statements_of(conn, plan, phase.phase):
                    before = time.perf_counter()
                    conn.execute(statement, params or None)
                    if statement.as_string(conn).startswith(("CREATE TABLE", "DROP TABLE")):
                        copies += time.perf_counter() - before
            seconds[phase.phase] = time.perf_counter() - started
    return seconds, copies


def run_handwritten(dsn: str, plan: Plan) -> dict[str, float]:
    seconds, copies = _run_script(dsn, plan, handwritten_phase)
    COPY_SECONDS.append(copies)
    return seconds


def _hashed_read(table: str) -> sql.Composable:
    return sql.SQL("SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {} t").format(_ident(table))


def _relocate(conn, source: str, target: str) -> list[sql.Composable]:
    """What the tool does instead of a copy: the table itself changes name and schema (its indexes
    renamed after it, so that two tables of one name can land in one schema)."""
    (source_schema, source_name), (schema, name) = source.split("."), target.split(".")
    out = [
        sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            sql.Identifier(source_schema, index), sql.Identifier(f"{name}_{index}"[:63])
        )
        for (index,) in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(%s)",
            (source,),
        )
    ]
    if name != source_name:
        out.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(source), sql.Identifier(name)))
    if schema != source_schema:
        out.append(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(source_schema, name), sql.Identifier(schema))
        )
    return out


def floor_phase(conn, plan: Plan, phase_id: str) -> list[tuple[sql.Composable, dict]]:
    """The proof floor of one phase (see the module docstring), in execution order."""
    actions = plan.phase(phase_id).actions
    moved = [a.source for a in actions if a.kind in ("MERGE", "MERGE_JSONB", "MERGE_COLS")]

    def relocate(source: str, target: str) -> list[sql.Composable]:
        return ([_hashed_read(source)] if source in moved else []) + _relocate(conn, source, target)

    verify = [(_hashed_read(plan.archive_name(source)), {}) for source in moved]
    return handwritten_phase(conn, plan, phase_id, relocate) + verify + verify


def run_floor(dsn: str, plan: Plan) -> dict[str, float]:
    return _run_script(dsn, plan, floor_phase)[0]


def run_tool(dsn: str, plan: Plan) -> dict[str, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        approval.approve(conn, approval.reorganization(plan.sha256), "benchmark", via="bench")
        executor = Executor(conn, plan, f"bench__{uuid.uuid4().hex[:8]}", Settings(mode=Mode.APPLY))
        seconds = {}
        for phase in plan.phases:
            if not phase.steps:
                continue
            started = time.perf_counter()
            executor.preflight(phase.phase)
            for step in phase.steps:
                executor.run_step(step.step_id)
            executor.verify(phase.phase)
            executor.freeze(phase.phase)
            seconds[phase.phase] = time.perf_counter() - started
    return seconds


def template(server, scale: float, name: str | None = None) -> str:
    """The fixture at `scale` in a template database (reused when `name` already holds one)."""
    name = name or f"bench_reorg_{str(scale).replace('.', '_')}"
    exists = (
        psycopg.connect(server.dsn(), autocommit=True)
        .execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        .fetchone()
    )
    if not exists:
        dsn = embedded_pg.create_database(server, name)
        started = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            build(conn, scale=scale, log=lambda _: None)
        print(f"fixture at scale {scale} built in {time.perf_counter() - started:.1f}s into {name}")
    return name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--template", help="reuse (or keep) the fixture in this database")
    args = parser.parse_args()
    plan = load()
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    name = template(server, args.scale, args.template)
    runners = {"tool": run_tool, "handwritten": run_handwritten, "floor": run_floor}
    runs: dict[str, list[dict[str, float]]] = {who: [] for who in runners}
    for repetition in range(args.repetitions):
        order = list(runners)[repetition % 3 :] + list(runners)[: repetition % 3]
        for who in order:
            clone = f"{name}_{who}"
            dsn = embedded_pg.create_database(server, clone, name)
            runs[who].append(runners[who](dsn, plan))
            embedded_pg.drop_database(server, clone)
            print(f"repetition {repetition + 1}: {who:<12} {sum(runs[who][-1].values()):8.2f} s")
    if not args.template:
        embedded_pg.drop_database(server, name)

    phases = list(runs["tool"][0])
    median = {who: {p: statistics.median(r[p] for r in rs) for p in phases} for who, rs in runs.items()}
    print(f"\nPhase 1 (1A-1K) at scale {args.scale}, median of {args.repetitions} rotating repetitions")
    print(
        f"{'phase':<8}{'tool s':>9}{'by hand s':>11}{'floor s':>9}{'tool/hand':>11}{'floor/hand':>12}{'tool/floor':>12}"
    )
    totals = {who: [sum(r.values()) for r in rs] for who, rs in runs.items()}
    rows = [(p, *(median[who][p] for who in runners)) for p in phases]
    rows.append(("total", *(statistics.median(totals[who]) for who in runners)))
    for p, tool, hand, floor in rows:
        print(
            f"{p:<8}{tool:>9.2f}{hand:>11.2f}{floor:>9.2f}{tool / hand:>11.2f}{floor / hand:>12.2f}{tool / floor:>12.2f}"
        )
    print("totals per repetition: " + ", ".join(f"{who} {[round(t, 2) for t in totals[who]]}" for who in runners))
    print(
        f"the hand-written copies (CREATE TABLE ... AS SELECT + DROP, the work the tool saves): "
        f"median {statistics.median(COPY_SECONDS):.2f} s of its {statistics.median(totals['handwritten']):.2f} s"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
