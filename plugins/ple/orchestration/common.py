"""What every DAG of the bundle shares: owner, retries with backoff, the retry policy, alerts."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import ExceptionRetryPolicy, Param, RetryAction, RetryRule

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


def mode_param(apply_means: str, extra: dict[str, str] | None = None) -> Param:
    """The `mode` of every DAG that changes data: `plan` by default, which writes nothing.
    `extra`: further modes of a DAG and what they mean (the reorganization's `rehearse`)."""
    extra = extra or {}
    return Param(
        "plan",
        type="string",
        enum=["plan", "apply", *extra],
        title="Mode",
        description=f"plan: writes nothing. apply: {apply_means}" + "".join(f" {k}: {v}" for k, v in extra.items()),
    )


def optional_text_param(title: str, description: str) -> Param:
    """A text option that may stay empty. A `Param("", type="string")` counts as required and
    empty, so the trigger form's Trigger button stays disabled; null is a real "not given"."""
    return Param(None, type=["null", "string"], title=title, description=description)


def duration_param(default: str, description: str, hours: bool = False) -> Param:
    """A PostgreSQL duration (`SET LOCAL lock_timeout` and the like), as a string the schema
    checks. A bad value is refused by the trigger form with the schema's regex and the param's
    key; the description next to the field says the format in words."""
    units = ("ms", "s", "min", "h") if hours else ("ms", "s", "min")
    return Param(
        default,
        type="string",
        pattern=rf"^[0-9]+({'|'.join(units)})$",
        description=f"{description}: a whole number then {', '.join(units[:-1])} or {units[-1]}, no space "
        f"(e.g. 500ms, 2s, 1min); default {default}",
    )


def dag_arguments(dag_id: str, doc_md: str, tag_names: tuple[str, ...], params: dict | None = None) -> dict:
    """What every DAG of the bundle is built with (its schedule is given where it is made): one
    run at a time, no catch-up, the shared owner/retries/alerts, tags from the vocabulary, the DAG
    file's docstring as doc_md."""
    return {
        "dag_id": dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(),
        "tags": tags(*tag_names),
        "doc_md": doc_md,
        "params": params or {},
    }


def tags(*names: str) -> list[str]:
    unknown = set(names) - config.TAGS
    if unknown:
        raise ValueError(f"tags outside the vocabulary in ple.config.TAGS: {sorted(unknown)}")
    return list(names)
