"""The suite's `airflow dags test` server (tests/airflow_dags_test.py): a command killed on its
timeout ends with -9, a command left without waiting is killed before the next one, and the
server answers the next command in step; a command whose Airflow settings differ from the
server's runs as a process of its own, with the same result."""

import pytest

from tests.airflow_dags_test import Server

pytestmark = pytest.mark.timeout(300)

# `airflow triggerer` runs until it is stopped: a command that never ends on its own.
FOREVER = ["triggerer", "--capacity", "1"]


@pytest.fixture
def server(airflow_env):
    server = Server(airflow_env)
    yield server
    server.close()


def test_a_timed_out_command_is_killed_and_the_next_one_answered(server, airflow_env):
    assert server.run(FOREVER, airflow_env, timeout=3).returncode == -9
    server.start(FOREVER, airflow_env)  # left running: the next start kills it first
    version = server.run(["version"], airflow_env)
    assert version.returncode == 0 and version.stdout.strip()[0].isdigit(), version.stdout[-2000:]
    missing = server.run(["dags", "test", "no_such_dag"], airflow_env)
    assert missing.returncode == 1 and "Dag 'no_such_dag' could not be found" in missing.stdout


def test_other_airflow_settings_run_as_a_process_of_their_own(server, airflow_env):
    other = dict(airflow_env, AIRFLOW__CORE__DEFAULT_TIMEZONE="Europe/Paris")
    command = server.start(["config", "get-value", "core", "default_timezone"], other)
    assert command.server is None  # not forked from the server, whose settings differ
    assert command.wait(timeout=120).stdout.strip().splitlines()[-1] == "Europe/Paris"
