"""`airflow dags test` as the suite runs it: Airflow's own command, started faster and polling faster.

1. **Its run loop polls faster.** `DAG.test()` drives a run without a scheduler: each round it
   updates the run's state, runs what is scheduled and, when nothing is, sleeps one second before
   looking again. Two things wait there: a Human-in-the-loop task waiting for its answer, and a
   failure propagating downstream, which marks one layer of tasks `upstream_failed` per round. A
   plan run of `ctb_reorganization` whose preflight fails (85 tasks in a chain) spent 80 seconds
   sleeping before it finished red. Here that one sleep lasts POLL_SECONDS; every other sleep in
   the process (the engine's backoff on lock timeouts, task retries) is Airflow's and the engine's.
2. **It parses only the DAG's own file**, as Airflow's DAG processor parses each file on its own:
   `dags test` fills its DagBag twice from the whole DAG folder and serializes every DAG both
   times, for the one it runs. Its DAG folder is a folder holding that one file (a link).
3. **It starts from a process that has Airflow imported** (`Server`): a command is a child forked
   from it (Airflow's LocalExecutor and DAG processor fork the same way), so a run does not pay
   for importing Airflow, its CLI, its execution API and Great Expectations again. The server
   imports nothing of `ple`: the engine reads its settings from the environment when imported,
   and each command runs in the environment of its request. A request whose Airflow settings differ from the
   server's runs as a new process instead.

As a command (like `python -m airflow`): `python tests/airflow_dags_test.py dags test <dag_id> ...`;
`python tests/airflow_dags_test.py serve` is the server, reading one JSON request per line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

POLL_SECONDS = 0.1  # the run loop's pause when nothing is scheduled (Airflow's: 1 second)
ONE_FILE_FOLDERS = "one_dag_file_folders"
COMMAND = [sys.executable, str(Path(__file__).resolve())]

_sleep = time.sleep


def _sleep_in_run_loop_briefly(seconds: float) -> None:
    import inspect

    from airflow.sdk.definitions.dag import DAG

    in_run_loop = sys._getframe(1).f_code is inspect.unwrap(DAG.test).__code__
    _sleep(min(seconds, POLL_SECONDS) if in_run_loop else seconds)


def dag_file(dags_folder: Path, dag_id: str) -> Path | None:
    """The file that defines `dag_id`: `<dag_id>.py`, or ctb_phases.py for the twelve phases."""
    path = dags_folder / ("ctb_phases.py" if dag_id.startswith("ctb_phase_1") else f"{dag_id}.py")
    return path if path.is_file() else None


def one_file_folder(dag_id: str) -> Path | None:
    """A folder under the Airflow home holding only the file that defines `dag_id` (a link)."""
    source = dag_file(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]), dag_id)
    if source is None:
        return None
    folder = Path(os.environ["AIRFLOW_HOME"]) / ONE_FILE_FOLDERS / source.stem
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / source.name
    if not link.exists():
        link.symlink_to(source.resolve())
    return folder


def airflow_main(argv: list[str]) -> int:
    """Airflow's command line on `argv` (after `airflow`), with the two changes above."""
    time.sleep = _sleep_in_run_loop_briefly  # DAG.test imports `time` inside the function: patch the module
    if argv[:2] == ["dags", "test"] and (folder := one_file_folder(argv[2])):
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    if "airflow.settings" in sys.modules:  # imported by the server: the DAG folder is read when imported
        sys.modules["airflow.settings"].configure_vars()
    from airflow.__main__ import main

    sys.argv = ["airflow", *argv]
    try:
        main()
    except SystemExit as exit_:
        if isinstance(exit_.code, int) or exit_.code is None:
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)  # as the interpreter does: `SystemExit("DagRun failed")`
        return 1
    return 0


