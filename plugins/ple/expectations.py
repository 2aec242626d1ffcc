"""Great Expectations suites built at run time and validated against the live database.

Suites are code, built from what the run knows (the preflight snapshot, the ledger, the audit
thresholds, the file being imported), not YAML kept beside it: the expectation always describes
the run being validated. GX Core talks to the database through SQLAlchemy with the same
connection as everything else (`ctb_postgres`).
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ple.config import REPO_ROOT

log = logging.getLogger(__name__)

# The file data context: suites, validation results and the Data Docs site of every run.
GX_PROJECT_DIR = Path(os.environ.get("PLE_GX_DIR", str(REPO_ROOT / "data" / "great_expectations")))
GX_CONNECTION_VARIABLE = "PLE_GX_CONNECTION"
DATA_DOCS_VARIABLE = "PLE_GX_DATA_DOCS"


@dataclass
class TableSuite:
    """Expectations for one table."""

    table: str  # schema.table (with `query`: a label)
    query: str | None = None  # validate the rows of this query instead of the whole table
    row_count: int | None = None
    not_null: list[str] = field(default_factory=list)
    unique: list[list[str]] = field(default_factory=list)
    value_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    matches_regex: dict[str, str] = field(default_factory=dict)
    true_columns: list[str] = field(default_factory=list)  # boolean columns of the query: true or NULL


@dataclass
class ExpectationResult:
    table: str
    expectation: str
    success: bool
    observed: object
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.table}: {self.expectation} {'passed' if self.success else 'FAILED'} (observed {self.observed}, {self.detail})"


def _expectations(suite: TableSuite):
    import great_expectations.expectations as gxe

    items = []
    if suite.row_count is not None:
        items.append(gxe.ExpectTableRowCountToEqual(value=suite.row_count))
    for column in suite.not_null:
        items.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for columns in suite.unique:
        if len(columns) == 1:
            items.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0]))
        else:
            items.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=columns))
    for column, (low, high) in suite.value_ranges.items():
        items.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high))
    for column in suite.true_columns:
        items.append(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True]))
    for column, pattern in suite.matches_regex.items():
        items.append(gxe.ExpectColumnValuesToMatchRegex(column=column, regex=pattern))
    return items


def data_docs_dir() -> Path:
    """Where the Data Docs site of the file data context is built (served by the console)."""
    return GX_PROJECT_DIR / "gx" / "uncommitted" / "data_docs" / "local_site"


def quiet_great_expectations() -> None:
    """GX logs ~214 INFO lines per import ("Skipping registering function ... closure") above an
    8-line proof; its warnings and errors still reach the task log."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def validate(sqlalchemy_url: str, suites: list[TableSuite], name: str) -> list[ExpectationResult]:
    """Validate every suite; returns one result per expectation (failures included, never raised).

    The suites run as one Checkpoint of the file data context with an UpdateDataDocsAction, so
    every validation is stored and published in the Data Docs site the console serves (a bare
    `batch.validate()` stores nothing). The context's config names the database only as
    `${PLE_GX_CONNECTION}`: no password is written to disk. One task at a time writes the
    project (a file lock): tasks of a LocalExecutor run in parallel.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    quiet_great_expectations()
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    os.environ[GX_CONNECTION_VARIABLE] = sqlalchemy_url
    docs = data_docs_enabled()
    with _project_lock() if docs else nullcontext():
        if docs:
            context = gx.get_context(mode="file", project_root_dir=str(GX_PROJECT_DIR))
        else:
            context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        datasource = context.data_sources.add_or_update_postgres(
            name=name, connection_string="${" + GX_CONNECTION_VARIABLE + "}"
        )
        definitions = []
        for number, suite in enumerate(suites):
            schema, table = suite.table.split(".")
            if suite.query:
                asset = datasource.add_query_asset(name=f"q{number}_{table}", query=suite.query)
            else:
                asset = datasource.add_table_asset(name=f"t{number}_{table}", table_name=table, schema_name=schema)
            gx_suite = gx.ExpectationSuite(name=f"{name}.{number}.{suite.table}")
            for expectation in _expectations(suite):
                gx_suite.add_expectation(expectation)
            definitions.append(
                context.validation_definitions.add_or_update(
                    gx.ValidationDefinition(
                        name=gx_suite.name,
                        data=asset.add_batch_definition_whole_table("whole"),
                        suite=context.suites.add_or_update(gx_suite),
                    )
                )
            )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=definitions,
                actions=[UpdateDataDocsAction(name="update_data_docs")] if docs else [],
                result_format="SUMMARY",
            )
        )
        outcome = checkpoint.run()
    by_suite = {run.suite_name: run for run in outcome.run_results.values()}
    results: list[ExpectationResult] = []
    for definition, suite in zip(definitions, suites, strict=True):
        for result in by_suite[definition.suite.name].results:
            config = result.expectation_config
            observed = result.result.get("observed_value", result.result.get("unexpected_count"))
            detail = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
            results.append(ExpectationResult(suite.table, config.type, bool(result.success), observed, detail))
    return results


def data_docs_enabled() -> bool:
    """PLE_GX_DATA_DOCS=false validates in an ephemeral context and stores nothing (the test
    suite's default: hundreds of validations of throwaway databases)."""
    return os.environ.get(DATA_DOCS_VARIABLE, "true").lower() not in ("0", "false", "no")


@contextmanager
def _project_lock():
    GX_PROJECT_DIR.mkdir(parents=True, exist_ok=True)
    with open(GX_PROJECT_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
