"""Approvals mean exactly what they show (issue 21), in a real browser on a real Airflow: the
operator rejects phase 1L, approves phase 1C; then 1B and 1L must each ask again, and nothing of
1L runs. Every request's Approve and Reject buttons are on screen without scrolling sideways
(measured), and the console lists every approval and rejection."""

from __future__ import annotations

import json
import time
import urllib.request

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ple.reorg import pending
from ple.reorg.plan import load
from tests.browser.pages import click_text, log_in, shot

pytestmark = pytest.mark.slow

MEASURE = """
const button = [...document.querySelectorAll('button')].find(
    b => b.textContent.trim() === arguments[0] && b.getClientRects().length);
if (!button) return null;
const r = button.getBoundingClientRect();
return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: window.innerWidth,
        height: window.innerHeight, scrollWidth: document.documentElement.scrollWidth};
"""


def _apply(api, dag_id: str) -> str:
    api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})  # the deployment creates DAGs paused
    run = api.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {"mode": "apply"}})
    return run["dag_run_id"]


def _answer_in_browser(
    browser, base: str, request: dict, title: str, option: str, buttons=("Approve", "Reject")
) -> dict:
    """Open exactly this request (the Required Actions link of its task instance, as the list
    links it: no other run's request can be answered by mistake), check its title, measure where
    its buttons are, answer it. Airflow shows more than four options as a list with one Respond
    button: the option is then chosen in the link (`_options`, as Airflow's own links preload it)."""
    ti = request["task_instance"]
    assert request["subject"].startswith(title), request["subject"]
    mapped = f"/mapped/{ti['map_index']}" if ti["map_index"] >= 0 else ""
    run = urllib.request.quote(ti["dag_run_id"], safe="")
    chosen = ""
    if len(buttons) > 4:
        chosen = "?_options=" + urllib.request.quote(json.dumps([option]), safe="")
        buttons, option = ("Respond",), "Respond"
    time.sleep(5)  # as a person would, not in the scheduler loop that saw the task park (see _answer_by_api)
    browser.get(f"{base}/dags/{ti['dag_id']}/runs/{run}/tasks/{ti['task_id']}{mapped}/required_actions{chosen}")
    WebDriverWait(browser, 120).until(lambda d: d.execute_script(MEASURE, buttons[0]))
    time.sleep(1)
    where = {name: browser.execute_script(MEASURE, name) for name in buttons}
    shot(browser, f"21_request_{title.split(':', maxsplit=1)[0].replace(' ', '_').lower()}")
    click_text(browser, "button", option)
    return where


def _on_screen(where: dict) -> None:
    for name, box in where.items():
        assert box is not None, name
        assert box["left"] >= 0 and box["right"] <= box["width"], (name, box)  # no sideways scroll to reach it
        assert box["scrollWidth"] <= box["width"], (name, box)


def _answer_by_api(api, request: dict, option: str) -> None:
    """As a person would, not within the scheduler loop that saw the task park: an answer in that
    instant makes Airflow 3.3's scheduler take the parked try's exit for a failure and start a
    second try that asks again (observed in this deployment; the human answer is seconds later)."""
    time.sleep(5)
    ti = request["task_instance"]
    api.call(
        "PATCH",
        f"/dags/{ti['dag_id']}/dagRuns/{urllib.request.quote(ti['dag_run_id'], safe='')}/taskInstances/"
        f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
        {"chosen_options": [option], "params_input": {}},
    )


def _recorded_then_stopped(api, dsn: str, dag_id: str, run_id: str) -> None:
    """Once the rejection is recorded, the run is marked failed: Airflow 3.3 was seen to start a
    second try of a gate whose rejection the retry policy had failed (the try asks again, so
    nothing runs), and this test is about what is asked and recorded, not about that retry."""
    scope = f"phase {dag_id.rsplit('_', 1)[1]}"
    deadline = time.monotonic() + 600
    while True:
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                "SELECT 1 FROM ple_ops.approval WHERE verdict = 'reject' AND scope = %s AND details ->> 'run_id' = %s",
                (scope, run_id),
            ).fetchone()
        if found:
            break
        assert time.monotonic() < deadline, f"the rejection of {run_id} was not recorded: {api.where(dag_id, run_id)}"
        # Airflow 3.3 under load: an answer that lands in the scheduler loop that parked the task
        # is lost and a second try asks again (see _answer_by_api); it gets the same answer
        quoted = urllib.request.quote(run_id, safe="")
        for request in api.call("GET", f"/dags/{dag_id}/dagRuns/{quoted}/hitlDetails?response_received=false")[
            "hitl_details"
        ]:
            if request["task_instance"]["state"] in ("awaiting_input", "deferred"):
                _answer_by_api(api, request, "Reject")
        time.sleep(2)
    run = api.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
    if run["state"] not in ("failed", "success"):
        api.call("PATCH", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}", {"state": "failed"})
    assert api.wait_for_run(dag_id, run_id, timeout=300)["state"] == "failed"


