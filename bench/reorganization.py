"""Benchmark: the CTB reorganization (phases 1A-1K) by this tool against the hand-written SQL
script a user would otherwise run, on the same fixture, in the same run.

The hand-written script copies instead of moving (CREATE TABLE AS + DROP TABLE ... CASCADE, which
also drops the views that read the table), merges with a bare INSERT ... SELECT, folds with one
UPDATE per side table, and proves nothing. The tool moves by catalog (constant time), merges with
provenance, snapshots, proves every action with checksums and runs the Great Expectations suites.

Second measurement: ARCHIVE and MOVE time at a small scale against the full scale. Metadata-only
moves should not grow with the table (ratio near 1); the copy of the hand-written script grows
with it.

    make bench-reorg                      # scale 1.0 against 0.1 (builds both fixtures: ~4 min)
    .venv/bin/python bench/reorganization.py --scale 0.1 --small-scale 0.01
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg
from psycopg import sql

from ple import approval, config, embedded_pg
from ple.catalog import read_catalog
from ple.fixture.builder import build
from ple.reorg.actions import fold, merge
from ple.reorg.context import Context, Mode, Settings
from ple.reorg.executor import Executor
from ple.reorg.plan import Plan, load
from ple.sqlutil import qualified


def naive_statements(conn, plan: Plan, phase_id: str) -> list[tuple[sql.Composable, dict]]:
    """The hand-written script for one phase, built from the same plan and the live catalog."""
    catalog = read_catalog(conn)
    ctx = Context(conn, plan, "handwritten", Settings(), catalog)
    phase = plan.phase(phase_id)
    out: list[tuple[sql.Composable, dict]] = [(sql.SQL("CREATE SCHEMA IF NOT EXISTS archive"), {})]

    def copy_and_drop(source: str, target: str):
        out.append((sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(qualified(target), qualified(source)), {}))
        out.append((sql.SQL("DROP TABLE {} CASCADE").format(qualified(source)), {}))

    for step in phase.steps:
        action = step.action
        if step.kind in ("ARCHIVE", "MOVE"):
            copy_and_drop(action.source, action.target)
        elif step.kind == "MERGE":
            spec = plan.merge_targets[action.target]
            for statement in merge.prepare_target(ctx, action.target):
                if "ctb_" not in statement.purpose:
                    out.append((statement.query, {}))
            source, target = catalog.get(action.source), catalog.get(action.target)
            mapping = merge.mapping(action, spec, source, target, catalog)
            key_match = merge.target_key_match(spec, target, mapping.fills)
            where = sql.SQL("")
            if key_match is not None and spec.on_key_conflict == "keep_target":
                where = sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})").format(
                    qualified(action.target), key_match
                )
            out.append(
                (
                    sql.SQL(
                        "INSERT INTO {} ({}, {}) SELECT {}, %(discriminator)s FROM (SELECT s, to_jsonb(s) AS ctb_row, {} AS ctb_key FROM {} AS s) AS k {}"
                    ).format(
                        qualified(action.target),
                        sql.SQL(", ").join(sql.Identifier(f.column) for f in mapping.fills),
                        sql.Identifier(spec.discriminator_column),
                        sql.SQL(", ").join(f.expression for f in mapping.fills),
                        merge.source_key(source),
                        qualified(action.source),
                        where,
                    ),
                    mapping.params | {"run_id": "handwritten"},
                )
            )
            copy_and_drop(action.source, plan.archive_name(action.source))
        elif step.kind == "FOLD":
            for statement in fold.add_column_statements(ctx, step):
                out.append((statement.query, {}))
            for index, side_action in enumerate(step.actions):  # one UPDATE per side table
                params: dict = {}
                side = fold.side_for(ctx, side_action, index, params)
                sets = sql.SQL(", ").join(
                    sql.SQL("{c} = side.{c}").format(c=sql.Identifier(name)) for name, _ in side.new_columns
                )
                out.append(
                    (
                        sql.SQL("UPDATE {} AS t SET {} FROM ({}) AS side WHERE t.{} = side.k").format(
                            qualified(step.target), sets, side.select, sql.Identifier(side_action.join.target)
                        ),
                        params,
                    )
                )
            for side_action in step.actions:
                copy_and_drop(side_action.source, plan.archive_name(side_action.source))
        elif step.kind == "ADD_PK":
            out.append(
                (
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} serial PRIMARY KEY").format(
                        qualified(action.source), sql.Identifier(action.column)
                    ),
                    {},
                )
            )
        elif step.kind == "KEEP_AS_MV":
            out.append((sql.SQL("COMMENT ON TABLE {} IS 'MATERIALIZED_VIEW'").format(qualified(action.source)), {}))
    return out


def run_tool(dsn: str, plan: Plan) -> tuple[dict[str, float], dict[str, int]]:
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
        relocations = dict(
            conn.execute(
                "SELECT step_id, duration_ms FROM ple_ops.action_ledger WHERE action IN ('ARCHIVE', 'MOVE') AND outcome = 'applied'"
            )
        )
    return seconds, relocations


def run_handwritten(dsn: str, plan: Plan) -> tuple[dict[str, float], dict[str, float]]:
    seconds, relocations = {}, {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for phase in plan.phases:
            if not phase.steps:
                continue
            started = time.perf_counter()
            with conn.transaction():
                statements = naive_statements(conn, plan, phase.phase)
                for statement, params in statements:
                    step_started = time.perf_counter()
                    conn.execute(statement, params or None)
                    text = statement.as_string(conn)
                    if text.startswith("CREATE TABLE") and any(
                        text.endswith(qualified(s.action.source).as_string(conn))
                        for s in phase.steps
                        if s.kind in ("ARCHIVE", "MOVE")
                    ):
                        relocations[text] = (time.perf_counter() - step_started) * 1000
            seconds[phase.phase] = time.perf_counter() - started
    return seconds, relocations


def fixture(server, name: str, scale: float) -> str:
    dsn = embedded_pg.create_database(server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        build(conn, scale=scale, log=lambda _: None)
        print(f"fixture at scale {scale} built in {time.perf_counter() - started:.1f}s")
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--small-scale", type=float, default=0.1)
    args = parser.parse_args()
    plan = load()
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)

    results = {}
    for scale in (args.scale, args.small_scale):
        template = f"bench_reorg_{str(scale).replace('.', '_')}"
        fixture(server, template, scale)
        tool_dsn = embedded_pg.create_database(server, template + "_tool", template)
        naive_dsn = embedded_pg.create_database(server, template + "_naive", template)
        tool, tool_relocations = run_tool(tool_dsn, plan)
        naive, naive_relocations = run_handwritten(naive_dsn, plan)
        results[scale] = (tool, naive, tool_relocations, naive_relocations)
        for name in (template, template + "_tool", template + "_naive"):
            embedded_pg.drop_database(server, name)

    tool, naive, tool_relocations, naive_relocations = results[args.scale]
    print(f"\nphases 1A-1K at scale {args.scale}: tool (proven, idempotent) vs hand-written SQL script")
    print(f"{'phase':<8}{'tool s':>10}{'script s':>10}{'tool/script':>13}")
    for phase in tool:
        print(f"{phase:<8}{tool[phase]:>10.2f}{naive[phase]:>10.2f}{tool[phase] / naive[phase]:>13.2f}")
    total_tool, total_naive = sum(tool.values()), sum(naive.values())
    print(f"{'total':<8}{total_tool:>10.2f}{total_naive:>10.2f}{total_tool / total_naive:>13.2f}")

    small_tool, small_naive = results[args.small_scale][2], results[args.small_scale][3]
    big_ms, small_ms = sum(tool_relocations.values()), sum(small_tool.values())
    big_copy, small_copy = sum(naive_relocations.values()), sum(small_naive.values())
    print(f"\nARCHIVE + MOVE steps ({len(tool_relocations)}), scale {args.scale} against {args.small_scale}:")
    print(f"  tool (rename + set schema):   {big_ms:8.0f} ms vs {small_ms:8.0f} ms  ratio {big_ms / small_ms:5.2f}")
    print(
        f"  script (CREATE TABLE AS copy): {big_copy:8.0f} ms vs {small_copy:8.0f} ms  ratio {big_copy / max(small_copy, 0.001):5.2f}"
    )


if __name__ == "__main__":
    main()
