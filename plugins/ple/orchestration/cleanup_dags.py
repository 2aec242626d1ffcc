"""The Phase 2C data-quality cleanup DAG (manual): audit, preview, apply, audit again.

The `steps` Param chooses the cleanup steps the run previews, asks approval for and applies (all
by default): each step can be approved and applied on its own, with its own fingerprint and
counts (fixing NULL domains never approves de-duplicating people).

`preview` rehearses every chosen step in a transaction that is rolled back and logs what apply would
touch, the statements the rehearsal sent and the fingerprint an approval must cover. In
`mode=apply`, `approve` (the human-in-the-loop gate, `preview >> approve >> apply`) asks for an
approval of exactly that preview in Required Actions, showing its counts and SQL, unless one is
recorded already (`make cleanup-approve APPROVER=...`, or an earlier answer); the answer is
recorded like the command line's (the preview's counts in its details). `apply` runs only if
exactly that preview was approved and re-checks the approval inside every step's transaction.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task

from ple.cleanup import DEFAULT_ARTIFACTS, STEPS
from ple.orchestration.approval_gate import approval_gate
from ple.orchestration.common import dag_arguments, duration_param, mode_param, optional_text_param

# Statements that carry the cleanup out, shown in the approval request (catalog reads, guards,
# settings and the archive tables' bookkeeping columns are left out; `preview` logs the guards).
CHANGING = ("WITH", "INSERT", "UPDATE", "DELETE", "CREATE", "COPY")


def _audit_table(label: str) -> dict[str, int]:
    from ple.audit.numbers import compute
    from ple.db import connect
    from ple.reporting import emit, table

    with connect() as conn:
        numbers = compute(conn, lock_timeout=get_current_context()["params"]["lock_timeout"])
    emit(f"{label}:\n" + table(list(numbers.items()), ("number", "value")))
    return numbers


def _traced_preview(conn, lock_timeout: str):
    """The preview, and the statements its rehearsal sent that change data (in order, each once),
    so the approval request shows the exact SQL beside the counts."""
    import psycopg

    from ple import cleanup

    sent: list[str] = []

    class Tracing(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            text = query if isinstance(query, str) else query.as_string(self)
            if text.lstrip().split(None, 1)[0].upper() in CHANGING and text not in sent:
                sent.append(text)
            return super().execute(query, params, **kwargs)

    plain, conn.cursor_factory = conn.cursor_factory, Tracing
    try:
        return cleanup.preview(conn, lock_timeout, get_current_context()["params"]["steps"]), sent
    finally:
        conn.cursor_factory = plain


def _shown(context):
    """The preview the approval is about: the `preview` task's XCom."""
    from ple import cleanup

    return cleanup.Preview.from_dict(context["ti"].xcom_pull(task_ids="preview"))


def _changes_data(context) -> bool:
    """Apply writes only when the preview found something to change (otherwise no approval)."""
    return context["params"]["mode"] == "apply" and _shown(context).changes_anything


def _render(_conn, context) -> str:
    """The request's plan: the cleanup's definition, the preview's counts per step and the SQL."""
    from ple import cleanup

    data = context["ti"].xcom_pull(task_ids="preview")
    shown = cleanup.Preview.from_dict(data)
    lines = [
        f"-- the Phase 2C cleanup steps {', '.join(shown.results)} (and no other) on database {shown.database}; "
        "definition (plugins/ple/cleanup/*.py and "
        f"include/sql/audit/*.sql) SHA-256 {cleanup.definition_sha256()}",
        "-- live: what the preview (a rolled-back rehearsal) found, step by step:",
        *[f"--   {result.describe(False)}" for result in shown.results.values()],
        "-- the statements the rehearsal sent (apply sends the same, then records its ledger):",
        *[f"{statement.strip()};" for statement in data.get("statements", [])],
    ]
    return "\n".join(lines)


def build_cleanup_dag(doc_md: str):
    @dag(
        schedule=None,
        **dag_arguments(
            "ctb_phase_2c_data_quality",
            doc_md,
            ("ctb", "phase-2c", "data-quality", "manual"),
            params={
                "mode": mode_param(
                    "the approved cleanup: every row a step changes or removes is archived first; "
                    "plan only previews (a rolled-back rehearsal)"
                ),
                "lock_timeout": duration_param("2s", "SET LOCAL lock_timeout of every cleanup transaction"),
                "steps": Param(
                    list(STEPS),
                    type="array",
                    items={"type": "string", "enum": list(STEPS)},
                    uniqueItems=True,
                    minItems=1,
                    examples=list(STEPS),
                    title="Cleanup steps",
                    description="the steps this run previews, asks approval for and applies, in the cleanup's "
                    "order; each selection is approved on its own (its fingerprint names the steps and their counts)",
                ),
                "artifacts_dir": optional_text_param(
                    "Artifacts folder", f"where the duplicate-domain CSVs go (empty: {DEFAULT_ARTIFACTS})"
                ),
            },
        ),
    )
    def ctb_phase_2c_data_quality():
        @task
        def audit_before() -> dict[str, int]:
            return _audit_table("audit before the cleanup")

        @task
        def preview() -> dict:
            """What apply would touch, step by step, and the fingerprint an approval must cover."""
            from ple import cleanup
            from ple.db import connect
            from ple.reporting import emit

            with connect() as conn:
                shown, statements = _traced_preview(conn, get_current_context()["params"]["lock_timeout"])
            for result in shown.results.values():
                emit(result.describe(False))
            emit(f"preview {shown.fingerprint.describe()}")
            if shown.changes_anything:
                emit(f"apply needs an approval of exactly this preview: {cleanup.APPROVE_HOW}")
            return {**shown.to_dict(), "statements": statements}

        @task
        def apply() -> dict:
            """The approved cleanup (mode apply); in plan mode nothing happens here."""
            from ple import cleanup
            from ple.db import connect
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            if params["mode"] != "apply":
                emit("mode plan: nothing applied")
                return {}
            with connect() as conn:
                results = cleanup.apply(
                    conn,
                    context["run_id"],
                    Path(params["artifacts_dir"]) if params["artifacts_dir"] else DEFAULT_ARTIFACTS,
                    params["lock_timeout"],
                    params["steps"],
                )
            for result in results.values():
                emit(result.describe(True))
            emit(f"undo with: python -m ple.cli cleanup-undo --run-id {context['run_id']}")
            return {name: r.approved_counts() for name, r in results.items()}

        @task
        def audit_after() -> dict[str, int]:
            return _audit_table("audit after the cleanup")

        gate = approval_gate(
            "approve",
            subject="Approve the Phase 2C cleanup steps shown",
            fingerprint=lambda _conn, context: _shown(context).fingerprint,
            render=_render,
            writes=_changes_data,
            approval_details=lambda _conn, context: {"preview": _shown(context).counts},
        )
        audit_before() >> preview() >> gate >> apply() >> audit_after()

    return ctb_phase_2c_data_quality()
