"""Parse the DAG folder the way the dag-processor does, with every road to a database blocked.

Run as a script (a fresh interpreter, so nothing imported earlier hides a parse-time query);
prints one JSON document describing the DAGs and the import errors.
"""

import json
import socket
import sys

TOUCHED: list[str] = []


def _forbid(what):
    def guard(*args, **kwargs):
        TOUCHED.append(what)
        raise RuntimeError(f"parse-time access: {what}")

    return guard


def _param(param) -> dict:
    """The Param's schema with its default (absent when it has none) and its description."""
    from airflow.sdk.definitions._internal.types import is_arg_set

    described = {"description": param.description} if param.description else {}
    return param.schema | described | ({"default": param.value} if is_arg_set(param.value) else {})


def main(dag_folder: str) -> None:
    import psycopg

    socket.socket.connect = _forbid("socket.connect")
    socket.create_connection = _forbid("socket.create_connection")
    psycopg.connect = _forbid("psycopg.connect")
    psycopg.Connection.connect = classmethod(_forbid("psycopg.Connection.connect"))

    from airflow.sdk import BaseHook, Connection, Variable

    BaseHook.get_connection = classmethod(_forbid("BaseHook.get_connection"))
    Connection.get = classmethod(_forbid("Connection.get"))
    Variable.get = staticmethod(_forbid("Variable.get"))

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dag_folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "fileloc": dag.fileloc,
            "doc_md": dag.doc_md or "",
            "tags": sorted(dag.tags),
            "schedule": str(dag.timetable),
            "params": {k: _param(bag.dags[dag_id].params.get_param(k)) for k in dag.params},
            "tasks": {
                t.task_id: {"owner": t.owner, "retries": t.retries, "has_failure_callback": bool(t.on_failure_callback)}
                for t in dag.tasks
            },
        }
    print(json.dumps({"dags": dags, "import_errors": bag.import_errors, "touched": TOUCHED}, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
