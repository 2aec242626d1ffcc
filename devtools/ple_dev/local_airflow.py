"""`make airflow`: a real local Airflow on this bundle, as a deployment runs it.

api-server, scheduler, dag-processor and triggerer as separate processes, LocalExecutor, the
metadata database on the embedded PostgreSQL (database `airflow`, beside `ple`), the simple auth
manager with an admin and a viewer, and one JWT secret shared by every process (each would
otherwise generate its own, and the api-server would reject the tasks' tokens). Everything lives
under one AIRFLOW_HOME: pid files, logs, the generated passwords. `stop` ends exactly the
processes `start` recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ple import config
from ple_dev import embedded_pg

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_USERS = "admin:admin,viewer:viewer"
FIXTURE_SCALE = float(os.environ.get("SCALE", "0.01"))


@dataclass(frozen=True)
class Deployment:
    home: Path
    host: str
    port: int
    pg: embedded_pg.EmbeddedServer
    ctb_dsn: str | None = None  # the target database; default: AIRFLOW_CONN_CTB_POSTGRES, else embedded `ple`

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def passwords(self) -> dict[str, str]:
        return json.loads(self.passwords_file.read_text())

    def environment(self) -> dict[str, str]:
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        repo = config.REPO_ROOT
        return {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": os.environ.get("PLE_AIRFLOW_USERS", DEFAULT_USERS),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.dsn("airflow").replace(
                "postgresql://", "postgresql+psycopg2://"
            ),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW_CONN_CTB_POSTGRES": self.ctb_dsn
            or os.environ.get("AIRFLOW_CONN_CTB_POSTGRES", self.pg.dsn(config.EMBEDDED_PG_DATABASE)),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(repo / "plugins"), os.environ.get("PYTHONPATH")])),
            "GX_ANALYTICS_ENABLED": "False",
        }


def deployment(home: Path | None = None, port: int | None = None) -> Deployment:
    home = Path(home or os.environ.get("PLE_AIRFLOW_HOME", config.REPO_ROOT / ".airflow-local")).resolve()
    port = int(port or os.environ.get("PLE_AIRFLOW_PORT", "8086"))
    pg = embedded_pg.EmbeddedServer(config.EMBEDDED_PG_DIR.resolve(), config.EMBEDDED_PG_PORT)
    return Deployment(home, os.environ.get("PLE_AIRFLOW_HOST", "127.0.0.1"), port, pg)


def start(dep: Deployment, timeout: float = 240) -> Deployment:
    """Start every component (those already running are left alone); returns once the api-server
    answers and the scheduler, dag-processor and triggerer have registered as running jobs."""
    dep.home.mkdir(parents=True, exist_ok=True)
    embedded_pg.start(dep.pg.data_dir, dep.pg.port)
    embedded_pg.ensure_database(dep.pg, config.EMBEDDED_PG_DATABASE)
    embedded_pg.ensure_database(dep.pg, "airflow")
    env = dep.environment()
    _fixture_if_empty(env["AIRFLOW_CONN_CTB_POSTGRES"])
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    if migrate.returncode:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
    for component in COMPONENTS:
        if _running(dep, component):
            continue
        log = open(dep.home / f"{component}.log", "ab")  # noqa: SIM115 - handed to the child process
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", component],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        (dep.home / f"{component}.pid").write_text(str(process.pid))
    _wait_healthy(dep, timeout)
    return dep


def _fixture_if_empty(dsn: str) -> None:
    """A fresh clone's embedded database gets the PLE fixture, so the DAGs have work to show; a
    database that holds anything PLE already (or any other database) is never touched."""
    import psycopg

    from ple_dev.fixture.builder import build

    with psycopg.connect(dsn, autocommit=True) as conn:
        local = conn.info.host in ("127.0.0.1", "localhost") and conn.info.dbname == config.EMBEDDED_PG_DATABASE
        if local and conn.execute("SELECT to_regnamespace('outreach') IS NULL").fetchone()[0]:
            build(conn, scale=FIXTURE_SCALE, log=lambda _: None)


def stop(dep: Deployment) -> list[str]:
    """End the process group of every component this module started (by its recorded pid)."""
    stopped = []
    for component in COMPONENTS:
        pid_file = dep.home / f"{component}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(component)
        pid_file.unlink()
    return stopped


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap our own child: a zombie still answers kill 0
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(dep: Deployment, component: str) -> bool:
    pid_file = dep.home / f"{component}.pid"
    return pid_file.exists() and _alive(int(pid_file.read_text()))


def _wait_healthy(dep: Deployment, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for component in COMPONENTS:
            if not _running(dep, component):
                tail = (dep.home / f"{component}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {component} exited:\n{tail}")
        try:
            with urllib.request.urlopen(f"{dep.url}/api/v2/monitor/health", timeout=5) as response:
                health = json.loads(response.read())
            states = {name: part.get("status") for name, part in health.items() if isinstance(part, dict)}
            if states and all(state == "healthy" for state in states.values()):
                return
            last = json.dumps(states)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(2)
    raise RuntimeError(f"Airflow at {dep.url} was not healthy within {timeout:.0f}s: {last}")


def describe(dep: Deployment) -> str:
    users = ", ".join(f"{user} / {password}" for user, password in dep.passwords().items())
    return (
        f"Airflow UI: {dep.url}  (users: {users})\n"
        f"console: {dep.url}/ple/reorganization  · logs and pids: {dep.home}\n"
        "stop it with: make airflow-stop"
    )
