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
from ple.orchestration.common import dag_arguments, mode_param
from ple.reorg.plan import Plan, load


def _params(plan: Plan) -> dict:
    phases = [p.phase for p in plan.phases if p.steps]
    return {
        "phase": Param(phases[-1], type="string", enum=phases, title="Phase", description="the phase to undo"),
        "mode": mode_param(
            "undo the phase, last step first (refused unless this revert is approved); plan renders what it would do"
        ),
        "lock_timeout": Param(
            "2s",
            type="string",
            pattern=r"^[0-9]+(ms|s|min)$",
            description="SET LOCAL lock_timeout of every transaction",
        ),
        "lock_retries": Param(
            5, type="integer", minimum=1, maximum=20, description="tries per step on lock timeouts, with backoff"
        ),
    }


def _reports(conn, context, mode: str):
    from ple.reorg.context import Settings
    from ple.reorg.executor import Executor

    params = context["params"]
    settings = Settings.from_params({**params, "mode": mode})
    return Executor(conn, load(), context["run_id"], settings).revert_phase(params["phase"])


def _revert(mode: str) -> list[dict]:
    from ple.db import connect
    from ple.reporting import emit

    with connect() as conn:
        reports = _reports(conn, get_current_context(), mode)
    for report in reports:
        emit(report.text)
    return [{"step": r.step_id, "status": r.status} for r in reports]


def _fingerprint(_conn, context):
    """What `apply_revert` re-checks in every transaction: the plan, the engine code, the phase."""
    from ple.reorg.revert import revert_fingerprint

    return revert_fingerprint(load().sha256, context["params"]["phase"])


def _render(conn, context) -> str:
    """The revert as plan mode renders it (read-only), for the approval request."""
    return "\n".join(report.text for report in _reports(conn, context, "plan"))


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
