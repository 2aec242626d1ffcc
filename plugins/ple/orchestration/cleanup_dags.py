"""The Phase 2C data-quality cleanup DAG (manual): audit, preview, apply, audit again.

`preview` rehearses every step in a transaction that is rolled back and logs what apply would
touch and the fingerprint an approval must cover; `apply` runs only if exactly that preview was
approved (`make cleanup-approve APPROVER=...`, or a human-in-the-loop gate placed between the two
tasks: `preview >> gate >> apply`), and re-checks the approval inside every step's transaction.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task

from ple.audit.cleanup import DEFAULT_ARTIFACTS
from ple.orchestration.common import dag_arguments, mode_param, optional_text_param


def _audit_table(label: str) -> dict[str, int]:
    from ple.audit.numbers import compute
    from ple.db import connect
    from ple.reporting import emit, table

    with connect() as conn:
        numbers = compute(conn, lock_timeout=get_current_context()["params"]["lock_timeout"])
    emit(f"{label}:\n" + table(list(numbers.items()), ("number", "value")))
    return numbers


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
                "lock_timeout": Param("2s", type="string", pattern=r"^[0-9]+(ms|s|min)$"),
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
            from ple.audit import cleanup
            from ple.db import connect
            from ple.reporting import emit

            with connect() as conn:
                shown = cleanup.preview(conn, get_current_context()["params"]["lock_timeout"])
            for result in shown.results.values():
                emit(result.describe(False))
            emit(f"preview {shown.fingerprint.describe()}")
            if shown.changes_anything:
                emit(f"apply needs an approval of exactly this preview: {cleanup.APPROVE_HOW}")
            return shown.to_dict()

        @task
        def apply() -> dict:
            """The approved cleanup (mode apply); in plan mode nothing happens here."""
            from ple.audit import cleanup
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
                )
            for result in results.values():
                emit(result.describe(True))
            emit(f"undo with: python -m ple.cli cleanup-undo --run-id {context['run_id']}")
            return {name: r.approved_counts() for name, r in results.items()}

        @task
        def audit_after() -> dict[str, int]:
            return _audit_table("audit after the cleanup")

        audit_before() >> preview() >> apply() >> audit_after()

    return ctb_phase_2c_data_quality()
