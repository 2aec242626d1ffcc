"""The reorganization through a transaction-mode pooler, as an ordinary role (Neon's pooled
endpoint): lint, approve, apply phases 1A and 1B, prove no row was lost, and a second apply that
changes nothing. Every command is the real CLI in its own process, as an operator would run it."""

from __future__ import annotations

import re

import psycopg
import pytest

from ple.reorg import plan as plan_module
from tests import rowcheck
from tests.integration.pooler.cli import cli, ok
from tests.integration.pooler.conftest import POOLED_ROLE
from tests.reorg_helpers import end_state

PHASES = ("1a", "1b")


def _run_phases(dsn: str) -> str:
    return ok(cli(dsn, "run", *(arg for p in PHASES for arg in ("--phase", p)), "--mode", "apply"))


@pytest.fixture(scope="module")
def first_apply(pg_server, pooled_dsn, pooled_fixture):
    """Lint, approve and apply 1A+1B through the pooler; the row check is taken just before, and
    the statements the role sent are read back from the server's log."""
    with psycopg.connect(pooled_fixture, autocommit=True) as direct:
        rows_before = rowcheck.take(direct)
    server_log = pg_server.data_dir / "server.log"
    log_offset = server_log.stat().st_size
    lint_output = ok(cli(pooled_dsn, "lint", *(arg for p in PHASES for arg in ("--phase", p))))
    ok(cli(pooled_dsn, "approve", "--approver", "pooler-test", "--standing"))  # the second apply too
    run_output = _run_phases(pooled_dsn)
    with server_log.open(errors="replace") as log:
        log.seek(log_offset)
        statements = [line.split("ms  ", 1)[1] for line in log if "LOG:  duration: " in line and "ms  " in line]
    return {"rows_before": rows_before, "lint": lint_output, "run": run_output, "statements": statements}


def test_clients_share_server_backends_as_an_ordinary_role(pooled_dsn):
    """The setting the tests rely on: two clients, one after the other, are served by the same
    server backend (transaction pooling), and the role is no superuser."""
    with psycopg.connect(pooled_dsn, autocommit=True) as first, psycopg.connect(pooled_dsn, autocommit=True) as second:
        role, superuser, first_pid = first.execute(
            "SELECT current_user, current_setting('is_superuser'), pg_backend_pid()"
        ).fetchone()
        second_pid = second.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert (role, superuser) == (POOLED_ROLE, "off")
    assert first_pid == second_pid


def test_lint_approve_and_apply_through_the_pooler(first_apply, pooled_fixture):
    plan = plan_module.load()
    archives = [s.action.target for p in PHASES for s in plan.phase(p).steps if s.kind == "ARCHIVE"]
    assert archives
    with psycopg.connect(pooled_fixture, autocommit=True) as direct:
        for name in archives:
            owner = direct.execute(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)", (name,)
            ).fetchone()
            assert owner == (POOLED_ROLE,), f"{name} missing or not owned by the role"
        outcomes = dict(
            direct.execute(
                "SELECT outcome, count(*) FROM ple_ops.action_ledger WHERE phase = ANY(%s) GROUP BY outcome",
                (list(PHASES),),
            ).fetchall()
        )
        assert outcomes.get("applied", 0) >= len(archives)
        assert "failed" not in outcomes
        frozen = direct.execute(
            "SELECT count(*) FROM ple_ops.phase_status WHERE phase = ANY(%s) AND status = 'frozen'", (list(PHASES),)
        ).fetchone()[0]
        assert frozen == len(PHASES)
        assert rowcheck.missing(first_apply["rows_before"], direct) == []


def test_nothing_the_engine_sends_needs_a_session(first_apply):
    """What breaks behind a transaction-mode pooler, looked for in every statement the role sent
    (the server's own log): named prepared statements (another client's transaction may get the
    server connection that holds them, or a later transaction another one), session-level SET and
    session-level advisory locks (they stay on the server connection for whoever gets it next)."""
    statements = first_apply["statements"]
    texts = [re.sub(r"^(statement|(parse|bind|execute) [^:]+): ", "", s) for s in statements]
    assert sum(s.startswith("execute <unnamed>: ") for s in statements) > 100  # the log really holds the run
    prepared = [s for s in statements if re.match(r"(parse|bind|execute) (?!<unnamed>)", s)]
    session_settings = [
        t
        for t in texts
        if re.match(r"(SET|RESET)\b(?!\s+(LOCAL|TRANSACTION|CONSTRAINTS)\b)", t, re.I)
        or re.search(r"set_config\([^)]*,\s*false\s*\)", t, re.I)
    ]
    session_locks = [t for t in texts if re.search(r"pg_(try_)?advisory_lock(_shared)?\(", t)]
    assert prepared == [], prepared[:5]
    assert session_settings == [], session_settings[:5]
    assert session_locks == [], session_locks[:5]
    # 1B's merges build their provenance index CONCURRENTLY: one autocommit statement, fine here
    assert any(re.match(r"CREATE UNIQUE INDEX CONCURRENTLY", t) for t in texts)


def test_a_second_apply_through_the_pooler_changes_nothing(first_apply, pooled_dsn, pooled_fixture):
    with psycopg.connect(pooled_fixture, autocommit=True) as direct:
        state = end_state(direct)
        last_attempt = direct.execute("SELECT max(attempt_id) FROM ple_ops.action_ledger").fetchone()[0]
    _run_phases(pooled_dsn)
    with psycopg.connect(pooled_fixture, autocommit=True) as direct:
        assert end_state(direct) == state
        # every action step found its work done; preflight, verify and freeze record each run
        outcomes = {
            outcome
            for (outcome,) in direct.execute(
                "SELECT DISTINCT outcome FROM ple_ops.action_ledger WHERE attempt_id > %s "
                "AND split_part(step_id, '__', 2) NOT IN ('preflight', 'verify', 'freeze')",
                (last_attempt,),
            ).fetchall()
        }
    assert outcomes == {"already_done"}
