"""Browser tests: headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
`make browser-deps`) driven by selenium against one real local Airflow (`ple_dev.local_airflow`, what
`make airflow` starts) for the browser tests, on a copy of the fixture database.

Screenshots go to artifacts/screenshots/ (kept by CI as test artifacts)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO, clone_fixture, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
)

pytestmark = pytest.mark.slow


def pytest_collection_modifyitems(items):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        skip = pytest.mark.skip(reason=f"{', '.join(missing)} missing: run `make browser-deps`")
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


class Api:
    """Airflow's REST API of the running deployment, as one user."""

    def __init__(self, base: str, username: str, password: str):
        self.base = base
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = json.loads(response.read())["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def wait_for_request(self, dag_id: str, timeout: float = 400) -> dict:
        """The first pending Required Action of the DAG, once its task has asked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = self.call("GET", f"/dags/{dag_id}/dagRuns/~/hitlDetails?response_received=false")["hitl_details"]
            # Parked only: a response recorded while the task still runs (it writes the request just
            # before it parks) is stored but never resumes it, and the run waits forever.
            parked = [d for d in pending if d["task_instance"]["state"] in ("awaiting_input", "deferred")]
            if parked:
                return parked[0]
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} asked nothing within {timeout}s")

    def wait_for_run(self, dag_id: str, run_id: str, states=("success", "failed"), timeout: float = 400) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
            if run["state"] in states:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} {run_id} not in {states} after {timeout}s: {self.where(dag_id, run_id)}")

    def where(self, dag_id: str, run_id: str) -> str:
        """Each task's state and try, and every request of the run with its answer: what a
        timed-out wait needs to say in CI's output."""
        run = urllib.request.quote(run_id, safe="")
        tasks = self.call("GET", f"/dags/{dag_id}/dagRuns/{run}/taskInstances")["task_instances"]
        asked = self.call("GET", f"/dags/{dag_id}/dagRuns/{run}/hitlDetails")["hitl_details"]
        return "; ".join(
            [f"{t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']}" for t in tasks]
            + [
                f"asked {d['task_instance']['task_id']} (try {d['task_instance']['try_number']}): "
                f"answered {d.get('response_received')} {d.get('chosen_options')}"
                for d in asked
            ]
        )


@pytest.fixture(scope="package")
def ctb_dsn(pg_server, fixture_template):
    return clone_fixture(pg_server, "ple_browser")


@pytest.fixture(scope="package")
def airflow(pg_server, ctb_dsn, tmp_path_factory):
    """One local Airflow for every browser test (starting it costs about a minute), stopped after
    them: its scheduler and dag-processor would take CPU from the rest of the session."""
    from ple_dev import local_airflow

    home = tmp_path_factory.mktemp("airflow_local")
    deployment = local_airflow.Deployment(home, "127.0.0.1", free_port(), pg_server, ctb_dsn)
    settings = {
        "PLE_GX_DATA_DOCS": "true",  # as deployed: Data Docs on
        "PLE_GX_DIR": str(home / "gx"),
        # The DAG files do not change while the tests run: each is parsed once, not again every 30 s
        # (Airflow's default), which took CPU from the runs the tests wait for.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        # A rejected or failed run of ctb_reorganization ends when `upstream_failed` has reached its
        # last task, one layer of its chain per scheduler loop; an idle loop sleeps 1 s (the
        # default), 85 seconds for the whole plan. The tests wait for that end.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        local_airflow.start(deployment)
        yield deployment
    finally:
        local_airflow.stop(deployment)
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


@pytest.fixture(scope="package")
def admin_api(airflow):
    return Api(airflow.url, "admin", airflow.passwords()["admin"])


@pytest.fixture(scope="package")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ple-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.page_load_strategy = "eager"  # the pages are React apps: wait for elements, not every request
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)  # explicit waits only: an implicit one slows every find_elements probe
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
