"""The console offline and behind auth, in a real browser on a real local Airflow: Data Docs
render styled, with their results list, and no request leaves 127.0.0.1; a logged-out browser
following a console link lands on the login page (and back on the page after logging in); a
refused trigger-form value is named; the forms' small defects of issue 21 stay fixed.

Screenshots of each page go to docs/screenshots/ (what the docs show) as well."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from ple import approval
from tests.browser.conftest import SCREENSHOTS
from tests.browser.pages import PLUGIN_ROUTES, open_trigger_form, shot, trigger_button
from tests.helpers import REPO

pytestmark = pytest.mark.slow

DOC_SCREENSHOTS = REPO / "docs" / "screenshots"
LOOPBACK = "127.0.0.1"


def doc_shot(browser, name: str) -> None:
    shot(browser, name)
    DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / f"{name}.png", DOC_SCREENSHOTS / f"{name}.png")


def requests_and_errors(browser) -> tuple[list[str], list[str]]:
    """Every URL the browser requested (DevTools performance log) and the console's errors,
    since the last call."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return urls, errors


def leaving(urls: list[str]) -> list[str]:
    """The requests to any host but 127.0.0.1 (data: and blob: URLs stay in the page)."""
    return [u for u in urls if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname != LOOPBACK]


def log_in(browser, airflow) -> None:
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(airflow.passwords()["admin"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda d: "/auth/login" not in d.current_url)


@pytest.fixture
def signed_in(browser, airflow):
    """The browser with a session (each test here can run alone)."""
    if not browser.get_cookie("_token"):
        browser.get(f"{airflow.url}/auth/login")
        log_in(browser, airflow)
    return browser


def set_field(browser, name: str, value: str) -> None:
    """Type into a trigger-form field as a person would (React sees the keystrokes)."""
    element = browser.find_element(By.NAME, f"element_{name}")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()
    element.send_keys(Keys.CONTROL + "a", Keys.DELETE)
    element.send_keys(value)


def test_logged_out_console_links_lead_to_the_login_page_and_back(browser, airflow):
    browser.delete_all_cookies()
    assert airflow.url.startswith(f"http://{LOOPBACK}:")
    for route in PLUGIN_ROUTES:
        browser.get(airflow.url + route)
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.NAME, "username"))
        assert "/auth/login" in browser.current_url, route
        assert "Not authenticated" not in browser.page_source, route
    browser.get(airflow.url + "/ple/reorganization")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.NAME, "username"))
    doc_shot(browser, "offline_01_logged_out_console_link")
    log_in(browser, airflow)
    WebDriverWait(browser, 30).until(lambda d: "/ple/reorganization" in d.current_url)
    WebDriverWait(browser, 30).until(lambda d: "signed in as admin" in d.page_source)


def test_data_docs_render_styled_with_their_results_and_no_request_leaves_the_machine(
    signed_in, browser, airflow, ctb_dsn, monkeypatch
):
    from ple import expectations
    from ple.db import sqlalchemy_url
    from ple.ui import data_docs

    monkeypatch.setattr(expectations, "GX_PROJECT_DIR", Path(os.environ["PLE_GX_DIR"]))  # the api-server's
    with psycopg.connect(ctb_dsn) as conn:
        url = sqlalchemy_url(conn)
        rows = conn.execute("SELECT count(*) FROM outreach.outreach").fetchone()[0]
    expectations.validate(url, [expectations.TableSuite("outreach.outreach", row_count=rows)], name="offline_ok")
    expectations.validate(url, [expectations.TableSuite("outreach.outreach", row_count=rows + 1)], name="offline_bad")

    requests_and_errors(browser)  # drain
    browser.get(f"{airflow.url}/ple/data-docs/index.html")
    table = "#validation-results-table-list tbody tr, table[data-toggle=table] tbody tr"
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "td a[href*=offline_]")) >= 2)
    time.sleep(1)
    rows_shown = [r.text for r in browser.find_elements(By.CSS_SELECTOR, table) if r.text.strip()]
    assert any("offline_ok" in r for r in rows_shown) and any("offline_bad" in r for r in rows_shown), rows_shown
    styled = browser.execute_script(
        "const nav = document.querySelector('nav.navbar');"
        "const icon = document.querySelector('.fa-check-circle, .fa-times');"
        "return [getComputedStyle(nav).display, getComputedStyle(icon, '::before').fontFamily,"
        " !!document.querySelector('.bootstrap-table'), document.querySelector('img[alt]').naturalWidth];"
    )
    assert styled[0] == "flex", styled  # Bootstrap's navbar: its CSS loaded
    assert "Font Awesome" in styled[1], styled  # the status icons draw
    assert styled[2], styled  # bootstrap-table ran and built the results list
    assert styled[3] > 0, styled  # the logo, from the site's own images
    doc_shot(browser, "offline_02_data_docs_index")
    site = expectations.data_docs_dir()
    failed_page = next((site / "validations" / "offline_bad").rglob("*.html")).relative_to(site)
    browser.get(f"{airflow.url}/ple/data-docs/{failed_page}")
    WebDriverWait(browser, 30).until(lambda d: "Failed" in d.page_source or "Unsuccessful" in d.page_source)
    time.sleep(1)
    doc_shot(browser, "offline_03_data_docs_validation")
    urls, errors = requests_and_errors(browser)
    assert any("/ple/data-docs/_vendor/bootstrap/bootstrap.min.css" in u for u in urls), urls
    assert leaving(urls) == [], leaving(urls)
    assert errors == [], errors  # a CSP refusal or a missing asset shows here

    token = browser.get_cookie("_token")["value"]
    for page in ("index.html", urlparse(browser.current_url).path.split("/ple/data-docs/", 1)[1]):
        served = urllib.request.urlopen(
            urllib.request.Request(f"{airflow.url}/ple/data-docs/{page}", headers={"Authorization": f"Bearer {token}"}),
            timeout=30,
        ).read()
        assert data_docs.EXTERNAL_REFERENCE.search(served.decode()) is None, page


