"""`make demo`: the product end to end on the embedded PostgreSQL, one step after another.

Each step is a real DAG run (`airflow dags test`, no scheduler needed) or a documented command;
the demo stops at the first failure and says which step failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ple.catalog import schema_summary
from ple.db import connect
from ple.reporting import REPORT_PREFIX

DEMO_SCALE = float(os.environ.get("PLE_DEMO_SCALE", "0.01"))


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 90 - len(text)), flush=True)


def run_dag(dag_id: str, conf: str | None = None, expect_success: bool = True) -> str:
    args = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf:
        args += ["-c", conf]
    started = time.monotonic()
    result = subprocess.run(args, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = "success" if "state=success" in result.stdout.split("DagRun Finished")[-1] else "failed"
    print(f"airflow dags test {dag_id} {conf or ''} -> {state} in {time.monotonic() - started:.1f}s", flush=True)
    if (state == "success") != expect_success:
        print(result.stdout[-6000:])
        raise SystemExit(f"demo step failed: {dag_id}")
    return result.stdout


def print_reports(output: str) -> None:
    """The report lines the DAG's tasks printed, without Airflow's log lines."""
    for line in output.splitlines():
        if line.startswith(REPORT_PREFIX):
            print("  " + line)


def print_summary(title: str) -> None:
    _banner(title)
    with connect() as conn:
        summary = schema_summary(conn)
    print(f"  {'schema':<14}{'tables':>8}{'rows':>14}")
    for schema, (tables, rows) in summary.items():
        print(f"  {schema:<14}{tables:>8}{rows:>14,}")


def main() -> int:
    from ple.cli import main as cli

    _banner(f"1. build the pre-reorganization PLE database (scale {DEMO_SCALE})")
    cli(["fixture", "--scale", str(DEMO_SCALE), "--replace"])

    _banner("2. nightly Phase 2C audit (ctb_nightly_audit)")
    output = run_dag("ctb_nightly_audit")
    print_reports(output)

    print_summary("tables and rows per schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
