"""Names every part of the bundle agrees on: connection ids, variables, paths, tags.

One module so that a DAG, a test and a CLI command can never disagree about a name.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = REPO_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
PLAN_FILE = INCLUDE_DIR / "plan" / "ctb_plan.yaml"
PLAN_SCHEMA_FILE = INCLUDE_DIR / "plan" / "ctb_plan.schema.json"
INVENTORY_FILE = INCLUDE_DIR / "reference" / "ple_schema_inventory.json"
FIXTURE_SPEC_FILE = INCLUDE_DIR / "fixture" / "ple_fixture.yaml"
DOL_LAYOUTS_FILE = INCLUDE_DIR / "dol" / "layouts" / "layouts_by_year.csv"
DOL_SAMPLE_DIR = INCLUDE_DIR / "dol" / "samples"

# The target database. AIRFLOW_CONN_CTB_POSTGRES=postgresql://... points everything at any database.
CTB_CONN_ID = "ctb_postgres"

# Alerting: connection ids and variables are optional; a missing one only logs a warning.
SLACK_WEBHOOK_CONN_ID = "ple_slack_webhook"
SMTP_CONN_ID = "ple_smtp"
ALERT_EMAIL_TO_VARIABLE = "ple_alert_email_to"
ALERT_EMAIL_FROM_VARIABLE = "ple_alert_email_from"
AUDIT_SUCCESS_SUMMARY_VARIABLE = "ple_audit_success_summary"

# The DOL import's landing folder defaults to this Variable, then to the project's sample folder.
DOL_LANDING_DIR_VARIABLE = "dol_landing_dir"
DOL_DEFAULT_LANDING_DIR = REPO_ROOT / "data" / "dol_landing"
# The nightly fetch from DOL's EFAST2 server (plugins/ple/dol/fetch.py): on unless PLE_DOL_FETCH=false;
# the archives and what each last answered live in <landing folder>/efast2 unless PLE_DOL_ARCHIVE_DIR.
DOL_FETCH = os.environ.get("PLE_DOL_FETCH", "true").lower() not in ("0", "false", "no", "off")
DOL_ARCHIVE_SUBDIR = "efast2"
DOL_ARCHIVE_DIR_ENV = "PLE_DOL_ARCHIVE_DIR"
# The DOL tables' read-only guard triggers let writes through when this transaction setting holds
# this value; the import sets it transaction-locally (set_config(..., true)) in each of its transactions.
DOL_GUARD_SETTING = os.environ.get("PLE_DOL_GUARD_SETTING", "dol.import_mode")
DOL_GUARD_VALUE = os.environ.get("PLE_DOL_GUARD_VALUE", "active")

# The nightly audit's schedule can be changed without editing code.
AUDIT_SCHEDULE_VARIABLE_ENV = "PLE_AUDIT_SCHEDULE"
DEFAULT_AUDIT_SCHEDULE = "0 3 * * *"
DOL_IMPORT_SCHEDULE_ENV = "PLE_DOL_IMPORT_SCHEDULE"
DEFAULT_DOL_IMPORT_SCHEDULE = "0 2 * * *"

# The schema where the tool keeps its own state (ledger, approvals, snapshots, audit history).
OPS_SCHEMA = "ple_ops"

OWNER = "ple-data-platform"
TAGS = frozenset(
    {"ctb", "dol", "audit", "nightly", "manual", "import", "data-quality", "leaf-lock"}
    | {f"phase-1{letter}" for letter in "abcdefghijkl"}
    | {"phase-2", "phase-2c", "reorganization"}
)

# Retry policy for transient failures: retries with exponential backoff. Overridable for tests and
# demos because `airflow dags test` really waits between tries.
TASK_RETRIES = int(os.environ.get("PLE_TASK_RETRIES", "3"))
TASK_RETRY_DELAY_SECONDS = float(os.environ.get("PLE_TASK_RETRY_DELAY_SECONDS", "30"))
TASK_MAX_RETRY_DELAY_SECONDS = float(os.environ.get("PLE_TASK_MAX_RETRY_DELAY_SECONDS", "600"))

# Embedded PostgreSQL used when nothing else is configured (demo and tests).
EMBEDDED_PG_DIR = Path(os.environ.get("PLE_PG_DIR", str(REPO_ROOT / ".pgdata")))
EMBEDDED_PG_PORT = int(os.environ.get("PLE_PG_PORT", "54329"))
EMBEDDED_PG_DATABASE = "ple"
