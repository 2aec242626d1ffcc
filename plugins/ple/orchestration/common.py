"""What every DAG of the bundle shares: owner, retries with backoff, the retry policy, alerts."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from ple import config
from ple.orchestration.alerts import alert_on_failure

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

# Errors a retry cannot fix fail at once (one alert, not one per try); everything else is
# transient (dropped connections, lock timeouts, serialization failures) and retried.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="ple.errors.PermanentError",
            action=RetryAction.FAIL,
            reason="not retryable: bad input, unapproved plan or failed proof",
        ),
    ],
)


def default_args(**overrides) -> dict:
    args = {
        "owner": config.OWNER,
        "retries": config.TASK_RETRIES,
        "retry_delay": timedelta(seconds=config.TASK_RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=config.TASK_MAX_RETRY_DELAY_SECONDS),
        "retry_policy": RETRY_POLICY,
        "on_failure_callback": alert_on_failure,
    }
    args.update(overrides)
    return args


def tags(*names: str) -> list[str]:
    unknown = set(names) - config.TAGS
    if unknown:
        raise ValueError(f"tags outside the vocabulary in ple.config.TAGS: {sorted(unknown)}")
    return list(names)
