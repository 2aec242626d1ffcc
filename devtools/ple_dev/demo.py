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
from ple.config import DOL_SAMPLE_DIR
from ple.db import connect
from ple.reorg.ledger import action_outcomes
from ple.reporting import report_line

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


def print_reports(output: str, only: tuple[str, ...] = ()) -> None:
    """The report lines the DAG's tasks printed (those containing one of `only`, if given),
    without Airflow's own log lines."""
    for line in filter(None, map(report_line, output.splitlines())):
        if not only or any(word in line for word in only):
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

    _banner("2. nightly Phase 2C audit, before anything changes (ctb_nightly_audit)")
    print_reports(run_dag("ctb_nightly_audit"))

    _banner("3. the reorganization in plan mode: lint, exact SQL, live counts; writes nothing")
    planned = run_dag("ctb_reorganization", '{"mode": "plan"}')
    print_lint_summary(planned)

    _banner("4. apply is refused until the exact plan file is approved")
    print("  (from Airflow, an apply run asks in Required Actions and waits; from the command line:)")
    if cli(["run", "--phase", "1a", "--mode", "apply"]) != 2:
        raise SystemExit("demo step failed: an unapproved apply was not refused")

    _banner(
        "5. APPROVING the plan, standing (make approve APPROVER=make-demo STANDING=1): recorded in ple_ops.approval; "
        "the demo applies twice, and a one-run approval would be asked for again"
    )
    cli(["approve", "--approver", "make-demo", "--standing", "--note", "approved by make demo on the embedded fixture"])

    _banner("6. apply every phase 1A-1K (ctb_reorganization, mode=apply)")
    run_dag("ctb_reorganization", '{"mode": "apply"}')
    cli(["report"])

    _banner("7. apply again: every action is already done, nothing changes")
    run_dag("ctb_reorganization", '{"mode": "apply"}')
    with connect() as conn:
        outcomes = action_outcomes(conn)
    print("  latest outcome of every action step: " + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()))

    _banner("8. Phase 2C cleanup (ctb_phase_2c_data_quality): preview, approve that preview, apply")
    print_reports(run_dag("ctb_phase_2c_data_quality", '{"mode": "plan"}'), only=("would touch", "BLOCKED"))
    cli(["cleanup-approve", "--approver", "make-demo", "--note", "approved by make demo"])
    print_reports(run_dag("ctb_phase_2c_data_quality", '{"mode": "apply"}'))

    _banner("9. nightly audit after the cleanup: thresholds and regressions checked by Great Expectations")
    print_reports(run_dag("ctb_nightly_audit"), only=("ok ", "BREACHED", "audit computed"))

    _banner("10. nightly DOL import of the shipped samples (dol_staging_import), twice")
    landing = f'{{"landing_dir": "{DOL_SAMPLE_DIR}", "fetch_efast2": false}}'
    print_reports(
        run_dag("dol_staging_import", landing), only=("│ file", "│ ---", "imported", "rows changed", "skipped")
    )
    print_reports(run_dag("dol_staging_import", landing), only=("already_imported",))
    print("  second import: every file already imported, no asset event, no row touched")

    print_summary("tables and rows per schema at the end")
    return production_twin(cli)


def production_twin(cli) -> int:
    """The same job on the database as it really stands: hand copies, dropped tables, guards.
    Commands, not DAG runs, to keep the demo short; the DAGs run the same executor (the tests run
    `ctb_reorganization` on the twin through `airflow dags test`)."""
    from ple.config import EMBEDDED_PG_DIR, EMBEDDED_PG_PORT
    from ple.reorg.decisions import DECISIONS_DIR_ENV
    from ple_dev import embedded_pg

    server = embedded_pg.start(EMBEDDED_PG_DIR, EMBEDDED_PG_PORT)
    os.environ["AIRFLOW_CONN_CTB_POSTGRES"] = embedded_pg.ensure_database(server, "ple_twin")
    os.environ.setdefault(DECISIONS_DIR_ENV, os.path.join(os.environ.get("AIRFLOW_HOME", "."), "decisions"))

    _banner(
        f"11. the PRODUCTION TWIN: PLE as it stood on 2026-02-20 (make fixture STATE=production, scale {DEMO_SCALE})"
    )
    cli(["fixture", "--state", "production", "--scale", str(DEMO_SCALE), "--replace"])

    _banner(
        "12. plan mode on the twin: the reconcile table (state, evidence, proposal of every action); writes nothing"
    )
    cli(["run", "--mode", "plan", "--phase", "1a"])

    _banner("13. accept the proposals (make decide ACCEPT=proposed), approve plan + decisions, apply 1A-1K")
    cli(["decide", "--accept", "proposed"])
    cli(["approve", "--approver", "make-demo", "--standing", "--note", "approved by make demo on the production twin"])
    cli(["run", "--mode", "apply"])
    cli(["report"])

    _banner("14. apply again on the twin: nothing changes")
    cli(["run", "--mode", "apply"])
    with connect() as conn:
        outcomes = action_outcomes(conn)
    print("  latest outcome of every action step: " + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()))
    print_summary("the production twin: tables and rows per schema at the end")
    return 0


def print_lint_summary(output: str) -> None:
    """The document findings and decisions of the first phase's lint, and the plan's size."""
    reports = list(filter(None, map(report_line, output.splitlines())))
    shown = [line for line in reports if "[summary-mismatch]" in line or "lint:" in line]
    for line in dict.fromkeys(shown):
        print("  " + line)
    print(
        f"  ... {sum('would run' in line for line in reports)} steps rendered with their SQL and live counts (see the task logs)"
    )


if __name__ == "__main__":
    sys.exit(main())
