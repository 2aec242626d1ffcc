"""A phase's approval request rehearses it first, and a rehearsal that is not clean is red: so a
rehearsal must never fail where apply succeeds. Every phase, in order, rehearsed on the state the
phases before it leave, then applied: each rehearsal is clean (1K's was red before: its verify took
the data file a key column rewrites for a changed table, as apply's verify does not)."""

import psycopg

from tests.reorg_helpers import approve, executor, run_phase


def test_every_phase_rehearses_clean_on_the_state_before_it_then_applies(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        approve(conn)
        applier = executor(conn, mode="apply")
        rehearser = executor(conn, mode="rehearse", rehearse_budget_seconds=10**6)
        for phase in applier.declared.phases:
            if not phase.steps:
                continue
            report = rehearser.preflight(phase.phase)
            assert report.status == "rehearsed", report.text
            run_phase(applier, phase.phase)