def _reject_by_api(api, request: dict) -> None:
    _answer_by_api(api, request, "Reject")


def _signed_in(browser, airflow) -> None:
    """Signed in by test_console.py's test_log_in when the package runs in order; alone, here."""
    browser.get(f"{airflow.url}/auth/login")
    if "/auth/login" in browser.current_url:
        log_in(browser, airflow)


def test_reject_1l_approve_1c_then_1b_and_1l_each_ask(browser, airflow, admin_api, ctb_dsn):
    _signed_in(browser, airflow)
    plan = load()
    first, *rest = pending.questions(plan)
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # 1L answered: one table archived, the rest kept
        pending.record(conn, plan, first.source, "archive", "admin", via="test")
        for action in rest:
            pending.record(conn, plan, action.source, "keep_pending", "admin", via="test")
        archived_before = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (first.source,)).fetchone()[0]

    run_1l = _apply(admin_api, "ctb_phase_1l")
    request = admin_api.wait_for_request("ctb_phase_1l")
    _on_screen(_answer_in_browser(browser, airflow.url, request, "Approve phase 1L", "Reject"))
    _recorded_then_stopped(admin_api, ctb_dsn, "ctb_phase_1l", run_1l)

    run_1c = _apply(admin_api, "ctb_phase_1c")
    request = admin_api.wait_for_request("ctb_phase_1c")
    assert request["subject"].startswith("Approve phase 1C")
    assert request["body"].startswith("**Approve exactly this: reorganization, phase 1c**")
    _on_screen(_answer_in_browser(browser, airflow.url, request, "Approve phase 1C", "Approve"))
    assert admin_api.wait_for_run("ctb_phase_1c", run_1c, timeout=400)["state"] == "success", admin_api.where(
        "ctb_phase_1c", run_1c
    )

    for dag_id in ("ctb_phase_1b", "ctb_phase_1l"):  # neither is covered by 1C's approval
        run_id = _apply(admin_api, dag_id)
        request = admin_api.wait_for_request(dag_id)
        assert request["task_instance"]["dag_run_id"] == run_id
        _reject_by_api(admin_api, request)
        _recorded_then_stopped(admin_api, ctb_dsn, dag_id, run_id)

    with psycopg.connect(ctb_dsn) as conn:
        recorded = conn.execute(
            "SELECT verdict, scope, approver FROM ple_ops.approval WHERE approved_via = 'airflow-hitl' "
            "AND approval_id > (SELECT coalesce(max(approval_id), 0) FROM ple_ops.approval WHERE scope = 'phase 1b' "
            "AND verdict = 'approve') ORDER BY approval_id"
        ).fetchall()
        used = conn.execute(
            "SELECT a.scope, u.run_id FROM ple_ops.approval_use u JOIN ple_ops.approval a USING (approval_id) "
            "WHERE a.scope = 'phase 1c'"
        ).fetchall()
        still_there = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (first.source,)).fetchone()[0]
    assert recorded == [
        ("reject", "phase 1l", "admin"),
        ("approve", "phase 1c", "admin"),
        ("reject", "phase 1b", "admin"),
        ("reject", "phase 1l", "admin"),
    ]
    assert used == [("phase 1c", run_1c)]
    assert still_there == archived_before  # nothing of 1L ran

    browser.get(airflow.url + "/ple/reorganization")
    WebDriverWait(browser, 30).until(lambda d: "Approvals" in d.page_source)
    approvals = browser.find_element(By.XPATH, "//h2[text()='Approvals']/following-sibling::table[1]").text
    assert approvals.count("reject") >= 3 and "reorganization: phase 1c" in approvals
    shot(browser, "22_console_approvals")


def test_the_whole_plan_request_fits_the_screen(browser, airflow, admin_api, ctb_dsn):
    from ple import approval

    _signed_in(browser, airflow)
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # an earlier test's approval would answer for it
        for (approval_id,) in conn.execute(
            "SELECT approval_id FROM ple_ops.approval WHERE verdict = 'approve' AND revoked_at IS NULL"
        ).fetchall():
            approval.revoke(conn, approval_id, "test", "this test is about the request the plan raises")
    run_id = _apply(admin_api, "ctb_reorganization")
    request = admin_api.wait_for_request("ctb_reorganization", timeout=900)
    assert "the whole plan (every phase)" in request["body"].splitlines()[0]
    _on_screen(_answer_in_browser(browser, airflow.url, request, "Approve the whole CTB reorganization", "Reject"))
    assert admin_api.wait_for_run("ctb_reorganization", run_id)["state"] == "failed"


