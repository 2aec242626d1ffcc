"""Benchmark: what the reorganization costs the application while it runs.

A steady read/write workload (threads, each a session of its own, as an application's pool would
be) runs against canonical tables (people.people_master, outreach.bit_scores) and tables the plan
merges into or moves (people.people_errors, company.url_discovery_failures, which 1C moves to
outreach: the workload follows it, as an application would after its deploy). It runs twice, for
the same time, on two clones of one fixture: once alone (baseline), once while every phase of
the reorganization applies (preflight, steps, verify, freeze: as `ctb_reorganization` runs them).
Reported: each run's statement latency p50/p99/max, and every statement that waited longer than the
tool's lock timeout (the goal: none).

    make bench-impact                                   # scale 1.0
    .venv/bin/python bench/production_impact.py --scale 0.1
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
import uuid

import psycopg
from reorganization import template  # bench/ is on sys.path when run as a script

from ple import approval, config
from ple.reorg.context import Mode, Settings
from ple.reorg.executor import Executor
from ple.reorg.plan import load
from ple_dev import embedded_pg

LOCK_TIMEOUT_S = 2.0  # the tool's default SET LOCAL lock_timeout
MOVED = {"company.url_discovery_failures": "outreach.url_discovery_failures"}


class Workload:
    """`threads` sessions, each looping over a fixed mix of statements, recording every latency."""

    def __init__(self, dsn: str, threads: int, pause: float):
        self.dsn, self.threads, self.pause = dsn, threads, pause
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self):
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_exc):
        self.stop.set()
        for worker in self.workers:
            worker.join(60)

    def _statements(self, conn, names: dict) -> list[tuple[str, tuple]]:
        person = conn.execute("SELECT unique_id FROM people.people_master TABLESAMPLE SYSTEM (1) LIMIT 1").fetchone()
        return [
            ("SELECT * FROM people.people_master WHERE unique_id = %s", (person[0] if person else "",)),
            ("SELECT count(*) FROM outreach.bit_scores WHERE outreach_id IS NOT NULL", ()),
            (
                "INSERT INTO people.people_errors (error_id, outreach_id, error_stage, error_type, error_code, "
                "error_message, raw_payload, retry_strategy, status, created_at, last_updated_at) "
                "SELECT gen_random_uuid(), outreach_id, 'bench', 'validation', 'bench', 'workload', '{}', 'manual', "
                "'open', now(), now() FROM outreach.outreach LIMIT 1",
                (),
            ),
            (
                f"INSERT INTO {names['company.url_discovery_failures']} (failure_id, company_unique_id, failure_reason) "
                "VALUES (gen_random_uuid(), 'workload', 'timeout')",
                (),
            ),
            (f"SELECT count(*) FROM {names['company.url_discovery_failures']}", ()),
        ]

    def _run(self, number: int) -> None:
        names = {old: old for old in MOVED}
        rng = random.Random(number)
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
            while not self.stop.is_set():
                for query, params in self._statements(conn, names):
                    started = time.perf_counter()
                    try:
                        conn.execute(query, params or None)
                    except psycopg.errors.UndefinedTable:
                        names = dict(MOVED)  # the table moved: the application follows it
                        continue
                    except psycopg.Error as exc:
                        with self.lock:
                            self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                        continue
                    with self.lock:
                        self.latencies.append(time.perf_counter() - started)
                    time.sleep(self.pause * rng.random())


def reorganize(dsn: str) -> float:
    plan = load()
    with psycopg.connect(dsn, autocommit=True) as conn:
        approval.approve(conn, approval.reorganization(plan.sha256), "benchmark", via="bench")
        executor = Executor(conn, plan, f"impact__{uuid.uuid4().hex[:8]}", Settings(mode=Mode.APPLY))
        started = time.perf_counter()
        for phase in plan.phases:
            if not phase.steps:
                continue
            executor.preflight(phase.phase)
            for step in phase.steps:
                executor.run_step(step.step_id)
            executor.verify(phase.phase)
            executor.freeze(phase.phase)
        return time.perf_counter() - started


def describe(name: str, workload: Workload) -> str:
    values = sorted(workload.latencies)
    if not values:
        return f"{name:<22} no statement completed"
    p = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000  # noqa: E731
    slow = sum(1 for v in values if v > LOCK_TIMEOUT_S)
    return (
        f"{name:<22} {len(values):>8,} {p(0.50):>9.2f} {p(0.99):>9.2f} {values[-1] * 1000:>10.1f} "
        f"{statistics.mean(values) * 1000:>9.2f} {slow:>8} {len(workload.errors):>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.005, help="max random pause between statements (s)")
    parser.add_argument("--template", help="reuse (or keep) the fixture in this database")
    args = parser.parse_args()
    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    name = template(server, args.scale, args.template)

    busy_dsn = embedded_pg.create_database(server, f"{name}_impact_busy", name)
    with Workload(busy_dsn, args.threads, args.pause) as busy:
        time.sleep(1.0)
        seconds = reorganize(busy_dsn)
        time.sleep(1.0)
    quiet_dsn = embedded_pg.create_database(server, f"{name}_impact_quiet", name)
    with Workload(quiet_dsn, args.threads, args.pause) as quiet:
        time.sleep(seconds + 2.0)
    for clone in (f"{name}_impact_busy", f"{name}_impact_quiet"):
        embedded_pg.drop_database(server, clone)
    if not args.template:
        embedded_pg.drop_database(server, name)

    print(f"\nworkload of {args.threads} sessions at scale {args.scale}; reorganization 1A-1K took {seconds:.1f} s")
    print(
        f"{'run':<22} {'stmts':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>10} {'mean ms':>9} {'>2 s':>8} {'errors':>7}"
    )
    print(describe("alone (baseline)", quiet))
    print(describe("during reorganization", busy))
    for error in sorted(set(busy.errors))[:10]:
        print(f"  error during reorganization: {error}")
    base, during = sorted(quiet.latencies), sorted(busy.latencies)
    if base and during:
        p99 = lambda v: v[min(len(v) - 1, int(0.99 * len(v)))]  # noqa: E731
        print(
            f"p99 ratio during/alone: {p99(during) / p99(base):.2f}; max during: {during[-1]:.2f} s (goal: < {LOCK_TIMEOUT_S} s)"
        )


if __name__ == "__main__":
    main()
