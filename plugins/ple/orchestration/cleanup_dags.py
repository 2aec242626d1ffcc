"""The Phase 2C data-quality cleanup DAG (manual): audit, five cleanup steps, audit again."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Param, chain, dag, get_current_context, task

from ple.audit.cleanup import DEFAULT_ARTIFACTS, STEPS
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
                    "copy every row a step changes or removes to its archive, then change it; plan shows the counts"
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
        def cleanup_step(step: str) -> dict:
            from ple.audit import cleanup
            from ple.db import connect
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            apply = params["mode"] == "apply"
            with connect() as conn:
                result = cleanup.run_step(
                    conn,
                    step,
                    context["run_id"],
                    apply=apply,
                    artifacts=Path(params["artifacts_dir"]) if params["artifacts_dir"] else DEFAULT_ARTIFACTS,
                    lock_timeout=params["lock_timeout"],
                )
            emit(result.describe(apply))
            return {
                "step": step,
                "rows": result.rows_touched,
                "archived": result.archived_rows,
                "artifact": result.artifact,
            }

        @task
        def audit_after() -> dict[str, int]:
            return _audit_table("audit after the cleanup")

        chain(audit_before(), *[cleanup_step.override(task_id=step)(step) for step in STEPS], audit_after())

    return ctb_phase_2c_data_quality()
