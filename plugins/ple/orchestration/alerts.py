"""Alerts that reach people: Slack (incoming webhook) and email (SMTP), through the providers'
notifiers.

Attached to every task through `default_args` (`on_failure_callback`), so they fire once, when a
task has failed for good: not on `up_for_retry`, and not three times for one problem (errors a
retry cannot fix fail at once, see ple.errors). Channels are configured by connections and
Variables (ple.config); a missing one logs a warning and never breaks the task.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from ple import config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    subject: str
    text: str


def variable(name: str) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(name, default=None)
    except Exception as exc:  # the alert must never fail the task it reports on
        log.warning("cannot read Variable %s: %s", name, exc)
        return None


def _has_connection(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
        return True
    except Exception:
        return False


def failure_message(context) -> Message:
    ti = context.get("ti")
    exception = context.get("exception")
    dag_id, task_id = getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?")
    lines = [
        f"FAILED: {dag_id}.{task_id}",
        f"run: {context.get('run_id') or getattr(ti, 'run_id', '?')}",
        f"try: {getattr(ti, 'try_number', '?')} of {getattr(ti, 'max_tries', '?')}",
        f"error: {type(exception).__name__ if exception else 'unknown'}: {str(exception).strip()[:1500] if exception else ''}",
    ]
    moved = getattr(exception, "moved", None)
    if moved:
        lines.append("numbers that moved:")
        lines += [f"  - {line}" for line in moved]
    try:
        lines.append(f"log: {ti.log_url}")
    except Exception:  # log_url needs the task's run context
        lines.append("log: (unavailable)")
    return Message(f"[PLE] {dag_id}.{task_id} failed", "\n".join(lines))


def send(message: Message, context) -> list[str]:
    """Deliver on every configured channel; returns the channels that took the message."""
    delivered = []
    if _has_connection(config.SLACK_WEBHOOK_CONN_ID):
        try:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            SlackWebhookNotifier(slack_webhook_conn_id=config.SLACK_WEBHOOK_CONN_ID, text=message.text).notify(context)
            delivered.append("slack")
        except Exception as exc:
            log.warning("Slack alert not delivered: %s", exc)
    else:
        log.warning("no connection %s: Slack alert not sent", config.SLACK_WEBHOOK_CONN_ID)
    recipients = variable(config.ALERT_EMAIL_TO_VARIABLE)
    if recipients and _has_connection(config.SMTP_CONN_ID):
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(
                to=[r.strip() for r in recipients.split(",") if r.strip()],
                from_email=variable(config.ALERT_EMAIL_FROM_VARIABLE) or "ple-airflow@localhost",
                subject=message.subject,
                html_content=f"<pre>{html.escape(message.text)}</pre>",
                smtp_conn_id=config.SMTP_CONN_ID,
            ).notify(context)
            delivered.append("email")
        except Exception as exc:
            log.warning("email alert not delivered: %s", exc)
    else:
        log.warning(
            "no Variable %s or connection %s: email alert not sent", config.ALERT_EMAIL_TO_VARIABLE, config.SMTP_CONN_ID
        )
    return delivered


def alert_on_failure(context) -> None:
    try:
        message = failure_message(context)
        delivered = send(message, context)
        log.error("%s (alert sent to: %s)", message.subject, ", ".join(delivered) or "nobody")
    except Exception as exc:
        log.warning("failure alert could not be built or sent: %s", exc)