def _settings(env: dict) -> dict:
    """What a process fixes when it imports Airflow: its home, its settings, its module path (not
    connections and variables, which Airflow reads from the environment when it looks them up)."""
    return {
        k: v
        for k, v in env.items()
        if (
            (k.startswith("AIRFLOW") and not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")))
            and k != "AIRFLOW__CORE__DAGS_FOLDER"
        )
        or k == "PYTHONPATH"
    }


def serve() -> None:
    replies = os.fdopen(os.dup(1), "w")  # the answers' own channel: what Airflow logs goes to stderr
    os.dup2(2, 1)
    import airflow.__main__  # noqa: F401  (what every command imports first: settings, ORM, logging)
    import great_expectations  # noqa: F401  (the DOL import's proof and the audit validate with it: 2-3 s)
    from airflow.api_fastapi.execution_api import app  # noqa: F401  (dag.test runs tasks against it)
    from airflow.cli.commands import dag_command  # noqa: F401
    from airflow.sdk.execution_time import supervisor, task_runner  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request)
        print(json.dumps({"pid": pid}), file=replies, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=replies, flush=True)


def _child(request: dict) -> None:
    """Run one command in this forked child, its output to the request's file; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: a kill reaches whatever it started
        output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.clear()
        os.environ.update(request["env"])
        code = airflow_main(request["argv"])
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Command:
    """One command started by `Server.start`: `wait` for its CompletedProcess (stdout and stderr
    merged, in a file while it runs: nobody has to read a pipe), or `kill` it."""

    def __init__(self, server: Server | None, argv: list[str], env: dict) -> None:
        self.argv, self.server, self.returncode = argv, server, None
        self.output = tempfile.NamedTemporaryFile("w+", suffix=".log")  # noqa: SIM115 - closed in wait
        if server is None:
            self.process = subprocess.Popen(
                [*COMMAND, *argv], env=env, stdout=self.output, stderr=subprocess.STDOUT, process_group=0
            )
            self.pid = self.process.pid
            return
        server.process.stdin.write(json.dumps({"argv": argv, "env": env, "output": self.output.name}) + "\n")
        server.process.stdin.flush()
        self.pid = server.reply()["pid"]

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        """The command's result once it ended; after `timeout` seconds it is killed (its result
        then has returncode -9). Whatever interrupts the wait (a test's own timeout) kills it too
        and still reads its end from the server, which stays ready for the next command."""
        timer = threading.Timer(timeout, self.kill) if timeout else None
        if timer:
            timer.start()
        try:
            returncode = self._ended()
        except BaseException:
            self.kill()
            self._ended()
            raise
        finally:
            if timer:
                timer.cancel()
        with self.output:
            self.output.seek(0)
            return subprocess.CompletedProcess(self.argv, returncode, self.output.read(), None)

    def _ended(self) -> int:
        if self.returncode is None:
            if self.server is None:
                self.returncode = self.process.wait()
            else:
                self.returncode = self.server.reply()["returncode"]
                self.server.pending = None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:  # not reaped yet: the pid is still this command's
            for kill in (os.killpg, os.kill):  # its group, and itself should it have left the group
                with contextlib.suppress(ProcessLookupError):
                    kill(self.pid, signal.SIGKILL)


class Server:
    """A running `serve` process for one Airflow home: `start` a command in a child of it; `run`
    is subprocess.run for one command. One command at a time."""

    def __init__(self, env: dict) -> None:
        self.settings = _settings(env)
        self.pending: Command | None = None  # the command whose end the server has yet to report
        with open(Path(env["AIRFLOW_HOME"]) / "dags_test_server.log", "a") as log:  # what its imports log
            self.process = subprocess.Popen(
                [*COMMAND, "serve"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )

    def start(self, argv: list[str], env: dict) -> Command:
        if self.pending is not None:  # a command its caller left without waiting for it
            self.pending.kill()
            self.pending.wait()
        usable = _settings(env) == self.settings and self.process.poll() is None
        command = Command(self if usable else None, argv, env)
        self.pending = command if usable else None
        return command

    def run(self, argv: list[str], env: dict, timeout: float | None = None) -> subprocess.CompletedProcess:
        return self.start(argv, env).wait(timeout)

    def reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the dags test server stopped (exit {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.pending is not None:
            self.pending.kill()
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit(airflow_main(sys.argv[1:]))