def test_a_refused_form_value_names_its_field(signed_in, browser, airflow, admin_api):
    runs_before = admin_api.call("GET", "/dags/ctb_phase_1b/dagRuns")["total_entries"]
    dialog = open_trigger_form(browser, airflow.url, "ctb_phase_1b")
    assert "e.g. 500ms, 2s, 1min" in dialog.text  # the format, next to the field
    set_field(browser, "lock_timeout", "5 seconds")
    browser.execute_script("arguments[0].click();", trigger_button(dialog))
    WebDriverWait(browser, 30).until(lambda d: "Invalid input for param" in d.page_source)
    assert "Invalid input for param lock_timeout" in dialog.text
    browser.execute_script(
        "document.querySelector('[role=dialog] [role=alert], [role=dialog] .chakra-alert__root')?.scrollIntoView()"
    )
    doc_shot(browser, "offline_04_form_error_names_the_field")
    assert admin_api.call("GET", "/dags/ctb_phase_1b/dagRuns")["total_entries"] == runs_before  # refused: no run
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def test_approving_the_plan_from_the_form_records_the_signed_in_user(signed_in, browser, airflow, admin_api, ctb_dsn):
    dialog = open_trigger_form(browser, airflow.url, "ctb_approve_plan")
    assert not browser.find_elements(By.NAME, "element_approver")  # the field that refused every other name
    doc_shot(browser, "offline_05_approve_plan_form")
    browser.execute_script("arguments[0].click();", trigger_button(dialog))
    deadline = time.monotonic() + 60
    while not (runs := admin_api.call("GET", "/dags/ctb_approve_plan/dagRuns")["dag_runs"]):
        assert time.monotonic() < deadline, "the form created no run"
        time.sleep(1)
    assert admin_api.wait_for_run("ctb_approve_plan", runs[0]["dag_run_id"])["state"] == "success"
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        approvers = conn.execute("SELECT approver, approved_via FROM ple_ops.approval").fetchall()
        made = conn.execute(
            "SELECT approval_id FROM ple_ops.approval WHERE approved_via = 'airflow-form' AND revoked_at IS NULL"
        ).fetchall()
        for (approval_id,) in made:  # its approval would let the next test's apply run without asking
            approval.revoke(conn, approval_id, "test", "the form was tested, not meant to approve a run")
    assert ("admin", "airflow-form") in approvers


def test_the_revert_form_defaults_to_the_last_applied_phase(signed_in, browser, airflow):
    dialog = open_trigger_form(browser, airflow.url, "ctb_revert")
    assert "last applied" in dialog.text
    doc_shot(browser, "offline_06_revert_form")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def test_the_dol_page_prints_a_year_as_a_year(signed_in, browser, airflow, ctb_dsn):
    from ple import ops

    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        ops.ensure_schema(conn)
        conn.execute(
            "INSERT INTO ple_ops.dol_import (file_sha256, file_name, dataset, form_year, status, data_rows) "
            "VALUES ('offline-test', 'f_5500_2023_latest.csv', 'f_5500', 2023, 'imported', 1234)"
        )
    browser.get(f"{airflow.url}/ple/dol-imports")
    WebDriverWait(browser, 30).until(lambda d: "f_5500_2023_latest.csv" in d.page_source)
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "td")]
    assert "2023" in cells and "2,023" not in cells
    assert "1,234" in cells  # a quantity keeps its separator
    doc_shot(browser, "offline_07_dol_imports")
