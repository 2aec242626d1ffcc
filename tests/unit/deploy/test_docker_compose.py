"""docker-compose.yaml: the official Airflow 3 layout plus the PLE database.

No Docker engine runs here; `docker compose config` validates the file where the compose plugin
exists, and the structure is checked below everywhere.
"""

import os
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_official_airflow_3_services_and_the_ple_database():
    assert {
        "postgres",
        "ple-db",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-init",
    } <= set(COMPOSE["services"])


def test_bundle_mounted_examples_off_fernet_from_env():
    scheduler = COMPOSE["services"]["airflow-scheduler"]
    mounts = {v.split(":")[1] for v in scheduler["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
    env = scheduler["environment"]
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY")
    assert "ple-db" in env["AIRFLOW_CONN_CTB_POSTGRES"]


def test_the_four_blockers_of_issue_12_are_fixed():
    common = COMPOSE["x-airflow-common"]["environment"]
    init = COMPOSE["services"]["airflow-init"]["environment"]
    # 1. the FAB-style user creation needs a password and exits 1; the simple auth manager has none
    assert "_AIRFLOW_WWW_USER_CREATE" not in init
    # 2. one JWT secret (and API secret key) for every container, from .env, required
    assert common["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
    assert common["AIRFLOW__API__SECRET_KEY"].startswith("${AIRFLOW_API_SECRET_KEY:?")
    # 3. `python -m ple.cli` and the tasks import the engine package
    assert common["PYTHONPATH"] == "/opt/airflow/plugins"
    # 4. the option Airflow 3.3 reads, with an admin and a viewer; passwords on a mounted path
    assert "AIRFLOW__SIMPLE_AUTH_MANAGER__USERS" not in common
    assert {
        u.split(":")[1]
        for u in common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(":-", 1)[1].rstrip("}").split(",")
    } == {"admin", "viewer"}
    assert common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/config/")
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert (
            COMPOSE["services"][name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
            == common["AIRFLOW__API_AUTH__JWT_SECRET"]
        )


def test_celery_profile_scales_out_with_redis_a_worker_and_flower():
    services = COMPOSE["services"]
    for name in ("redis", "airflow-worker", "flower"):
        assert services[name]["profiles"] == ["celery"], name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["flower"]["command"] == "celery flower"
    assert services["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert all("profiles" not in services[n] for n in ("postgres", "ple-db", "airflow-apiserver", "airflow-scheduler"))


def test_env_example_lists_every_required_variable():
    example = (REPO / ".env.example").read_text()
    for variable in (
        "AIRFLOW_FERNET_KEY=",
        "AIRFLOW_JWT_SECRET=",
        "AIRFLOW_API_SECRET_KEY=",
        "AIRFLOW_USERS=",
        "AIRFLOW_EXECUTOR=",
    ):
        assert variable in example


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], check=False, capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_accepts_the_file():
    env = {**os.environ, "AIRFLOW_JWT_SECRET": "x" * 32, "AIRFLOW_API_SECRET_KEY": "y" * 32}
    for profile in ([], ["--profile", "celery"]):
        subprocess.run(["docker", "compose", *profile, "config", "--quiet"], cwd=REPO, check=True, env=env)
