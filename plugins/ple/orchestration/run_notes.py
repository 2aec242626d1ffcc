"""A note on every run of a DAG that can change data, saying its mode, so plan runs, applies and
reverts read differently in the grid (their run ids all look like `manual__<timestamp>`).

A task cannot write its own DAG run's note (the Task Execution API has no such call); a listener
can: it runs where the run starts (the scheduler, or `airflow dags test`), beside the metadata
database, and the note is committed with the run's state change. A note someone already wrote
is kept.
"""

from __future__ import annotations

from airflow.listeners import hookimpl

# What each mode means, for the note; a DAG has a mode when its trigger form has a `mode` Param.
MEANING = {
    "plan": "writes nothing: lint, the exact SQL and live counts",
    "rehearse": "runs on a scratch copy, never on the live tables",
    "apply": "changes data once approved",
    "revert": "undoes an applied phase once approved",
}


def note_for(dag_run) -> str | None:
    dag = getattr(dag_run, "dag", None)
    params = getattr(dag, "params", None) or {}
    if "mode" not in params:
        return None
    mode = (dag_run.conf or {}).get("mode") or params.get_param("mode").value
    return f"mode: {mode} ({MEANING.get(mode, 'see the DAG docs')})"


@hookimpl
def on_dag_run_running(dag_run, msg: str):
    if dag_run.note:
        return
    note = note_for(dag_run)
    if note:
        dag_run.note = note
