"""The nightly Phase 2C audit DAG."""

from __future__ import annotations

import os

from airflow.sdk import dag, task

from ple import config
from ple.orchestration.common import START_DATE, default_args, tags


def build_nightly_audit_dag(doc_md: str):
    @dag(
        dag_id="ctb_nightly_audit",
        schedule=os.environ.get(config.AUDIT_SCHEDULE_VARIABLE_ENV, config.DEFAULT_AUDIT_SCHEDULE),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        tags=tags("ctb", "audit", "nightly", "phase-2c"),
        doc_md=doc_md,
    )
    def ctb_nightly_audit():
        @task
        def compute_numbers() -> dict[str, int]:
            from ple.audit.numbers import compute
            from ple.db import connect
            from ple.reporting import emit, table

            with connect() as conn:
                numbers = compute(conn)
            emit(table(list(numbers.items()), ("number", "value")))
            return numbers

        compute_numbers()

    return ctb_nightly_audit()
