"""The nightly DOL Form 5500 import DAG."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from ple import config
from ple.dol.layouts import DATASETS
from ple.orchestration.common import dag_arguments, optional_text_param

# Downstream DAGs can be scheduled on these (data-aware scheduling): an event is published for a
# table whenever an import changed it.
ASSETS = {
    name: Asset(name=dataset.table, uri=f"postgres://ctb_postgres:5432/ple/{dataset.table.replace('.', '/')}")
    for name, dataset in DATASETS.items()
}


def _landing_dir(param: str | None) -> Path:
    if param:
        return Path(param)
    from airflow.sdk import Variable

    return Path(Variable.get(config.DOL_LANDING_DIR_VARIABLE, default=str(config.DOL_DEFAULT_LANDING_DIR)))


def build_dol_import_dag(doc_md: str):
    @dag(
        schedule=os.environ.get(config.DOL_IMPORT_SCHEDULE_ENV, config.DEFAULT_DOL_IMPORT_SCHEDULE),
        **dag_arguments(
            "dol_staging_import",
            doc_md,
            ("dol", "import", "nightly"),
            params={
                "landing_dir": optional_text_param(
                    "Landing folder",
                    f"folder of DOL CSVs or zips; empty: the Variable {config.DOL_LANDING_DIR_VARIABLE}, "
                    f"else {config.DOL_DEFAULT_LANDING_DIR}",
                ),
                "add_columns": Param(
                    False,
                    type="boolean",
                    title="Add the columns a file has and the table lacks",
                    description="off (default): such columns go to the row's extras if the table has that column, "
                    "else they are reported and dropped from the load, and the import runs no DDL at all; on: the "
                    "exact columns must be approved first (python -m ple.cli approve --approver <name> --dol-columns "
                    "<landing folder>), else the run stops before writing; one ALTER TABLE per table adds them "
                    "(lock timeout 2 s), for this run only",
                ),
                "guard_setting": Param(
                    config.DOL_GUARD_SETTING,
                    type="string",
                    pattern="^[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*$",
                    title="Read-only guard: setting",
                    description="the transaction setting the DOL guard triggers read; set transaction-locally in "
                    "each of the import's transactions",
                ),
                "guard_value": Param(
                    config.DOL_GUARD_VALUE,
                    type="string",
                    title="Read-only guard: value",
                    description="the value of the setting that lets an import write",
                ),
                "urls": Param(
                    [],
                    type="array",
                    items={"type": "string", "pattern": "^https?://"},
                    title="Download first",
                    description="DOL dataset URLs (zips) to fetch into the landing folder before importing",
                ),
            },
        ),
    )
    def dol_staging_import():
        @task
        def discover_files() -> list[dict]:
            from ple.dol import files
            from ple.reporting import emit

            params = get_current_context()["params"]
            landing = _landing_dir(params["landing_dir"])
            landing.mkdir(parents=True, exist_ok=True)
            for fetched in files.download(params["urls"], landing):
                emit(f"downloaded {fetched.name}")
            inputs, skipped = files.discover(landing)
            for item in skipped:
                emit(f"skipped {item.name}: {item.reason}")
            emit(f"{len(inputs)} CSV inputs in {landing}")
            return [{"path": str(i.path), "member": i.member} for i in inputs]

        @task
        def prepare_imports(items: list[dict]) -> list[dict] | None:
            """The ledger's tables, once; with add_columns on: the columns the files would add, which
            must carry a recorded approval (else the run stops here, before any import writes). Off: None."""
            from ple.db import connect
            from ple.dol import files, importer, new_columns
            from ple.reporting import emit

            with connect() as conn:
                importer.ensure_ledger(conn)  # once, before the imports start side by side
                if not get_current_context()["params"]["add_columns"]:
                    return None
                planned = new_columns.planned(conn, [files.Input(Path(i["path"]), i["member"]) for i in items])
                if planned:
                    approved = new_columns.require(conn, planned)
                    emit(
                        f"adding {len(planned)} approved columns (approval {approved['approval_id']} by "
                        f"{approved['approver']}): " + ", ".join(a.describe() for a in planned)
                    )
            return new_columns.as_dicts(planned)

        # Files import side by side on both cores (files of one dataset take turns: an advisory lock).
        @task(
            map_index_template="{{ task.op_kwargs['item']['member'] or task.op_kwargs['item']['path'].split('/')[-1] }}",
            max_active_tis_per_dagrun=2,
        )
        def import_file(item: dict, additions: list[dict] | None) -> dict:
            from ple.db import connect
            from ple.dol import files, importer, new_columns
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            source = files.Input(Path(item["path"]), item["member"])
            with connect() as conn:
                result = importer.import_file(
                    conn,
                    source,
                    context["run_id"],
                    guard=importer.Guard(params["guard_setting"], params["guard_value"]),
                    add_columns=None if additions is None else new_columns.from_dicts(additions),
                )
            emit(f"{result.name}: {result.status}. {result.message}")
            return result.as_dict()

        def publisher(name: str):
            @task(task_id=f"publish_{DATASETS[name].table.split('.')[1]}", outlets=[ASSETS[name]])
            def publish(results: list[dict]) -> dict:
                from ple.reporting import emit

                mine = [r for r in results if r["dataset"] == name and r["status"] == "imported"]
                changed = sum(r["inserted"] + r["updated"] + r["superseded"] for r in mine)
                if not changed:
                    raise AirflowSkipException(f"no import changed {DATASETS[name].table}: no asset event")
                emit(f"{DATASETS[name].table}: {changed} rows changed by {len(mine)} files")
                return {"table": DATASETS[name].table, "rows_changed": changed}

            return publish

        @task(trigger_rule="all_done")
        def prove(results: list[dict]) -> int:
            """Great Expectations once for the whole run (not per file): every imported file has
            every data row in the live table, the superseded table or the errors table."""
            from ple.db import connect
            from ple.dol import importer
            from ple.reporting import emit

            with connect() as conn:
                proved = importer.prove_run(conn, get_current_context()["run_id"])
            emit(f"every data row accounted for in {proved} imported files (Great Expectations)")
            return proved

        @task(trigger_rule="all_done")
        def summary(results: list[dict]) -> None:
            from ple.reporting import emit, table

            rows = [
                (
                    r["name"],
                    r["dataset"] or "",
                    r["status"],
                    r["data_rows"],
                    r["inserted"],
                    r["updated"],
                    r["unchanged"],
                    r["error_rows"],
                    r["superseded"],
                )
                for r in results
            ]
            emit(
                table(
                    rows, ("file", "dataset", "status", "rows", "new", "changed", "unchanged", "errors", "superseded")
                )
            )

        found = discover_files()
        results = import_file.partial(additions=prepare_imports(found)).expand(item=found)
        proof = prove(results)
        for name in DATASETS:
            proof >> publisher(name)(results)
        summary(results)

    return dol_staging_import()
