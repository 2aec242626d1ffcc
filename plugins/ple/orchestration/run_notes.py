"""A note on every run of a DAG that can change data, saying its mode, so plan runs, applies and
reverts read differently in the grid (their run ids all look like `manual__<timestamp>`).

A task cannot write its own DAG run's note (the Task Execution API has no such call); a listener
can: it runs where the run's state changes (the scheduler, or `airflow dags test`), beside the
metadata database, and the note is committed with the run's state change. A note someone already
wrote is kept.

The scheduler announces a run when it starts it (`on_dag_run_running`), with the run attached to
its session. `airflow dags test` (`DAG.test`) creates its run already running and never announces
the start; it announces the end (`on_dag_run_success` / `_failed`), with a run object its task
loop has detached from the session (each task closes the thread's scoped session). So the note is
written at whichever comes first, the start or the end: a scheduled run is noted from its start
on its own session; a `dags test` run when it finishes, on the thread's scoped session (the one
`DAG.test` itself uses, so no second connection waits on its locks). Its task logs name the mode
from the start.
"""

from __future__ import annotations

from airflow.listeners import hookimpl

# What each mode means, for the note; a DAG has a mode when its trigger form has a `mode` Param.
MEANING = {
    "plan": "writes nothing: lint, the exact SQL and live counts",
    "rehearse": "carries the phase out and rolls it all back: writes nothing",
    "apply": "changes data once approved",
    "revert": "undoes an applied phase once approved",
}
# DAGs whose `apply` undoes a phase: their applies are reverts.
REVERTING = {"ctb_revert"}


def note_for(dag_run) -> str | None:
    dag = getattr(dag_run, "dag", None)
    params = getattr(dag, "params", None) or {}
    if "mode" not in params:
        return None
    conf = dag_run.conf or {}
    mode = conf.get("mode") or params.get_param("mode").value
    if mode == "apply" and getattr(dag_run, "dag_id", None) in REVERTING:
        mode = "revert"
    phase = conf.get("phase") or (params.get_param("phase").value if "phase" in params else None)
    target = f" of phase {phase}" if phase and mode == "revert" else ""
    meaning = MEANING.get(mode, "see the DAG docs")
    if mode == "rehearse":
        meaning += "; " + _rehearsed_where(conf, params)
    return f"mode: {mode}{target} ({meaning})"


def _rehearsed_where(conf: dict, params) -> str:
    """Where a rehearsal runs (reorg/rehearse.py): on the copy `rehearse_conn_id` names, else on
    the target itself, in one transaction that holds the phase's locks for up to its budget."""

    def value(name: str):
        return conf.get(name) if name in conf else (params.get_param(name).value if name in params else None)

    copy = value("rehearse_conn_id")
    if copy:
        return f"on connection {copy} (a copy of the target, unless it reaches the same database)"
    budget = value("rehearse_budget_seconds")
    return (
        "on the live target itself: its one transaction can hold exclusive locks on the phase's tables "
        f"for up to {budget:g} s (rehearse_budget_seconds) before it rolls back"
    )


def note(dag_run) -> None:
    """Write the mode note unless the run has a note already."""
    from sqlalchemy import inspect

    state = inspect(dag_run, raiseerr=False)
    if state is not None and state.detached:
        _note_detached(dag_run)
        return
    if dag_run.note:
        return
    text = note_for(dag_run)
    if text:
        dag_run.note = text


def _note_detached(dag_run) -> None:
    """`DAG.test`'s run: note the row itself, through the thread's scoped session."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    text = note_for(dag_run)
    if not text:
        return
    with create_session() as session:
        row = session.get(DagRun, dag_run.id)
        if row is not None and not row.note:
            row.note = text


@hookimpl
def on_dag_run_running(dag_run, msg: str):
    note(dag_run)


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    note(dag_run)
