"""What the browser tests do on Airflow's pages: screenshots, clicks by text, the trigger form,
signing in, and what a page did that it should not (console errors, requests leaving the machine)."""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import SCREENSHOTS

PLUGIN_ROUTES = ["/ple/", "/ple/reorganization", "/ple/data-quality", "/ple/dol-imports", "/ple/data-docs/index.html"]


def shot(browser, name: str) -> None:
    time.sleep(1)  # let the page settle (charts, fonts)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def problems(browser, base: str) -> tuple[list[str], list[str]]:
    """Console errors and requests to anywhere but this Airflow, since the last call."""
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    outside = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if urlparse(url).scheme in ("http", "https", "ws", "wss") and not url.startswith(base):
                outside.append(url)
    return errors, outside


def click_text(browser, selector: str, text: str, timeout: float = 30):
    def find(driver):
        return next(
            (e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.text.strip().startswith(text)), False
        )

    element = WebDriverWait(browser, timeout).until(find)
    element.click()
    return element


FIND_TRIGGER_FORM = """
for (const dialog of document.querySelectorAll('[role=dialog]')) {
  for (const button of dialog.querySelectorAll('button')) {
    if (button.textContent.trim() === 'Trigger' && button.getClientRects().length) return dialog;
  }
}
return null;
"""


def trigger_button(dialog):
    """The form's own Trigger button (by its text content: it may be below the fold)."""
    buttons = dialog.find_elements(By.CSS_SELECTOR, "button")
    return next((b for b in buttons if (b.get_attribute("textContent") or "").strip() == "Trigger"), None)


def open_trigger_form(browser, base: str, dag_id: str):
    """The DAG page's Trigger button opens the form once the page has loaded the DAG: click it
    (again every few seconds) until the form shows."""
    browser.get(f"{base}/dags/{dag_id}")
    deadline = time.monotonic() + 120
    clicked = 0.0
    while time.monotonic() < deadline:
        dialog = browser.execute_script(FIND_TRIGGER_FORM)
        if dialog:
            return dialog
        if time.monotonic() - clicked > 5:
            browser.execute_script("document.querySelector('[data-testid=trigger-dag-button]')?.click()")
            clicked = time.monotonic()
        time.sleep(0.5)
    shot(browser, f"failed_trigger_form_{dag_id}")
    raise TimeoutError(f"the trigger form of {dag_id} did not open")


def log_in(browser, airflow) -> None:
    browser.get(f"{airflow.url}/auth/login")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(airflow.passwords()["admin"])
    shot(browser, "01_login")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda d: "/auth/login" not in d.current_url)
