"""Failure alerts (placeholder until the alerting issue): log the final failure."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def alert_on_failure(context) -> None:
    ti = context.get("ti")
    log.error("task failed: %s.%s", getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?"))
