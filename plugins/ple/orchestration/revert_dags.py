"""`ctb_revert`: undo one phase, as an approved operation of its own.

`render_plan` shows what the revert would do, step by step, and whether it is approved (it writes
nothing); in `mode=apply`, `approve` (the human-in-the-loop gate) asks for an approval of subject
"revert" for this plan, code and phase in Required Actions, unless one is recorded already
(`python -m ple.cli approve --revert <phase> --approver <name>`, or an earlier answer);
`apply_revert` then carries it out, re-checking that approval in every transaction. The revert
itself is resumable: a retry, or a new run, goes on from where the last one stopped.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, get_current_context, task

from ple.orchestration.approval_gate import approval_gate
from ple.orchestration.common import dag_arguments, duration_param, mode_param
from ple.reorg.plan import Plan, load

# The form's default: which phase was applied last is known only to the target database, which
# nothing reads while DAG files are parsed; the run resolves it (`_phase`) and says which it took.
LAST_APPLIED = "last applied"


def _revertible(plan: Plan) -> list[str]:
    return [p.phase for p in plan.phases if p.steps]


def _phase(conn, context) -> str:
    """The phase this run reverts: the one chosen in the form, or the last applied one."""
    from ple import ops
    from ple.errors import BadInput
    from ple.sqlutil import raw_template

    chosen = context["params"]["phase"]
    if chosen != LAST_APPLIED:
        return chosen
    row = None
    if ops.schema_exists(conn):
        row = conn.execute(raw_template("revert/last_applied_phase"), {"phases": _revertible(load())}).fetchone()
    if row is None:
        raise BadInput(f"phase: '{LAST_APPLIED}' names no phase: the ledger shows no phase of this plan applied")
    return row[0]


def _resolved(phase: str, context) -> str:
    if context["params"]["phase"] != LAST_APPLIED:
        return f"phase {phase} (chosen in the form)"
    return f"phase {phase} ('{LAST_APPLIED}': the phase applied most recently that still stands)"


def _params(plan: Plan) -> dict:
    return {
        "phase": Param(
            LAST_APPLIED,
            type="string",
            enum=[LAST_APPLIED, *_revertible(plan)],
            title="Phase",
            description=f"the phase to undo; '{LAST_APPLIED}': the phase applied most recently that still stands, "
            "looked up in the ledger when the run starts (the run's log and the approval request name it)",
        ),
        "mode": mode_param(
            "undo the phase, last step first (refused unless this revert is approved); plan renders what it would do"
        ),
        "lock_timeout": duration_param("2s", "SET LOCAL lock_timeout of every transaction"),
        "lock_retries": Param(
            5, type="integer", minimum=1, maximum=20, description="tries per step on lock timeouts, with backoff"
        ),
    }


def _reports(conn, context, mode: str):
    from ple.reorg.context import Settings
    from ple.reorg.executor import Executor

    params = context["params"]
    settings = Settings.from_params({**params, "mode": mode})
    phase = _phase(conn, context)
    return phase, Executor(conn, load(), context["run_id"], settings).revert_phase(phase)


def _revert(mode: str) -> list[dict]:
    from ple.db import connect
    from ple.reporting import emit

    context = get_current_context()
    with connect() as conn:
        phase, reports = _reports(conn, context, mode)
    emit(f"reverting {_resolved(phase, context)}")
    for report in reports:
        emit(report.text)
    return [{"step": r.step_id, "status": r.status} for r in reports]


def _fingerprint(conn, context):
    """What `apply_revert` re-checks in every transaction: the plan, the engine code, the phase."""
    from ple.reorg.revert import revert_fingerprint

    return revert_fingerprint(load().sha256, _phase(conn, context))


def _render(conn, context) -> str:
    """The revert as plan mode renders it (read-only), for the approval request."""
    phase, reports = _reports(conn, context, "plan")
    return "\n".join([f"Reverting {_resolved(phase, context)}.", *(report.text for report in reports)])


@task
def render_plan() -> list[dict]:
    return _revert("plan")


@task
def apply_revert() -> list[dict]:
    from ple.reporting import emit

    if get_current_context()["params"]["mode"] != "apply":
        emit("mode=plan: the revert was rendered above; nothing was changed")
        return []
    return _revert("apply")


def build_revert_dag(doc_md: str, plan: Plan | None = None) -> DAG:
    plan = plan or load()
    with DAG(
        schedule=None, **dag_arguments("ctb_revert", doc_md, ("ctb", "reorganization", "manual"), _params(plan))
    ) as dag:
        gate = approval_gate("approve", subject="Approve reverting a phase", fingerprint=_fingerprint, render=_render)
        render_plan() >> gate >> apply_revert()
    return dag
