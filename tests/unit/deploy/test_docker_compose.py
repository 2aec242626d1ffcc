"""docker-compose.yaml: the official Airflow 3 layout plus the PLE database.

No Docker engine runs here; `docker compose config` validates the file where the compose plugin
exists, and the structure is checked below everywhere.
"""

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

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


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], check=False, capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_accepts_the_file():
    subprocess.run(["docker", "compose", "config", "--quiet"], cwd=REPO, check=True)
