"""Shared by the property tests: a phase's setting, its sources, what lint and plan mode report,
and apply (as the DAGs run it: preflight, steps, verify, freeze)."""

from __future__ import annotations

import psycopg

from ple.reorg import plan as plan_module
from tests.property import pgdata
from tests.reorg_helpers import approve, executor, run_phase


def chk_status(conn) -> None:
    """Production's CHECK chk_status on people.people_errors.status: the values the table holds
    and 'open' (the fill rule's fallback), nothing else."""
    allowed = sorted({r[0] for r in conn.execute("SELECT DISTINCT status FROM people.people_errors")} | {"open"})
    conn.execute(
        "ALTER TABLE people.people_errors ADD CONSTRAINT chk_status CHECK (status IN ("
        + ", ".join("'" + v.replace("'", "''") + "'" for v in allowed)
        + "))"
    )


SETTING_OF = {"1b": [chk_status]}


def moved_sources(phase_id: str) -> list[str]:
    """The tables whose rows the phase moves: merge sources and fold side tables."""
    phase = plan_module.load().phase(phase_id)
    return [a.source for s in phase.steps if s.kind in ("MERGE", "FOLD") for a in s.actions]


def write_source_rows(conn, data, phase_id: str) -> dict:
    """Insert and edit rows of every source of the phase (drawn with `data`); returns what was
    written (rows a source's own rules refused are left out)."""
    written = {}
    for name in moved_sources(phase_id):
        table = pgdata.read_table(conn, name)
        if table is None:
            continue
        inserted = [r for r in data.draw(pgdata.rows(table), label=f"insert {name}") if pgdata.insert(conn, table, r)]
        edited = [e for e in data.draw(pgdata.updates(table), label=f"edit {name}") if pgdata.update(conn, table, *e)]
        if inserted or edited:
            written[name] = {"inserted": inserted, "edited": edited}
    return written


def lint_and_plan(conn, phase_id: str) -> list[str]:
    """Every blocking finding lint and plan mode report for the phase (lint errors, BLOCKED
    steps). A crash of either propagates: it is a failure of its own."""
    ex = executor(conn, mode="plan")
    findings = [f"lint [{f.code}] {f.where}: {f.message}" for f in ex.lint([phase_id]).errors]
    for report in run_phase(ex, phase_id):
        findings += [f"plan: {line}" for line in report.text.splitlines() if "BLOCKED" in line]
    return findings


def apply_phase(conn, phase_id: str, ex=None, approve_first: bool = True) -> Exception | None:
    """Approve (unless approved already) and apply the phase; the exception it stopped on, or None."""
    if approve_first:
        approve(conn)
    try:
        reports = run_phase(ex or executor(conn), phase_id)
    except Exception as exc:
        return exc
    failed = [r for r in reports if r.status == "failed"]
    return AssertionError(f"steps failed: {failed}") if failed else None


# A killed fold's re-run refused by reconcile (test_a_fold_killed_after_adding_its_columns_resumes).
class KillAt(psycopg.Connection):
    """A connection whose `kill_at`-th execute() is preceded by pg_terminate_backend of its own
    backend from a second session (as a crash, a failover or an operator would end it)."""

    kill_at: int | None = None
    executed = 0

    def execute(self, query, params=None, **kwargs):
        self.executed += 1
        if self.kill_at is not None and self.executed == self.kill_at:
            with psycopg.connect(self.info.dsn, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s, 5000)", (self.info.backend_pid,))
        return super().execute(query, params, **kwargs)
