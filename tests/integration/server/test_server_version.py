"""The server-version check against the real server of the session, and its place in front of
every write: preflight and the lint refuse before touching the database."""

import os
import subprocess
import sys

import pytest

from ple import server
from tests.helpers import REPO
from tests.reorg_helpers import approve, end_state, executor


def test_the_session_server_is_supported_and_its_major_is_reported(conn):
    version_num = int(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0])
    assert server.require_supported_server(conn) == version_num // 10000


def test_preflight_refuses_an_unsupported_server_before_any_write(conn, monkeypatch):
    approve(conn)
    state = end_state(conn)
    # The session's server stands in for one newer than the range: the range moves, not the server.
    monkeypatch.setattr(server, "NEWEST_SUPPORTED_MAJOR", conn.info.server_version // 10000 - 1)
    with pytest.raises(server.UnsupportedServer, match="this bundle supports PostgreSQL 14 to"):
        executor(conn).preflight("1a")
    assert end_state(conn) == state
    assert conn.execute("SELECT to_regnamespace('archive') IS NULL").fetchone()[0]


def test_the_lint_command_runs_the_check(fresh_db):
    # fresh_db points ctb_postgres at the clone; the child process moves the range above the server.
    code = "import ple.server as s; s.OLDEST_SUPPORTED_MAJOR = 99; from ple.cli import main; raise SystemExit(main(['lint']))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "this bundle supports PostgreSQL 99 to 18" in result.stdout + result.stderr
