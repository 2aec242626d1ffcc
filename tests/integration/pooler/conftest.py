"""Neon's pooled endpoint, rebuilt locally: PgBouncer in transaction mode in front of the session's
server, and an ordinary role (LOGIN, no superuser, no CREATEDB, no CREATEROLE) that owns its
database and every object in it, the way a Neon user owns what it created.

The role builds its own copy of the fixture (connected directly, as itself), so it owns every
schema, table, sequence, view and function without any ownership hand-over; everything the tests
then run goes through PgBouncer with a password (SCRAM), never as a superuser.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.helpers import TEST_SCALE, free_port

POOLED_ROLE = "ple_pooled_user"
POOLED_PASSWORD = "pooled-secret"  # a throwaway role on a throwaway loopback server
POOLED_DB = "ple_pooled"


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not found:
        pytest.fail("pgbouncer is not installed: `apt-get install pgbouncer` (.ci/run installs it)")
    return found


@pytest.fixture(scope="session")
def pooled_role(pg_server):
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (POOLED_ROLE,)).fetchone():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(POOLED_ROLE), sql.Literal(POOLED_PASSWORD)
                )
            )
    return POOLED_ROLE


@pytest.fixture(scope="session")
def pooled_fixture(pg_server, pooled_role):
    """The fixture, built by the ordinary role into a database it owns; returns the direct DSN
    of a superuser (for the tests' own checks only)."""
    from ple_dev import embedded_pg
    from ple_dev.fixture.builder import build

    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(POOLED_DB)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(POOLED_DB), sql.Identifier(pooled_role))
        )
    as_role = f"postgresql://{pooled_role}@127.0.0.1:{pg_server.port}/{POOLED_DB}"
    with psycopg.connect(as_role, autocommit=True) as conn:
        build(conn, scale=TEST_SCALE, log=lambda _: None)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        # From here on the server logs every statement the role sends (the pooler tests read it to
        # prove that no prepared statement or session state is left on a pooled server connection).
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET log_min_duration_statement = 0").format(
                sql.Identifier(pooled_role), sql.Identifier(POOLED_DB)
            )
        )
    yield pg_server.dsn(POOLED_DB)
    embedded_pg.drop_database(pg_server, POOLED_DB)


@pytest.fixture(scope="session")
def pgbouncer(pg_server, pooled_role):
    """PgBouncer on loopback, pool_mode = transaction, SCRAM for clients; yields its port."""
    from ple_dev import embedded_pg

    workdir = Path(tempfile.mkdtemp(prefix="ple-test-pgbouncer-"))
    workdir.chmod(0o755)
    port = free_port()
    (workdir / "userlist.txt").write_text(f'"{POOLED_ROLE}" "{POOLED_PASSWORD}"\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={pg_server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {workdir / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    embedded_pg.hand_to_server_user(workdir)
    process = subprocess.Popen(
        embedded_pg.as_server_user([_pgbouncer(), str(workdir / "pgbouncer.ini")]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(
                f"postgresql://{POOLED_ROLE}:{POOLED_PASSWORD}@127.0.0.1:{port}/postgres", connect_timeout=2
            ):
                break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()
                log = workdir / "pgbouncer.log"
                pytest.fail(f"pgbouncer did not start: {log.read_text() if log.exists() else 'no log'}")
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pooled_dsn(pgbouncer, pooled_fixture):
    """The ordinary role's database, through PgBouncer: what `ctb_postgres` would name on Neon's
    pooled endpoint."""
    return f"postgresql://{POOLED_ROLE}:{POOLED_PASSWORD}@127.0.0.1:{pgbouncer}/{POOLED_DB}"
