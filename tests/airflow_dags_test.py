"""`airflow dags test` as the suite runs it: Airflow's own command, with its run loop polling faster.

`DAG.test()` drives a run without a scheduler: each round it updates the run's state, runs what is
scheduled and, when nothing is, sleeps one second before looking again. Two things wait there:
a Human-in-the-loop task waiting for its answer, and a failure propagating downstream, which
marks one layer of tasks `upstream_failed` per round. A plan run of `ctb_reorganization` whose
preflight fails (85 tasks in a chain) spent 80 seconds sleeping before it finished red.

Here that one sleep lasts POLL_SECONDS instead; every other sleep in the process (the engine's
backoff on lock timeouts, task retries, HTTP retries) is Airflow's and the engine's own.

And the command parses only the DAG file that defines the DAG, as Airflow's DAG processor parses
each file on its own: `dags test` fills its DagBag twice from the whole DAG folder and serializes
every DAG both times (four seconds a run), for the one it runs. The DAG folder it is given is a
folder holding that one file (ONE_FILE_FOLDERS under the Airflow home).

Usage, as `python -m airflow`: `python tests/airflow_dags_test.py dags test <dag_id> [-c <conf>]`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.1  # the run loop's pause when nothing is scheduled (Airflow's: 1 second)

_sleep = time.sleep


def _sleep_in_run_loop_briefly(seconds: float) -> None:
    import inspect

    from airflow.sdk.definitions.dag import DAG

    in_run_loop = sys._getframe(1).f_code is inspect.unwrap(DAG.test).__code__
    _sleep(min(seconds, POLL_SECONDS) if in_run_loop else seconds)


ONE_FILE_FOLDERS = "one_dag_file_folders"


def dag_file(dags_folder: Path, dag_id: str) -> Path | None:
    """The file that defines `dag_id`: `<dag_id>.py`, or ctb_phases.py for the twelve phases."""
    path = dags_folder / ("ctb_phases.py" if dag_id.startswith("ctb_phase_1") else f"{dag_id}.py")
    return path if path.is_file() else None


def one_file_folder(dag_id: str) -> Path | None:
    """A folder under the Airflow home holding only the file that defines `dag_id` (a link)."""
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    source = dag_file(dags_folder, dag_id)
    if source is None:
        return None
    folder = Path(os.environ["AIRFLOW_HOME"]) / ONE_FILE_FOLDERS / source.stem
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / source.name
    if not link.exists():
        link.symlink_to(source.resolve())
    return folder


if __name__ == "__main__":
    time.sleep = _sleep_in_run_loop_briefly  # DAG.test imports `time` inside the function: patch the module
    if sys.argv[1:3] == ["dags", "test"] and (folder := one_file_folder(sys.argv[3])):
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    from airflow.__main__ import main

    sys.argv[0] = "airflow"
    sys.exit(main())
