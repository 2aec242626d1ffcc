"""The nightly DOL Form 5500 import DAG."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from ple import config
from ple.dol import fetch as fetch_defaults
from ple.dol.layouts import all_datasets
from ple.orchestration.common import dag_arguments, optional_text_param

DATASETS = all_datasets()  # every EFAST2 dataset that has a layout

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


def _archive_dir(params: dict) -> Path:
    if params.get("archive_dir"):
        return Path(params["archive_dir"])
    if os.environ.get(config.DOL_ARCHIVE_DIR_ENV):
        return Path(os.environ[config.DOL_ARCHIVE_DIR_ENV])
    return _landing_dir(params["landing_dir"]) / config.DOL_ARCHIVE_SUBDIR


def _flat(*groups) -> list[dict]:
    """Import results of the landing folder's files (one dict each) and of the archives (a list each)."""
    out: list[dict] = []
    for group in groups:
        for item in group or []:
            out.extend(item if isinstance(item, list) else [item])
    return out


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
                "fetch_efast2": Param(
                    config.DOL_FETCH,
                    type="boolean",
                    title="Fetch DOL's EFAST2 datasets",
                    description="on: each archive of the years and datasets below is requested conditionally "
                    "(ETag / Last-Modified); only a changed one is downloaded and imported",
                ),
                "years": Param(
                    [],
                    type="array",
                    items={"type": "integer", "minimum": 2009, "maximum": 2100},
                    title="Plan years to keep current",
                    description="empty: the last three plan years (the three calendar years before this one)",
                ),
                "datasets": Param(
                    [],
                    type="array",
                    items={"type": "string", "pattern": "^[A-Z0-9_]+$"},
                    title="Datasets to keep current",
                    description="EFAST2 dataset names (F_5500, F_5500_SF, F_SCH_A, ...); empty: every dataset the "
                    "DOL schema holds a table for",
                ),
                "base_url": Param(
                    fetch_defaults.DEFAULT_BASE_URL,
                    type="string",
                    pattern="^https?://",
                    title="EFAST2 base URL",
                    description="archives are <base>/<year>/Latest/<DATASET>_<year>_Latest.zip",
                ),
                "archive_dir": optional_text_param(
                    "Archive folder",
                    f"where fetched archives and their state are kept; empty: ${config.DOL_ARCHIVE_DIR_ENV}, else "
                    f"<landing folder>/{config.DOL_ARCHIVE_SUBDIR}",
                ),
                "urls": Param(
                    [],
                    type="array",
                    items={"type": "string", "pattern": "^https?://"},
                    title="Download first",
                    description="DOL dataset URLs (zips) to fetch into the landing folder before importing, each with a "
                    "conditional request: a file republished under the same name is fetched again",
                ),
            },
        ),
    )
    def dol_staging_import():
        @task
        def discover_files() -> list[dict]:
            from ple.dol import fetch, files
            from ple.reporting import emit

            params = get_current_context()["params"]
            landing = _landing_dir(params["landing_dir"])
            landing.mkdir(parents=True, exist_ok=True)
            for fetched in fetch.download(params["urls"], landing):
                emit(f"downloaded {fetched.name}")
            inputs, skipped = files.discover(landing)
            for item in skipped:
                emit(f"skipped {item.name}: {item.reason}")
            emit(f"{len(inputs)} CSV inputs in {landing}")
            return [{"path": str(i.path), "member": i.member} for i in inputs]

        @task
        def plan_archives() -> list[dict]:
            """The EFAST2 archives to keep current (one mapped fetch and import each)."""
            from ple.db import connect
            from ple.dol import fetch
            from ple.reporting import emit

            params = get_current_context()["params"]
            if not params["fetch_efast2"]:
                emit("fetching from EFAST2 is off (fetch_efast2): the landing folder only")
                return []
            years = params["years"] or fetch.default_years()
            datasets = params["datasets"]
            if not datasets:
                with connect() as conn:
                    datasets = fetch.default_datasets(conn)
            planned = fetch.archives(years, datasets, params["base_url"])
            emit(
                f"{len(planned)} EFAST2 archives: plan years {', '.join(map(str, sorted(set(years))))}; {', '.join(datasets)}"
            )
            return [a.as_dict() for a in planned]

        @task(
            map_index_template="{{ task.op_kwargs['archive']['dataset'] }}_{{ task.op_kwargs['archive']['year'] }}",
            max_active_tis_per_dagrun=4,  # polite to DOL's server: four requests at a time
        )
        def fetch_archive(archive: dict) -> dict:
            """One conditional request; the archive downloaded only when it changed (see ple.dol.fetch)."""
            from ple.dol import fetch
            from ple.reporting import emit

            def progress(one, size, total):
                emit(f"{one.name}: {size / 1e6:,.1f} MB" + (f" of {total / 1e6:,.1f} MB" if total else ""))

            folder = _archive_dir(get_current_context()["params"])
            result = fetch.fetch(fetch.Archive(**archive), folder, progress=progress)
            emit(f"{result.name}: {result.status} ({result.attempts} requests). {result.message}")
            return result.as_dict()

        @task(trigger_rule="none_failed")  # runs when no archive was planned (a mapped task of none is skipped)
        def prepare_imports(items: list[dict], fetched: list[dict]) -> list[dict] | None:
            """The ledger's tables, once (only when something is to import: an unchanged night writes
            nothing); with add_columns on: the columns the files would add, which must carry a
            recorded approval (else the run stops here, before any import writes). Off: None."""
            from ple.db import connect
            from ple.dol import files, importer, new_columns
            from ple.reporting import emit

            changed = [f for f in fetched or [] if f["status"] == "changed"]
            add = get_current_context()["params"]["add_columns"]
            if not items and not changed and not add:
                return None
            with connect() as conn:
                importer.ensure_ledger(conn)  # once, before the imports start side by side
                if not add:
                    return None
                inputs = [files.Input(Path(i["path"]), i["member"]) for i in items]
                inputs += [files.Input(Path(f["path"]), m) for f in fetched or [] if f["path"] for m, _ in f["members"]]
                planned = new_columns.planned(conn, inputs)
                if planned:
                    approved = new_columns.require(conn, planned)
                    emit(
                        f"adding {len(planned)} approved columns (approval {approved['approval_id']} by "
                        f"{approved['approver']}): " + ", ".join(a.describe() for a in planned)
                    )
            return new_columns.as_dicts(planned)

        @task(map_index_template="{{ task.op_kwargs['fetched']['name'] }}", max_active_tis_per_dagrun=2)
        def import_archive(fetched: dict, additions: list[dict] | None) -> list[dict]:
            """The members of one archive not imported yet (a changed archive, or one whose import
            failed before); nothing for an unchanged, imported archive (one read-only query)."""
            from ple.db import connect
            from ple.dol import fetch, importer, new_columns
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            one = fetch.Fetched(**fetched)
            if one.status in ("missing", "failed"):
                emit(f"{one.name}: {one.status}, nothing to import. {one.message}")
                return []
            with connect() as conn:
                results, failures = fetch.import_fetched(
                    conn,
                    one,
                    context["run_id"],
                    guard=importer.Guard(params["guard_setting"], params["guard_value"]),
                    add_columns=None if additions is None else new_columns.from_dicts(additions),
                )
            for result in results:
                emit(f"{result.name}: {result.status}. {result.message}")
            if failures:
                raise RuntimeError("; ".join(failures))
            if not results:
                emit(f"{one.name}: {one.status}, already imported: nothing to do")
            return [r.as_dict() for r in results]

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
            @task(
                task_id=f"publish_{DATASETS[name].table.split('.')[1]}",
                outlets=[ASSETS[name]],
                trigger_rule="none_failed",
            )
            def publish(results: list[dict], archive_results: list) -> dict:
                from ple.reporting import emit

                mine = [
                    r for r in _flat(results, archive_results) if r["dataset"] == name and r["status"] == "imported"
                ]
                changed = sum(r["inserted"] + r["updated"] + r["superseded"] for r in mine)
                if not changed:
                    raise AirflowSkipException(f"no import changed {DATASETS[name].table}: no asset event")
                emit(f"{DATASETS[name].table}: {changed} rows changed by {len(mine)} files")
                return {"table": DATASETS[name].table, "rows_changed": changed}

            return publish

        @task(trigger_rule="all_done")
        def prove(results: list[dict], archive_results: list) -> int:
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
        def summary(results: list[dict], archive_results: list, fetched: list[dict]) -> None:
            from ple.reporting import emit, table

            fetched = list(fetched or [])
            if fetched:
                emit(
                    table(
                        [
                            (f["name"], f["status"], f["attempts"], f["bytes"], f["changed_at"] or "", f["message"])
                            for f in fetched
                        ],
                        ("archive", "outcome", "requests", "bytes", "last changed", "message"),
                    )
                )
            results = _flat(results, archive_results)
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
                    r.get("history_rows", 0),
                )
                for r in results
            ]
            emit(
                table(
                    rows,
                    (
                        "file",
                        "dataset",
                        "status",
                        "rows",
                        "new",
                        "changed",
                        "unchanged",
                        "errors",
                        "superseded",
                        "history",
                    ),
                )
            )
            failed = [f["name"] for f in fetched if f["status"] == "failed"]
            if failed:
                raise RuntimeError(f"EFAST2 archives not fetched after every retry: {', '.join(failed)}")

        found = discover_files()
        fetched = fetch_archive.expand(archive=plan_archives())
        additions = prepare_imports(found, fetched)
        results = import_file.partial(additions=additions).expand(item=found)
        archive_results = import_archive.partial(additions=additions).expand(fetched=fetched)
        proof = prove(results, archive_results)
        for name in DATASETS:
            proof >> publisher(name)(results, archive_results)
        summary(results, archive_results, fetched)

    return dol_staging_import()
