"""The approval gate: a run that changes data asks a person in the Airflow UI before it does.

One operator for every run that changes data (a reorganization phase, the whole reorganization,
a revert, the 2C cleanup, the 1L decisions). In a run that writes (by default: `mode=apply`) it

1. computes the fingerprint of what would run (`ple.approval`: plan, decisions, engine code) for
   the scope the request shows (one phase, or the whole plan);
2. honours an approval in force for this run and scope without asking again (a standing approval,
   or one given for the next run, e.g. `make approve`: see ple/approval.py for what "in force" is);
3. otherwise renders the plan (the exact SQL and the live counts) into the task log and into a
   Human-in-the-loop request (Airflow's `HITLOperator`: "Required Actions" in the UI), with the
   checksums of every part of the fingerprint, titled with its scope;
4. on "Approve", records an approval of that scope bound to this run in `ple_ops.approval` with
   the authenticated Airflow user who answered and the time (`via="airflow-hitl"`), plus what the
   subject's own check needs (`approval_details`: the 2C cleanup stores the preview's counts there,
   as `make cleanup-approve` does); on "Reject" it records the rejection (which vetoes the scope
   until someone approves it again) and fails, so nothing downstream runs; a rejection is not
   retried.

If what the approval covers changed while the request waited (a plan edit, a code deploy), the
answer approves nothing: the approver saw something else. The executor re-checks the approval in
every transaction that writes, so the gate is how an approval is given, never what enforces it.

Wiring it into another DAG takes three callables (all run inside the task, never at parse time):

    gate = approval_gate(
        "approve",
        subject="Revert phase {phase}",
        fingerprint=lambda conn, context: ...,  # -> ple.approval.Fingerprint
        render=lambda conn, context: ...,  # -> the plan as text (SQL, live counts), or (summary, text)
        approval_details=lambda conn, context: {...},  # optional: recorded with the approval
    )
    gate >> first_task_that_writes
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

from ple import approval

APPROVE = "Approve"
REJECT = "Reject"
FINGERPRINT_XCOM = "fingerprint"
BODY_LIMIT = 60_000  # characters of plan in the request; the task log has all of it
WRAP = 100  # characters per line of SQL in the request: the dialog never scrolls sideways to its buttons


def applies(context) -> bool:
    """The default: a run writes when its `mode` Param is `apply`."""
    return context["params"].get("mode") == "apply"


class ApprovalGate(HITLOperator):
    """Asks for an approval of an exact fingerprint unless one is already recorded."""

    template_fields = ()  # the request is built at run time from the live database
    ui_color = "#fde68a"

    def __init__(
        self,
        *,
        subject: str,
        fingerprint: Callable[[Any, Any], approval.Fingerprint],
        render: Callable[[Any, Any], str | tuple[str, str]],
        writes: Callable[[Any], bool] = applies,
        approval_details: Callable[[Any, Any], dict] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(subject=subject, options=[APPROVE, REJECT], multiple=False, **kwargs)
        self.fingerprint = fingerprint
        self.render = render
        self.writes = writes
        self.approval_details = approval_details

    def execute(self, context):
        from ple.db import connect
        from ple.reporting import emit

        if not self.writes(context):
            emit(f"mode {context['params'].get('mode')}: this run changes no data, no approval needed")
            return {"asked": False, "approval": None}
        with connect() as conn:
            fingerprint = self.fingerprint(conn, context)
            recorded = approval.current(conn, fingerprint, context["run_id"])
            if recorded:
                kind = "standing approval" if recorded["standing"] else "approval for one run"
                emit(
                    f"in force: {kind} {recorded['approval_id']} of {recorded['scope']} ({fingerprint.describe()}) "
                    f"by {recorded['approver']} ({recorded['via']}, {recorded['approved_at']}); not asking again"
                )
                return {"asked": False, "approval": recorded, "fingerprint": fingerprint.sha256}
            rendered = self.render(conn, context)
        summary, plan_text = rendered if isinstance(rendered, tuple) else ("", rendered)
        emit("\n\n".join(t for t in (summary, plan_text) if t))
        emit(f"asking for an approval of {fingerprint.describe()} in Required Actions")
        self.body = request_body(fingerprint, plan_text, summary)
        with connect() as conn:  # the console shows the request of the run as the approver saw it
            approval.record_request(
                conn, context["dag"].dag_id, context["run_id"], self.subject, fingerprint, self.body
            )
        context["ti"].xcom_push(key=FINGERPRINT_XCOM, value=fingerprint.sha256)
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]):
        from ple.db import connect
        from ple.errors import ApprovalRejected, NotApproved
        from ple.reporting import emit

        answer = super().execute_complete(context, event)
        user, who, when = responder(answer)
        asked = context["ti"].xcom_pull(task_ids=self.task_id, key=FINGERPRINT_XCOM)
        answered = {
            "user_id": user.get("id"),
            "responded_at": when.isoformat(),
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "task_id": self.task_id,
            "asked": asked,
        }
        with connect() as conn:
            fingerprint = self.fingerprint(conn, context)
            if answer["chosen_options"] != [APPROVE]:
                rejection_id = approval.reject(
                    conn,
                    fingerprint,
                    who,
                    via="airflow-hitl",
                    note=f"{context['dag'].dag_id} {context['run_id']}",
                    details=answered,
                )
                raise ApprovalRejected(
                    f"rejected by {who} at {when.isoformat()} (recorded as {rejection_id}): nothing runs, and "
                    f"{fingerprint.scope} stays vetoed until someone approves it again"
                )
            if fingerprint.sha256 != asked:
                raise NotApproved(
                    f"{who} approved {asked}, but what would run is now {fingerprint.describe()} "
                    "(the plan, decisions or engine code changed while the request waited): trigger the run again"
                )
            details = {**(self.approval_details(conn, context) if self.approval_details else {}), **answered}
            approval_id = approval.approve(
                conn,
                fingerprint,
                who,
                via="airflow-hitl",
                note=f"{context['dag'].dag_id} {context['run_id']}",
                details=details,
                for_run=context["run_id"],
            )
        emit(f"APPROVED {fingerprint.describe()} by {who} at {when.isoformat()} (approval {approval_id})")
        return {"asked": True, "approval_id": approval_id, "approver": who, "fingerprint": fingerprint.sha256}


def responder(response: dict) -> tuple[dict, str, Any]:
    """(user, name, time) of who answered a Human-in-the-loop request: the authenticated Airflow
    user the response carries, never a name typed into a form."""
    user = response["responded_by_user"] or {}
    return user, user.get("name") or user.get("id") or "unknown", response["responded_at"]


def request_body(fingerprint: approval.Fingerprint, plan_text: str, summary: str = "") -> str:
    """The request as the approver reads it (Markdown): what it approves and its summary first
    (what moves, merges, archives, with row counts; what breaks), the checksums, then every step's
    exact SQL, wrapped so the dialog is never wider than the screen."""
    if len(plan_text) > BODY_LIMIT:
        plan_text = plan_text[:BODY_LIMIT] + "\n... (cut here; the task log has the whole plan)"
    lines = [
        f"**Approve exactly this: {fingerprint.subject}, {scope_title(fingerprint)}**, once, for this run",
        "",
        *([summary, ""] if summary else []),
        f"Fingerprint `{fingerprint.sha256}`; editing any part voids this approval:",
        "",
        "| part | SHA-256 |",
        "|---|---|",
        *[
            f"| {name} | `{value[:16]}{'…' if len(value) > 16 else ''}` |"
            for name, value in sorted(fingerprint.parts.items())
        ],
        "",
        "Every step's exact SQL with the live counts:",
        "",
        "```sql",
        wrap(plan_text.replace("```", "'''")),
        "```",
    ]
    return "\n".join(lines)


def wrap(text: str, width: int = WRAP) -> str:
    """Long lines broken at spaces (or anywhere, for a longer word), continuations indented."""
    out = []
    for original in text.splitlines():
        rest = original
        while len(rest) > width:
            cut = rest.rfind(" ", width // 2, width)
            cut = cut if cut > 0 else width
            out.append(rest[:cut])
            rest = "    " + rest[cut:].lstrip(" ")
        out.append(rest)
    return "\n".join(out)


def scope_title(fingerprint: approval.Fingerprint) -> str:
    if fingerprint.scope == approval.WHOLE_PLAN:
        return "the whole plan (every phase)"
    return "everything shown" if fingerprint.scope == approval.ALL else fingerprint.scope


def approval_gate(
    task_id: str,
    *,
    subject: str,
    fingerprint: Callable[[Any, Any], approval.Fingerprint],
    render: Callable[[Any, Any], str | tuple[str, str]],
    writes: Callable[[Any], bool] = applies,
    approval_details: Callable[[Any, Any], dict] | None = None,
    **kwargs,
) -> ApprovalGate:
    """The gate as a task of the DAG being built (see the module docstring)."""
    return ApprovalGate(
        task_id=task_id,
        subject=subject,
        fingerprint=fingerprint,
        render=render,
        writes=writes,
        approval_details=approval_details,
        **kwargs,
    )
