"""Airflow's own REST API, in-process (FastAPI TestClient), against the metadata database of an
`airflow dags test` running beside it: how tests answer Required Actions as a logged-in user.

Run as a script in the Airflow environment (a fresh interpreter reads that environment's
configuration): `python tests/airflow_api.py answer DAG_ID '[["ada", "admin", "Approve"], ...]'`
waits for the DAG's pending request, sends each answer as that user, and prints one JSON line
per answer with the HTTP status and body.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

# Every worker's Airflow home has these (tests/conftest.py airflow_env): the users and the JWT
# secret these tests sign in with.
USERS = "ada:admin,viewer:viewer"
JWT_SECRET = "ple-tests-only-jwt-secret-0123456789abcdef"


def run_responding(airflow_env: dict, dsn: str, dag_id: str, conf: dict, command: str, answers: list[list[str]]):
    """`airflow dags test DAG_ID -c CONF` while this script, in another process sharing the
    metadata database, answers its Human-in-the-loop requests (`command`: `answer`, every answer to
    the first request, or `answer-each`, one answer per request as they appear): returns (the run's
    output, the JSON lines the responder printed)."""
    from tests.helpers import dags_test_server  # this module is also a script, run outside the tests package

    run_env = dict(airflow_env, AIRFLOW_CONN_CTB_POSTGRES=dsn)
    run = dags_test_server(airflow_env).start(["dags", "test", dag_id, "-c", json.dumps(conf)], run_env)
    try:
        responder = subprocess.run(
            [sys.executable, str(Path(__file__)), command, dag_id, json.dumps(answers)],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=1000,
            check=False,
        )
    except BaseException:
        run.kill()
        run.wait()  # the server reports the killed run: it is ready for the next one
        raise
    if responder.returncode:
        run.kill()  # a request nobody answered would keep the run waiting
    output = run.wait(timeout=1200).stdout
    assert responder.returncode == 0, responder.stderr[-3000:]
    return output, [json.loads(line) for line in responder.stdout.splitlines() if line.startswith("{")]


def run_answered(airflow_env: dict, dsn: str, dag_id: str, conf: dict, answers: list[list[str]]):
    """run_responding with every answer given to the run's first request: (the run's output, the
    request as the API showed it, one {"user", "status", "body"} per answer)."""
    output, lines = run_responding(airflow_env, dsn, dag_id, conf, "answer", answers)
    return output, lines[0]["request"], lines[1:]


def run_note(airflow_env: dict, dag_id: str, output: str) -> str | None:
    """The note of the run an `airflow dags test` output reports, read through the REST API."""
    run_id = re.findall(r"run_id=([^,\s]+)", output)[-1]
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            "fetch",
            json.dumps(["ada", "admin"]),
            json.dumps([f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"]),
        ],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    (answer,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])["note"]


def client():
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app(apps="core"))


def token(username: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


def pending(api, dag_id: str, headers: dict, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(
            f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails", params={"response_received": False}, headers=headers
        )
        response.raise_for_status()
        # Parked only: a response recorded while the task is still running (it writes the request
        # just before it parks) is stored but never resumes it, and the run waits forever.
        details = [
            d for d in response.json()["hitl_details"] if d["task_instance"]["state"] in ("awaiting_input", "deferred")
        ]
        if details:
            return details[0]
        time.sleep(0.5)
    raise TimeoutError(f"no pending Human-in-the-loop request of {dag_id} within {timeout}s")


def answer(dag_id: str, answers: list[list[str]]) -> None:
    api = client()
    first = answers[-1]
    detail = pending(api, dag_id, {"Authorization": f"Bearer {token(first[0], first[1])}"})
    ti = detail["task_instance"]
    print(json.dumps({"request": {"subject": detail["subject"], "body": detail["body"], "task_id": ti["task_id"]}}))
    path = (
        f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
    )
    for username, role, option in answers:
        response = api.patch(
            path,
            json={"chosen_options": [option], "params_input": {}},
            headers={"Authorization": f"Bearer {token(username, role)}"},
        )
        print(json.dumps({"user": username, "status": response.status_code, "body": response.json()}), flush=True)


def answer_each(dag_id: str, answers: list[list[str]]) -> None:
    """Answer the DAG's requests one after another as they appear (one answer each, in order),
    printing each request and each response as JSON lines."""
    api = client()
    for username, role, option in answers:
        headers = {"Authorization": f"Bearer {token(username, role)}"}
        detail = pending(api, dag_id, headers)
        ti = detail["task_instance"]
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/{ti['map_index']}"
            "/hitlDetails"
        )
        response = api.patch(path, json={"chosen_options": [option], "params_input": {}}, headers=headers)
        print(
            json.dumps(
                {
                    "task_id": ti["task_id"],
                    "options": detail["options"],
                    "body": detail["body"],
                    "status": response.status_code,
                    "response": response.json(),
                }
            ),
            flush=True,
        )


def fetch(user: list[str] | None, paths: list[str]) -> None:
    """GET each path of the whole api-server app (plugins included), as `user` or anonymous."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    api = TestClient(create_app())
    headers = {"Authorization": f"Bearer {token(*user)}"} if user else {}
    for path in paths:
        response = api.get(path, headers=headers)
        print(json.dumps({"path": path, "status": response.status_code, "body": response.text}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "answer":
        answer(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == "answer-each":
        answer_each(sys.argv[2], json.loads(sys.argv[3]))
    elif sys.argv[1] == "routes":
        from ple.ui.app import app

        print(json.dumps(sorted(route.path for route in app.routes)))
    elif sys.argv[1] == "fetch":
        fetch(json.loads(sys.argv[2]), json.loads(sys.argv[3]))
