"""Benchmark: plan mode with its full rehearsal, beside apply, phase by phase (issue 19).

For every phase of Phase 1 in order, on one clone of the fixture: plan mode (lint, preflight, the
exact SQL and live counts of every step: read-only), then the rehearsal (every step carried out,
verified and rolled back in one transaction; here with no lock budget, as on a copy of the target
such as a Neon branch), then apply (so the next phase is planned and rehearsed on the state apply
leaves). Timer scopes are equal: each is the wall time of the executor calls the DAG's tasks make
for that mode. On the target itself the rehearsal is bounded by `rehearse_budget_seconds` (30 s by
default): the column "fits 30 s" says whether the whole phase's rehearsal would finish within it.

    .venv/bin/python bench/plan_rehearsal.py --scale 1.0
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg

from ple import approval, config
from ple.reorg.context import Mode, Settings
from ple.reorg.executor import Executor
from ple.reorg.plan import load
from ple.reorg.rehearse import NOT_CLEAN
from ple_dev import embedded_pg

BUDGET = 30.0


def _timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def measure(dsn: str) -> list[tuple[str, float, float, float, str]]:
    plan = load()
    rows = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        approval.approve(conn, approval.reorganization(plan.sha256), "benchmark", via="bench", standing=True)
        run = f"bench__{uuid.uuid4().hex[:8]}"
        planner = Executor(conn, plan, run, Settings(mode=Mode.PLAN))
        rehearser = Executor(conn, plan, run, Settings(mode=Mode.REHEARSE, rehearse_budget_seconds=10**6))
        applier = Executor(conn, plan, run, Settings(mode=Mode.APPLY))
        for phase in plan.phases:
            if not phase.steps:
                continue
            steps = [s.step_id for s in phase.steps]
            planned, _ = _timed(lambda p=phase.phase, s=steps: [planner.preflight(p), *map(planner.run_step, s)])
            rehearsed, report = _timed(lambda p=phase.phase: rehearser.preflight(p))
            applied, _ = _timed(
                lambda p=phase.phase, s=steps: [
                    applier.preflight(p),
                    *map(applier.run_step, s),
                    applier.verify(p),
                    applier.freeze(p),
                ]
            )
            outcome = "clean" if report.status not in NOT_CLEAN else report.status
            rows.append((phase.phase, planned, rehearsed, applied, outcome))
    return rows


def main() -> None:
    from reorganization import template  # bench/ is the script's own directory

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--template", help="reuse (or keep) the fixture in this database")
    args = parser.parse_args()
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    name = template(server, args.scale, args.template)
    clone = f"{name}_plan_rehearsal"
    dsn = embedded_pg.create_database(server, clone, name)
    try:
        rows = measure(dsn)
    finally:
        embedded_pg.drop_database(server, clone)
        if not args.template:
            embedded_pg.drop_database(server, name)
    print(f"\nplan mode + rehearsal beside apply, Phase 1 at scale {args.scale} (one clone, phases in order)")
    print(
        f"{'phase':<7}{'plan s':>8}{'rehearse s':>12}{'apply s':>9}{'plan/apply':>12}{'rehearse/apply':>16}  fits 30 s  outcome"
    )
    for phase_id, planned, rehearsed, applied, outcome in rows:
        print(
            f"{phase_id:<7}{planned:>8.2f}{rehearsed:>12.2f}{applied:>9.2f}{planned / applied:>12.2f}"
            f"{rehearsed / applied:>16.2f}  {'yes' if rehearsed <= BUDGET else 'NO':<9}  {outcome}"
        )
    plan_total, rehearse_total, apply_total = (sum(r[i] for r in rows) for i in (1, 2, 3))
    print(
        f"{'total':<7}{plan_total:>8.2f}{rehearse_total:>12.2f}{apply_total:>9.2f}{plan_total / apply_total:>12.2f}"
        f"{rehearse_total / apply_total:>16.2f}"
    )
    print(
        f"plan mode with its full rehearsal: {plan_total + rehearse_total:.1f} s "
        f"(goal: under 60 s on a copy); load average at the end: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
