"""The nightly Phase 2C audit DAG.

A run whose numbers breach a threshold or regress beyond the accepted baseline fails in
`check_thresholds`, and keeps failing every night until the numbers are fixed or accepted. The
acceptance can be given on the failing run itself: `accept_baseline` (a Human-in-the-loop request,
"Required Actions", run only when `check_thresholds` failed) shows the baseline, this run's numbers
and each breach, and offers to accept this run as the new baseline. The answer is recorded in
`ple_ops.approval` (subject `audit_baseline`) with the authenticated Airflow user who gave it, as
`make audit-accept` records the name typed on the command line. "Keep the baseline" fails the task:
the breach stands; so does no answer within 20 hours (the next night's run may then start), and
so does a run with `offer_baseline` off or one that failed before it was judged (nothing to
accept). Its failure sends no second alert: the one `check_thresholds` sent stands for it. An accepted run ends green (its `check_thresholds` stays red in the grid, and
the acceptance names who accepted what).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from ple import config
from ple.orchestration.common import dag_arguments, duration_param

ACCEPT = "Accept this run as the new baseline"
KEEP = "Keep the baseline"
# Unanswered, the request keeps the baseline before the next night's run is due (one run at a time).
ANSWER_WITHIN = timedelta(hours=20)


class AcceptBaseline(HITLOperator):
    """On a breached audit run: ask whether this run's numbers become the accepted baseline."""

    template_fields = ()  # the request is built at run time from the recorded numbers
    ui_color = "#fde68a"

    def __init__(self, **kwargs) -> None:
        super().__init__(
            subject="The nightly audit breached: accept this run's numbers as the new baseline?",
            options=[ACCEPT, KEEP],
            multiple=False,
            defaults=[KEEP],
            response_timeout=ANSWER_WITHIN,
            trigger_rule="all_failed",
            # the failure it follows was alerted already; its own (the breach stands) is that one
            on_failure_callback=None,
            retries=0,
            **kwargs,
        )

    def execute(self, context):
        """Ask, or fail at once (no retry, no second alert) where there is nothing to accept: a
        failed audit run stays failed unless someone accepts its numbers."""
        from airflow.exceptions import AirflowFailException

        from ple.audit import history
        from ple.db import connect, transaction
        from ple.reporting import emit

        params = context["params"]
        if not params["offer_baseline"]:
            raise AirflowFailException("the breach stands (offer_baseline is off): accept with " + history.ACCEPT_HOW)
        with connect() as conn, transaction(conn, read_only=True):
            accepted = history.baseline(conn)
            numbers = history.run_numbers(conn, context["run_id"])
            previous = accepted.numbers if accepted else {}
            bounds = history.bounds(
                numbers, previous, params["regression_margin_pct"], params["regression_margin_rows"]
            )
            status = conn.execute(
                "SELECT status FROM ple_ops.audit_run WHERE run_id = %s", (context["run_id"],)
            ).fetchone()
        if not status or status[0] != "breached":  # it failed before judging: nothing to accept
            raise AirflowFailException(f"no breach recorded for run {context['run_id']}: nothing to accept")
        self.body = baseline_request(context["run_id"], accepted, numbers, bounds)
        emit(self.body)
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]):
        from ple.audit import history
        from ple.db import connect
        from ple.errors import ThresholdBreached
        from ple.orchestration.approval_gate import responder
        from ple.reporting import emit

        answer = super().execute_complete(context, event)
        user, who, when = responder(answer)
        if answer["chosen_options"] != [ACCEPT]:
            by = f"{who} kept the baseline" if user else f"nobody answered within {ANSWER_WITHIN}: the baseline is kept"
            raise ThresholdBreached(f"{by} ({when.isoformat()}): the breach stands", [])
        with connect() as conn:
            accepted = history.accept(
                conn,
                who,
                context["run_id"],
                via="airflow-hitl",
                note=f"breached run accepted in Required Actions (user id {user.get('id')}, {when.isoformat()})",
            )
        emit(f"ACCEPTED as the nightly audit's baseline: {accepted.describe()}")
        return {"accepted_by": who, "run_id": accepted.run_id}


def baseline_request(run_id: str, accepted, numbers: dict[str, int], bounds) -> str:
    """The request as the responder reads it (Markdown): the baseline, then every judged number."""
    breached = {
        b.number
        for b in bounds
        if (b.high is not None and b.current > b.high) or (b.low is not None and b.current < b.low)
    }
    lines = [
        f"**The audit run `{run_id}` breached {len(breached)} number(s).**",
        "",
        "Accepted baseline: " + (accepted.describe() if accepted else "none yet"),
        "",
        "Accepting makes this run's numbers the baseline later runs are judged against (its "
        "regressions become the new normal); the absolute thresholds still apply.",
        "",
        "| number | baseline | this run | allowed | |",
        "|---|---:|---:|---|---|",
    ]
    for b in bounds:
        allowed = " and ".join(
            p
            for p in (f">= {b.low:,}" if b.low is not None else "", f"<= {b.high:,}" if b.high is not None else "")
            if p
        )
        base = f"{b.previous:,}" if b.previous is not None else ""
        lines.append(
            f"| {b.number} | {base} | {b.current:,} | {allowed} | {'BREACHED' if b.number in breached else 'ok'} |"
        )
    judged = {b.number for b in bounds}
    lines += [f"| {name} | | {value:,} | | |" for name, value in sorted(numbers.items()) if name not in judged]
    return "\n".join(lines)


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
                "offer_baseline": Param(
                    True,
                    type="boolean",
                    title="Offer to accept a breach",
                    description="on a breach, ask in Required Actions whether this run becomes the new baseline "
                    f"(unanswered within {ANSWER_WITHIN}: the baseline is kept)",
                ),
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

        check_thresholds(compute_numbers()) >> AcceptBaseline(task_id="accept_baseline")
        structure()

    return ctb_nightly_audit()
