"""A revert whose backend is terminated (pg_terminate_backend from a second session, as a crash,
a failover or an operator would end it) at every step boundary, and inside a step just before its
commit, converges when it is run again: no error on the re-run, every table back at its preflight
checksum, and no row lost by the independent row check (tests/rowcheck.py).

Phases with several step kinds: 1g (merge, folds, moves, reclassifications) and 1c (merge, moves).
"""

import pytest

from ple.reorg import revert as revert_module
from ple.reorg.actions import module_for
from ple.reorg.plan import load
from tests import rowcheck
from tests.reorg_helpers import (
    approve,
    approve_revert,
    assert_nothing_lost,
    connect,
    executor,
    phase_status,
    revert_until_done,
    run_phase,
    table_fingerprints,
    terminate_backend,
)


def _applied_and_revert_approved(dsn: str, phase_id: str) -> tuple[dict, dict, list[str], str]:
    """Apply the phase and approve its revert: (table fingerprints and rows before the phase, its
    step ids, the run id the reverts use)."""
    with connect(dsn) as conn:
        approve(conn)
        before = table_fingerprints(conn)
        rows_before = rowcheck.take(conn)
        ex = executor(conn)
        run_phase(ex, phase_id)
        approve_revert(conn, phase_id)
        return before, rows_before, [s.step_id for s in ex.plan.phase(phase_id).steps], ex.run_id


@pytest.mark.parametrize("phase_id", ["1g", "1c"])
def test_a_revert_terminated_at_every_step_boundary_converges(fresh_db, monkeypatch, phase_id):
    before, rows_before, steps, run_id = _applied_and_revert_approved(fresh_db, phase_id)

    real_step = revert_module._revert_step
    boundaries = ["start", *reversed(steps)]  # before the first step, then after each step's commit (last first)
    killed: list[str] = []
    state = {"pid": None}

    def arm(pid: int) -> bool:
        state["pid"] = pid
        return len(killed) < len(boundaries)

    def step_then_killed(ex_, step, fp):
        if "start" not in killed:
            killed.append("start")
            terminate_backend(fresh_db, state["pid"])
        outcome = real_step(ex_, step, fp)
        if step.step_id not in killed:
            killed.append(step.step_id)
            terminate_backend(fresh_db, state["pid"])
        return outcome

    monkeypatch.setattr(revert_module, "_revert_step", step_then_killed)
    reports, runs = revert_until_done(fresh_db, phase_id, run_id, arm)
    assert killed == boundaries
    assert runs == len(boundaries) + 1
    assert reports[-1].status == "reverted", reports[-1].text

    with connect(fresh_db) as conn:
        assert phase_status(fresh_db, phase_id) == "reverted"
        assert_nothing_lost(conn, before)  # every table at its preflight checksum
        assert rowcheck.missing(rows_before, conn) == []
        again = executor(conn, run_id=run_id).revert_phase(phase_id)  # once more: no error, nothing to do
        assert again[-1].status == "reverted"
        assert all(r.status == "already_done" for r in again[:-1]), [(r.step_id, r.status) for r in again]


def test_a_revert_terminated_inside_each_step_before_its_commit_converges(fresh_db, monkeypatch):
    """The backend dies after a step's revert ran but before its transaction commits: that step
    is rolled back whole by the server, and the next run undoes it."""
    phase_id = "1g"
    before, rows_before, steps, run_id = _applied_and_revert_approved(fresh_db, phase_id)

    killed: list[str] = []
    state = {"pid": None}
    modules = {module_for(s) for s in load().phase(phase_id).steps}
    originals = {m: m.revert for m in modules}

    def arm(pid: int) -> bool:
        state["pid"] = pid
        return len(killed) < len(steps)

    def killed_before_commit(module):
        def revert(ctx, step):
            outcome = originals[module](ctx, step)
            if outcome.status == "reverted" and step.step_id not in killed:
                killed.append(step.step_id)
                terminate_backend(fresh_db, state["pid"])
            return outcome

        return revert

    for module in modules:
        monkeypatch.setattr(module, "revert", killed_before_commit(module))
    reports, _runs = revert_until_done(fresh_db, phase_id, run_id, arm)
    assert sorted(killed) == sorted(steps)
    assert reports[-1].status == "reverted", reports[-1].text

    with connect(fresh_db) as conn:
        assert phase_status(fresh_db, phase_id) == "reverted"
        assert_nothing_lost(conn, before)
        assert rowcheck.missing(rows_before, conn) == []
