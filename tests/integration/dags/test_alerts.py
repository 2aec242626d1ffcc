"""Alerts reach people: a local HTTP server stands in for the Slack webhook and a local SMTP
server (aiosmtpd) for the mail relay; the nightly audit runs through `airflow dags test`."""

import json
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from aiosmtpd.controller import Controller

from tests.helpers import dag_run_state, dags_test_server, free_port, run_dag

pytestmark = pytest.mark.slow
# No Required Action on a breach (it would wait for an answer): these tests are about the alerts.
NO_REQUEST = {"offer_baseline": False}


@pytest.fixture
def slack():
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/services/T0/B0/XYZ", received
    server.shutdown()


@pytest.fixture
def smtp():
    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, received
    controller.stop()


@pytest.fixture
def alerting(slack, smtp):
    url, _ = slack
    port, _ = smtp
    return {
        "AIRFLOW_CONN_PLE_SLACK_WEBHOOK": json.dumps({"conn_type": "slackwebhook", "password": url}),
        "AIRFLOW_CONN_PLE_SMTP": f"smtp://127.0.0.1:{port}/?disable_tls=true&disable_ssl=true",
        "AIRFLOW_VAR_PLE_ALERT_EMAIL_TO": "oncall@example.com",
        "AIRFLOW_VAR_PLE_ALERT_EMAIL_FROM": "airflow@example.com",
    }


def test_a_breached_threshold_sends_exactly_one_alert_naming_what_moved(airflow_env, fresh_db, alerting, slack, smtp):
    clean = run_dag(airflow_env, "ctb_nightly_audit", NO_REQUEST, fresh_db, alerting)
    assert dag_run_state(clean.stdout) == "success", clean.stdout[-3000:]
    assert slack[1] == [] and smtp[1] == []
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE outreach.outreach SET domain = '' WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 3)"
        )
    breached = run_dag(airflow_env, "ctb_nightly_audit", NO_REQUEST, fresh_db, alerting)
    assert dag_run_state(breached.stdout) == "failed"
    # check_thresholds once (no retries for a breach), then accept_baseline: nothing offered, the breach stands
    assert breached.stdout.count("Task failed with exception") == 2
    assert len(slack[1]) == 1
    text = slack[1][0]["text"]
    assert "FAILED: ctb_nightly_audit.check_thresholds" in text
    assert "null_domains_on_spine from 0 to 3" in text
    assert "try: 1" in text and "/dags/ctb_nightly_audit/runs/" in text
    assert len(smtp[1]) == 1
    recipients, mail = smtp[1][0]
    assert recipients == ["oncall@example.com"]
    assert mail["Subject"] == "[PLE] ctb_nightly_audit.check_thresholds failed"
    assert "null_domains_on_spine from 0 to 3" in mail.get_payload()[0].get_payload(decode=True).decode()


def test_a_transient_error_is_retried_and_alerts_nobody(airflow_env, fresh_db, alerting, slack, smtp):
    env = dict(airflow_env, AIRFLOW_CONN_CTB_POSTGRES=fresh_db, **alerting)
    with psycopg.connect(fresh_db) as blocker, psycopg.connect(fresh_db, autocommit=True) as watcher:
        blocker.execute(
            "LOCK TABLE outreach.outreach IN ACCESS EXCLUSIVE MODE"
        )  # the audit's first try times out on it
        run = dags_test_server(airflow_env).start(
            ["dags", "test", "ctb_nightly_audit", "-c", json.dumps({"lock_timeout": "300ms"})], env
        )
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'outreach.outreach'::regclass AND NOT granted"
        deadline = time.monotonic() + 300  # Airflow's start-up is slow on a loaded machine
        while not watcher.execute(waiting).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        while watcher.execute(waiting).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)  # the first try gave up on its lock timeout
        blocker.rollback()
        output = run.wait(timeout=300).stdout
    assert dag_run_state(output) == "success", output[-3000:]
    assert "LockNotAvailable" in output  # the first try failed ...
    assert "Task failed with exception" not in output.split("LockNotAvailable", 1)[1]  # ... the retry did not
    assert slack[1] == [] and smtp[1] == []


def test_a_missing_channel_logs_a_warning_and_never_breaks_the_alert(airflow_env, fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 2)"
        )
    run = run_dag(airflow_env, "ctb_nightly_audit", NO_REQUEST, fresh_db)
    assert dag_run_state(run.stdout) == "failed"
    assert "no connection ple_slack_webhook: Slack alert not sent" in run.stdout
    assert "alert sent to: nobody" in run.stdout
    assert "ThresholdBreached" in run.stdout
