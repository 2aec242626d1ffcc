"""bench/reorganization.py's two baselines run the whole of Phase 1 on the fixture: the
hand-written script (copies) and the proof floor (renames plus the proof reads), each leaving
every merge source's rows in its archive, so that the ratios the benchmark prints compare
complete runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ple.reorg.plan import load
from ple_dev import embedded_pg
from tests.helpers import clone_fixture

BENCH = Path(__file__).resolve().parents[3] / "bench" / "reorganization.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_reorganization", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))).fetchone()[0]


@pytest.mark.parametrize("runner", ["run_handwritten", "run_floor"])
def test_a_baseline_runs_every_phase_and_archives_every_merge_source(pg_server, fixture_template, runner):
    plan = load()
    merged = [a.source for p in plan.phases for a in p.actions if a.kind in ("MERGE", "MERGE_JSONB", "MERGE_COLS")]
    dsn = clone_fixture(pg_server)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            before = {source: _count(conn, source) for source in merged}
        seconds = getattr(_bench(), runner)(dsn, plan)
        assert set(seconds) == {p.phase for p in plan.phases if p.steps}
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert {source: _count(conn, plan.archive_name(source)) for source in merged} == before
    finally:
        embedded_pg.drop_database(pg_server, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