def test_a_decision_made_in_the_ui_changes_the_plan_and_voids_the_earlier_approval(
    browser, airflow, admin_api, ctb_dsn
):
    _signed_in(browser, airflow)
    from ple import approval
    from ple.reorg import decisions
    from tests.reconcile_helpers import stale_hand_copy

    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # a hand copy where 1D's archive goes
        stale_hand_copy(conn, "outreach.dol_audit_log", "archive.outreach_dol_audit_log_ctb")
        before = decisions.for_connection(conn)
        earlier = approval.approve(conn, decisions.fingerprint(load(), before), "admin", standing=True)
    run_id = _apply(admin_api, "ctb_decide")
    ours, deadline = "Decide: outreach.dol_audit_log", time.monotonic() + 600
    while admin_api.call("GET", f"/dags/ctb_decide/dagRuns/{urllib.request.quote(run_id, safe='')}")["state"] not in (
        "success",
        "failed",
    ):
        assert time.monotonic() < deadline, "ctb_decide did not finish"
        waiting = admin_api.call("GET", "/dags/ctb_decide/dagRuns/~/hitlDetails?response_received=false")
        for request in waiting["hitl_details"]:
            if request["task_instance"]["state"] not in ("awaiting_input", "deferred"):
                continue  # not parked yet: an answer now would never resume it
            if request["subject"] == ours:  # the question this test is about, answered in the browser
                options = (decisions.ACCEPT, decisions.SKIP, decisions.LATER)
                _on_screen(_answer_in_browser(browser, airflow.url, request, ours, decisions.ACCEPT, options))
            else:  # any other open question of this database: left undecided
                _answer_by_api(admin_api, request, decisions.LATER)
        time.sleep(2)
    assert admin_api.wait_for_run("ctb_decide", run_id)["state"] == "success"
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        now = decisions.for_connection(conn)
        (latest, *_) = decisions.history(conn)
        still = approval.current(conn, decisions.fingerprint(load(), now), "a-new-run")
    assert now.version == latest["version"] and latest["answers"]["outreach.dol_audit_log"]["by"] == "admin"
    assert now.for_action("outreach.dol_audit_log").get("set_aside")  # the plan as decided sets the copy aside
    assert still is None or still["approval_id"] != earlier  # the approval of the earlier decisions is void


def _stop_after_answer(api, dag_id: str, run_id: str) -> None:
    """The answer is given; the run is marked failed once it is no longer waiting (this test is
    about where the buttons are, not about the retry policy after a rejection)."""
    time.sleep(10)
    run = api.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
    if run["state"] not in ("failed", "success"):
        api.call("PATCH", f"/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}", {"state": "failed"})


def test_the_revert_cleanup_and_contract_requests_fit_the_screen(browser, airflow, admin_api, ctb_dsn):
    """The other requests the bundle raises, measured like the phase's: a revert, the 2C cleanup,
    the contract of compatibility views (each rejected: nothing changes)."""
    from tests.reorg_helpers import approve, executor, run_phase

    _signed_in(browser, airflow)
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # 1A applied: something to revert, old names
        approve(conn)
        run_phase(executor(conn), "1a")
        conn.execute("UPDATE ple_ops.compat_object SET grace = interval '0', created_at = now() - interval '1 day'")
    asked = (
        ("ctb_revert", {"mode": "apply", "phase": "1a"}, "Approve reverting a phase"),
        ("ctb_phase_2c_data_quality", {"mode": "apply"}, "Approve the Phase 2C cleanup steps shown"),
        ("ctb_contract", {"mode": "apply"}, "Approve removing (or restoring) compatibility objects"),
    )
    for dag_id, conf, title in asked:
        admin_api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        run_id = admin_api.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]
        request = admin_api.wait_for_request(dag_id)
        assert request["task_instance"]["dag_run_id"] == run_id
        _on_screen(_answer_in_browser(browser, airflow.url, request, title, "Reject"))
        _stop_after_answer(admin_api, dag_id, run_id)


