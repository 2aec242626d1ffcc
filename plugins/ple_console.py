"""Airflow plugin: the PLE operator's console (pages under /ple in the Airflow UI), per-run
links on the reorganization DAG runs, and the run-mode notes on DAG runs."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from ple.orchestration import run_notes
from ple.ui.app import app

PREFIX = "/ple"


class PleConsolePlugin(AirflowPlugin):
    name = "ple_console"
    fastapi_apps: ClassVar[list[dict]] = [{"app": app, "url_prefix": PREFIX, "name": "PLE console"}]
    external_views: ClassVar[list[dict]] = [
        {
            "name": "CTB reorganization",
            "href": f"{PREFIX}/reorganization",
            "url_route": "ctb-reorganization",
            "category": "PLE",
        },
        {"name": "Data quality", "href": f"{PREFIX}/data-quality", "url_route": "ple-data-quality", "category": "PLE"},
        {"name": "DOL imports", "href": f"{PREFIX}/dol-imports", "url_route": "ple-dol-imports", "category": "PLE"},
        {
            "name": "Data Docs",
            "href": f"{PREFIX}/data-docs/index.html",
            "url_route": "ple-data-docs",
            "category": "PLE",
        },
        {
            "name": "Ledger of this run",
            "href": f"{PREFIX}/reorganization?run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "ple-run-ledger",
        },
    ]
    listeners: ClassVar[list] = [run_notes]
