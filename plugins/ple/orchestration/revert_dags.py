"""`ctb_revert`: undo one phase, as an approved operation of its own.

Two tasks, so that a human-in-the-loop gate can stand between them: `render_plan` shows what the
revert would do, step by step, and whether it is approved (it writes nothing); `apply_revert`
carries it out when `mode` is apply (refused without an approval of subject "revert" for this
plan, code and phase: `python -m ple.cli approve --revert <phase> --approver <name>`). The revert
itself is resumable: a retry, or a new run, goes on from where the last one stopped.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, get_current_context, task

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


def _revert(mode: str) -> list[dict]:
    from ple.db import connect
    from ple.reorg.context import Settings
    from ple.reorg.executor import Executor
    from ple.reporting import emit

    context = get_current_context()
    params = context["params"]
    settings = Settings.from_params({**params, "mode": mode})
    with connect() as conn:
        reports = Executor(conn, load(), context["run_id"], settings).revert_phase(params["phase"])
    for report in reports:
        emit(report.text)
    return [{"step": r.step_id, "status": r.status} for r in reports]


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
        render_plan() >> apply_revert()
    return dag
