"""The operator's job from the browser, on a real local Airflow: log in, every trigger form
submits with its defaults, a phase runs in plan mode from its form, its apply is approved in
Required Actions by the logged-in user, and the console pages show the result, with no console
error and no request leaving the machine."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from ple.audit import history
from ple.audit.numbers import compute
from tests.browser.pages import PLUGIN_ROUTES, click_text, log_in, open_trigger_form, problems, shot, trigger_button

pytestmark = pytest.mark.slow


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_unauthenticated_requests_to_every_plugin_route_get_401_or_the_login_page(airflow):
    """An API client gets the 401; a browser's navigation (Accept: text/html) is sent to the
    login page, with the page as `next` (tests/browser/test_offline.py follows it)."""
    opener = urllib.request.build_opener(_NoRedirect)
    for route in PLUGIN_ROUTES:
        for accept in ("application/json", "*/*"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(urllib.request.Request(airflow.url + route, headers={"Accept": accept}), timeout=30)
            assert refused.value.code == 401, (route, accept)
        browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        with pytest.raises(urllib.error.HTTPError) as redirected:
            opener.open(urllib.request.Request(airflow.url + route, headers={"Accept": browser_accept}), timeout=30)
        assert redirected.value.code == 303, route
        location = redirected.value.headers["Location"]
        assert location.startswith("/auth/login?next=") and urllib.parse.quote(route, safe="") in location, location


def test_log_in(browser, airflow):
    log_in(browser, airflow)
    assert browser.get_cookie("_token")


def test_every_trigger_form_submits_with_its_defaults(browser, airflow, admin_api):
    """Through the REST API for every DAG (the server validates the conf against the Params);
    in the browser for a form whose empty options used to keep Trigger disabled."""
    dag_ids = [d["dag_id"] for d in admin_api.call("GET", "/dags?limit=100")["dags"]]
    assert len(dag_ids) >= 17
    for dag_id in dag_ids:  # the DAGs are paused: the runs wait, and are deleted right away
        run = admin_api.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}})
        admin_api.call("DELETE", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}")
    dialog = open_trigger_form(browser, airflow.url, "dol_staging_import")
    trigger = trigger_button(dialog)
    shot(browser, "02_trigger_form_defaults")
    assert trigger.is_enabled()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def test_plan_from_the_form_then_approve_the_apply_in_required_actions(browser, airflow, admin_api, ctb_dsn):
    dialog = open_trigger_form(browser, airflow.url, "ctb_phase_1b")
    shot(browser, "03_trigger_plan")
    browser.execute_script("arguments[0].click();", trigger_button(dialog))
    deadline = time.monotonic() + 60
    while not (runs := admin_api.call("GET", "/dags/ctb_phase_1b/dagRuns")["dag_runs"]):
        assert time.monotonic() < deadline, "the form created no run"
        time.sleep(1)
    planned = admin_api.wait_for_run("ctb_phase_1b", runs[0]["dag_run_id"])
    assert planned["state"] == "success"
    assert planned["conf"].get("mode", "plan") == "plan"
    assert planned["note"].startswith("mode: plan")

    applying = admin_api.call("POST", "/dags/ctb_phase_1b/dagRuns", {"logical_date": None, "conf": {"mode": "apply"}})
    request = admin_api.wait_for_request("ctb_phase_1b")
    assert "| code |" in request["body"] and "-- live:" in request["body"]
    time.sleep(5)  # a person answers seconds later; an answer in the scheduler loop that parked it is re-asked
    browser.get(f"{airflow.url}/required_actions")
    click_text(browser, "a", "Approve phase 1B", timeout=60)
    WebDriverWait(browser, 30).until(lambda d: "Approve exactly this" in d.page_source)
    shot(browser, "04_required_action")
    click_text(browser, "button", "Approve")
    applied = admin_api.wait_for_run("ctb_phase_1b", applying["dag_run_id"])
    assert applied["state"] == "success"
    assert applied["note"].startswith("mode: apply")
    with psycopg.connect(ctb_dsn) as conn:
        approvals = conn.execute("SELECT approver, approved_via FROM ple_ops.approval").fetchall()
    assert approvals == [("admin", "airflow-hitl")]
    browser.get(f"{airflow.url}/dags/ctb_phase_1b")
    shot(browser, "05_phase_runs")


def test_console_pages(browser, airflow, ctb_dsn):
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        history.record(conn, "browser_audit_1", compute(conn), 0.2)
        conn.execute(
            "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 2)"
        )
        history.record(conn, "browser_audit_2", compute(conn), 0.2)
    problems(browser, airflow.url)  # drain what Airflow's own pages logged
    pages = {
        "06_console_reorganization": ("/ple/reorganization", "1b__merge__"),
        "07_console_data_quality": ("/ple/data-quality", "null_domains_on_spine"),
        "08_console_dol_imports": ("/ple/dol-imports", "DOL imports"),
        "09_console_in_airflow_ui": ("/plugin/ctb-reorganization", None),
        "12_console_compatibility": ("/ple/compatibility", "What is measured"),
    }
    for name, (route, text) in pages.items():
        browser.get(airflow.url + route)
        if text:
            WebDriverWait(browser, 30).until(lambda d, text=text: text in d.page_source)
        else:
            WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))
            time.sleep(3)
        shot(browser, name)
        errors, outside = problems(browser, airflow.url)
        assert errors == [], (route, errors)
        assert outside == [], (route, outside)
    browser.get(airflow.url + "/ple/reorganization")
    assert "admin" in browser.page_source  # the approver, and who is signed in
    browser.get(airflow.url + "/ple/data-docs/index.html")
    WebDriverWait(browser, 30).until(lambda d: "Data Docs" in d.page_source)  # served through the checked route
    shot(browser, "10_data_docs")
    _errors, outside = problems(browser, airflow.url)  # served with vendored assets (test_offline.py)
    assert outside == []