def test_the_audit_baseline_request_fits_the_screen(browser, airflow, admin_api, ctb_dsn):
    """The last request the bundle can raise: a breached nightly audit asks whether its numbers
    become the new baseline. Measured like the others, and answered "Keep the baseline" (nothing
    is accepted: the run stays failed)."""
    from ple.audit import history
    from ple.orchestration.audit_dags import ACCEPT, KEEP
    from tests.integration.audit.defects import duplicate_domains

    _signed_in(browser, airflow)
    audit, strict = "ctb_nightly_audit", {"regression_margin_pct": 0, "regression_margin_rows": 0}
    admin_api.call("PATCH", f"/dags/{audit}", {"is_paused": False})
    first = admin_api.call(
        "POST", f"/dags/{audit}/dagRuns", {"logical_date": None, "conf": {**strict, "offer_baseline": False}}
    )["dag_run_id"]
    # Until it ends, any request of another run is answered: the unpause may start the latest
    # night's run (under load, only after this run was posted), and `first` would queue behind its
    # unanswered question.
    _settle(admin_api, audit, KEEP)
    admin_api.wait_for_run(audit, first, timeout=60)  # green or red (earlier tests' state): its numbers are recorded
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        history.accept(conn, "admin", first, note="the baseline this browser test breaches")
        duplicate_domains(conn, 3)
    run_id = admin_api.call("POST", f"/dags/{audit}/dagRuns", {"logical_date": None, "conf": strict})["dag_run_id"]
    request = _request_of(admin_api, audit, run_id)
    where = _answer_in_browser(browser, airflow.url, request, "The nightly audit breached", KEEP, (ACCEPT, KEEP))
    _on_screen(where)
    assert admin_api.wait_for_run(audit, run_id, timeout=300)["state"] == "failed"  # the breach stands
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        assert history.baseline(conn).run_id == first


def _settle(api, dag_id: str, option: str, timeout: float = 900) -> None:
    """No run of the DAG left running: any it asks is answered `option` through the API."""
    deadline = time.monotonic() + timeout
    while True:
        runs = api.call("GET", f"/dags/{dag_id}/dagRuns?state=queued&state=running")["dag_runs"]
        if not runs:
            return
        assert time.monotonic() < deadline, f"{dag_id} runs did not finish: {runs}"
        for request in api.call("GET", f"/dags/{dag_id}/dagRuns/~/hitlDetails?response_received=false")["hitl_details"]:
            if request["task_instance"]["state"] in ("awaiting_input", "deferred"):
                _answer_by_api(api, request, option)
        time.sleep(3)


def _request_of(api, dag_id: str, run_id: str, timeout: float = 900) -> dict:
    """The parked request of exactly this run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        quoted = urllib.request.quote(run_id, safe="")
        for request in api.call("GET", f"/dags/{dag_id}/dagRuns/{quoted}/hitlDetails?response_received=false")[
            "hitl_details"
        ]:
            if request["task_instance"]["state"] in ("awaiting_input", "deferred"):
                return request
        run = api.call("GET", f"/dags/{dag_id}/dagRuns/{quoted}")
        assert run["state"] not in ("success", "failed"), f"{run_id} ended {run['state']} without asking"
        time.sleep(2)
    raise TimeoutError(f"{run_id} asked nothing within {timeout}s")


def test_the_1l_questions_fit_the_screen(browser, airflow, admin_api, ctb_dsn):
    """Phase 1L's own questions (one request per pending table, its candidate answers as buttons),
    asked again with `redecide`: the first answered in the browser with every option measured, the
    others through the API, all "keep_pending"; then the phase's approval is rejected (nothing runs)."""
    from ple import approval, ops

    _signed_in(browser, airflow)
    plan = load()
    questions = {f"Phase 1L: {q.question} ({q.source})": q for q in pending.questions(plan)}
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:  # an earlier approval would let 1L run unasked
        ops.ensure_schema(conn)
        for (approval_id,) in conn.execute(
            "SELECT approval_id FROM ple_ops.approval WHERE verdict = 'approve' AND revoked_at IS NULL"
        ).fetchall():
            approval.revoke(conn, approval_id, "test", "this test is about the questions 1L asks")
    admin_api.call("PATCH", "/dags/ctb_phase_1l", {"is_paused": False})
    run_id = admin_api.call(
        "POST", "/dags/ctb_phase_1l/dagRuns", {"logical_date": None, "conf": {"mode": "apply", "redecide": True}}
    )["dag_run_id"]
    measured, answered = None, set()
    while True:
        request = _request_of(admin_api, "ctb_phase_1l", run_id)
        subject = request["subject"]
        if subject.startswith("Approve phase 1L"):
            _reject_by_api(admin_api, request)
            break
        assert subject in questions and subject not in answered, subject
        if measured is None:
            options = tuple(pending.choices(plan, questions[subject]))
            measured = _answer_in_browser(browser, airflow.url, request, subject, pending.KEEP_PENDING, options)
        else:
            _answer_by_api(admin_api, request, pending.KEEP_PENDING)
        answered.add(subject)
        time.sleep(5)  # the answered request is no longer parked before the next one is looked for
    _on_screen(measured)
    assert answered == set(questions)
    _stop_after_answer(admin_api, "ctb_phase_1l", run_id)
    with psycopg.connect(ctb_dsn, autocommit=True) as conn:
        answers = {q.source: pending.history(conn, q.source)[-1].answer for q in questions.values()}
    assert set(answers.values()) == {pending.KEEP_PENDING}
