"""`ctb_contract`: remove the compatibility objects whose grace has passed with no use, after an
approval that lists exactly what goes; or (`mode=revert`) make again what it removed.

`render_plan` samples usage (pg_stat_statements, where installed) and shows the list; in
`mode=apply` or `mode=revert`, `approve` asks for an approval of that exact list (subject
"contract" or "contract-revert", over the names, their DDL and the engine code) in Required
Actions, unless one is recorded; `carry_out` then drops (or makes) each object in a transaction
of its own, re-checking that approval. No data is touched: the objects are views and their
trigger functions, and their DDL stays in ple_ops.compat_object.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, get_current_context, task

from ple.orchestration.approval_gate import approval_gate
from ple.orchestration.common import dag_arguments, duration_param


def _params() -> dict:
    return {
        "mode": Param(
            "plan",
            type="string",
            enum=["plan", "apply", "revert"],
            title="Mode",
            description="plan: writes nothing. apply: drop the objects listed (approved). "
            "revert: make again what the contract removed (approved)",
        ),
        "lock_timeout": duration_param("2s", "SET LOCAL lock_timeout of each drop"),
    }


def _writes(context) -> bool:
    return context["params"].get("mode") in ("apply", "revert")


def _fingerprint(conn, context):
    from ple.reorg import contract

    if context["params"]["mode"] == "revert":
        return contract.revert_fingerprint(conn)
    return contract.fingerprint(conn)


def _render(conn, context) -> str:
    from ple.reorg import contract

    return contract.render_revert(conn) if context["params"]["mode"] == "revert" else contract.render(conn)


@task
def render_plan() -> str:
    from ple.db import connect
    from ple.reporting import emit

    with connect() as conn:
        text = _render(conn, get_current_context())
    emit(text)
    return text


@task
def carry_out() -> list[str]:
    from ple.db import connect
    from ple.reorg import contract
    from ple.reporting import emit

    context = get_current_context()
    params = context["params"]
    if params["mode"] == "plan":
        emit("mode=plan: the list was rendered above; nothing was changed")
        return []
    with connect() as conn:
        if params["mode"] == "revert":
            done = contract.revert(conn, params["lock_timeout"], context["run_id"])
        else:
            done = contract.apply(conn, context["run_id"], params["lock_timeout"])
    emit(f"{params['mode']}: {', '.join(done) or 'nothing'}")
    return done


def build_contract_dag(doc_md: str) -> DAG:
    with DAG(
        schedule=None, **dag_arguments("ctb_contract", doc_md, ("ctb", "reorganization", "manual"), _params())
    ) as dag:
        gate = approval_gate(
            "approve",
            subject="Approve removing (or restoring) compatibility objects",
            fingerprint=_fingerprint,
            render=_render,
            writes=_writes,
        )
        render_plan() >> gate >> carry_out()
    return dag
