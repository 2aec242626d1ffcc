"""The nightly Phase 2C audit DAG."""

from __future__ import annotations

import os

from airflow.sdk import Param, dag, get_current_context, task

from ple import config
from ple.orchestration.common import dag_arguments, duration_param


def build_nightly_audit_dag(doc_md: str):
    @dag(
        schedule=os.environ.get(config.AUDIT_SCHEDULE_VARIABLE_ENV, config.DEFAULT_AUDIT_SCHEDULE),
        **dag_arguments(
            "ctb_nightly_audit",
            doc_md,
            ("ctb", "audit", "nightly", "phase-2c"),
            params={
                "regression_margin_pct": Param(
                    1.0,
                    type="number",
                    minimum=0,
                    description="a number may grow this much (%) over the accepted baseline before it fails",
                ),
                "regression_margin_rows": Param(
                    0, type="integer", minimum=0, description="... or this many rows, whichever is more"
                ),
                "lock_timeout": duration_param("2s", "lock_timeout of the audit queries"),
            },
        ),
    )
    def ctb_nightly_audit():
        @task
        def compute_numbers() -> dict[str, int]:
            """Every Phase 2C number, in one snapshot, recorded in ple_ops.audit_history."""
            import time

            from ple.audit import history
            from ple.audit.numbers import compute
            from ple.db import connect
            from ple.reporting import emit, table

            context = get_current_context()
            with connect() as conn:
                started = time.monotonic()
                numbers = compute(conn, lock_timeout=context["params"]["lock_timeout"])
                seconds = time.monotonic() - started
                history.record(conn, context["run_id"], numbers, seconds)
            emit(table(list(numbers.items()), ("number", "value")))
            emit(f"audit computed in {seconds:.2f}s")
            return numbers

        @task
        def check_thresholds(numbers: dict[str, int]) -> dict:
            """The Great Expectations suite of thresholds and regressions against the accepted
            baseline; a breach fails at once, and again every night until fixed or accepted."""
            from ple.audit import history
            from ple.db import connect
            from ple.errors import ThresholdBreached
            from ple.orchestration.alerts import Message, send, variable
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            with connect() as conn:
                accepted = history.baseline(conn)
                bounds, breached = history.judge(
                    conn, context["run_id"], params["regression_margin_pct"], params["regression_margin_rows"]
                )
            emit("compared with the accepted baseline: " + (accepted.describe() if accepted else "none yet"))
            for bound in bounds:
                emit(("BREACHED " if bound in breached else "ok       ") + bound.describe())
            if breached:
                raise ThresholdBreached(
                    f"{len(breached)} audit number(s) broke their threshold or regressed; this fails every night "
                    f"until fixed, or until the new numbers are accepted with {history.ACCEPT_HOW}",
                    [b.describe() for b in breached],
                )
            if (variable(config.AUDIT_SUCCESS_SUMMARY_VARIABLE) or "").lower() in ("1", "true", "yes"):
                summary = "\n".join(f"{name}: {value:,}" for name, value in numbers.items())
                send(
                    Message("[PLE] nightly audit passed", f"ctb_nightly_audit passed ({context['run_id']})\n{summary}"),
                    context,
                )
            return {"expectations": len(bounds), "breached": 0}

        @task
        def structure() -> dict:
            """Dangling triggers and the owner's registry drift: reported, never failing the audit."""
            from ple.audit.structure import findings
            from ple.db import connect, transaction
            from ple.reporting import emit

            with connect() as conn, transaction(conn, read_only=True):
                found = findings(conn)
            for line in found or ["no dangling trigger; no registry drift"]:
                emit(line)
            return {"findings": len(found)}

        check_thresholds(compute_numbers())
        structure()

    return ctb_nightly_audit()
