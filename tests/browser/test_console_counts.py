"""The console's phase counts in a real browser equal its reconcile table's (issue 21: "not
started" above conflicts, "nothing yet" above a 53-row table): read from the rendered page,
counted per phase from the reconcile rows, compared cell by cell. Screenshots to docs/."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ple.audit import history
from ple.audit.numbers import compute
from tests.browser.pages import log_in
from tests.helpers import REPO

pytestmark = pytest.mark.slow

DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"

READ_TABLES = """
const tables = [...document.querySelectorAll('table')];
const headers = t => [...t.querySelectorAll('thead th')].map(th => th.textContent.trim());
const rows = t => [...t.querySelectorAll('tbody tr')].map(tr => [...tr.children].map(td => td.textContent.trim()));
const phases = tables.find(t => headers(t).includes('undecided'));
const reconcile = tables.find(t => headers(t).join('|').startsWith('phase|step|action|source|state'));
return {phases: [headers(phases), rows(phases)], reconcile: [headers(reconcile), rows(reconcile)],
        right: document.documentElement.scrollWidth};
"""


def test_the_phase_counts_in_the_browser_equal_the_reconcile_tables(browser, airflow, ctb_dsn):
    browser.get(f"{airflow.url}/auth/login")  # signed in by test_console.py's test_log_in when run with it
    if "/auth/login" in browser.current_url:
        log_in(browser, airflow)
    browser.get(airflow.url + "/ple/reorganization")
    WebDriverWait(browser, 60).until(lambda d: "Reconcile:" in d.page_source)
    seen = browser.execute_script(READ_TABLES)
    (phase_headers, phase_rows), (rec_headers, rec_rows) = seen["phases"], seen["reconcile"]
    expected: dict[str, Counter] = {}
    for row in rec_rows:
        record = dict(zip(rec_headers, row, strict=True))
        counts = expected.setdefault(record["phase"], Counter())
        counts[record["state"]] += 1
        counts["undecided"] += record["decision"] == "UNDECIDED"
    assert expected, "the reconcile table is empty"
    for row in phase_rows:
        record = dict(zip(phase_headers, row, strict=True))
        want = expected.get(record["phase"], Counter())
        for state in ("pending", "conflict", "moot", "applied", "adopted"):
            assert int(record[state]) == want[state], (record, want)
        if record["phase"] != "1L":  # 1L's questions are counted as undecided until answered
            assert int(record["undecided"]) == want["undecided"], (record, want)
        assert "/" not in record["state"], record  # no ratios
        if want["conflict"] or want["undecided"]:
            assert "not started" not in record["state"], record
    assert "nothing yet" not in browser.page_source
    time.sleep(1)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(DOCS_SCREENSHOTS / "06_console_reorganization.png"))
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # a baseline, then a breach of it
        history.record(conn, "browser_baseline", compute(conn), 0.2)
        history.judge(conn, "browser_baseline", 1.0, 0)
        conn.execute(
            "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 2)"
        )
        history.record(conn, "browser_breach", compute(conn), 0.2)
        history.judge(conn, "browser_breach", 1.0, 0)
    browser.get(airflow.url + "/ple/data-quality")
    WebDriverWait(browser, 60).until(lambda d: "Accepted baseline" in d.page_source)
    assert "Latest run browser_breach: breached" in browser.find_element(By.TAG_NAME, "main").text
    time.sleep(1)
    browser.save_screenshot(str(DOCS_SCREENSHOTS / "07_console_data_quality.png"))
