"""Command line for everything that is not a DAG run: `python -m ple.cli --help`.

The Makefile wraps these commands; each acts on the database of the connection `ctb_postgres`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from ple import config
from ple.errors import BadInput, PermanentError


def _devtools(module: str):
    """A development tool (devtools/ple_dev, outside the shipped package): importable where the
    repository's devtools/ is on the path, as the Makefile sets it."""
    import importlib

    try:
        return importlib.import_module(f"ple_dev.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("ple_dev", f"ple_dev.{module}"):
            raise
        raise BadInput(
            f"this is a development command: it needs the repository's devtools/ on PYTHONPATH "
            f"(run it through make, or PYTHONPATH=plugins:devtools); {exc.name} is not importable"
        ) from exc


def _cmd_db(args) -> int:
    embedded_pg = _devtools("embedded_pg")

    if args.action == "start":
        server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
        print(embedded_pg.ensure_database(server, config.EMBEDDED_PG_DATABASE))
    elif args.action == "stop":
        embedded_pg.stop(config.EMBEDDED_PG_DIR)
    return 0


def _cmd_fixture(args) -> int:
    from ple.db import connect

    build = _devtools("fixture.builder").build

    with connect() as conn:
        print(
            f"building the PLE fixture ({args.state}) at scale {args.scale} "
            f"into {conn.info.dbname}@{conn.info.host}:{conn.info.port}"
        )
        report = build(
            conn,
            scale=args.scale,
            seed=args.seed,
            replace=args.replace,
            log=print if args.verbose else lambda _: None,
            state=args.state,
        )
    print(f"built {len(report.rows)} tables, {sum(report.rows.values()):,} rows in {report.seconds:.1f}s")
    _print_schema_summary(report.per_schema())
    return 0


def _print_schema_summary(summary: dict[str, tuple[int, int]]) -> None:
    print(f"  {'schema':<14}{'tables':>8}{'rows':>14}")
    for schema, (tables, rows) in summary.items():
        print(f"  {schema:<14}{tables:>8}{rows:>14,}")
    print(f"  {'total':<14}{sum(t for t, _ in summary.values()):>8}{sum(r for _, r in summary.values()):>14,}")


def _cmd_summary(_args) -> int:
    from ple.catalog import schema_summary
    from ple.db import connect

    with connect() as conn:
        _print_schema_summary(schema_summary(conn))
    return 0


def _executor(conn, mode: str, run_id: str | None = None, **options):
    import uuid

    from ple.reorg import plan as plan_module
    from ple.reorg.context import Mode, Settings
    from ple.reorg.executor import Executor

    settings = Settings(mode=Mode(mode), **{k: v for k, v in options.items() if v is not None})
    return Executor(conn, plan_module.load(), run_id or f"cli__{uuid.uuid4().hex[:12]}", settings)


def _cmd_lint(args) -> int:
    from ple.db import connect
    from ple.server import require_supported_server

    with connect() as conn:
        require_supported_server(conn)
        report = _executor(conn, "plan").lint(args.phase or None)
    print(report.render())
    return 0 if report.ok else 1


def _cmd_approve_dol_columns(args) -> int:
    """Approve exactly the columns the given DOL files would add to the live tables (read-only
    until the approval is recorded)."""
    from pathlib import Path

    from ple.db import connect
    from ple.dol import files, new_columns

    sources = []
    for given in map(Path, args.dol_columns):
        found = files.discover(given if given.is_dir() else given.parent)[0]
        sources += [i for i in found if given.is_dir() or i.path.resolve() == given.resolve()]
    with connect() as conn:
        planned = new_columns.planned(conn, sources)
        if not planned:
            print(f"the {len(sources)} files add no column to the DOL tables: nothing to approve")
            return 0
        approval_id = new_columns.approve(conn, planned, args.approver, via="cli", note=args.note)
    listed = "\n  ".join(a.describe() for a in planned)
    print(
        f"APPROVED: {new_columns.fingerprint(planned).describe()} by {args.approver} (approval {approval_id}):\n  {listed}"
    )
    return 0


def _cmd_approve(args) -> int:
    if args.dol_columns:
        return _cmd_approve_dol_columns(args)
    from ple import approval
    from ple.db import connect
    from ple.reorg import decisions
    from ple.reorg.plan import load

    plan = load()
    with connect() as conn:
        if args.revoke:
            revoked = approval.revoke(conn, args.revoke, args.approver, args.note)
            print(f"REVOKED: {revoked['verdict']} {revoked['approval_id']} ({revoked['subject']}, {revoked['scope']})")
            return 0
        decided = decisions.for_connection(conn)
        fingerprint = decisions.fingerprint(plan, decided)
        if args.phase:
            plan.phase(args.phase)  # an unknown phase fails here, before anything is recorded
            fingerprint = fingerprint.scoped(approval.phase_scope(args.phase))
        if args.revert:
            from ple.reorg import leaf_lock
            from ple.reorg.revert import revert_fingerprint

            if args.revert != leaf_lock.PHASE:  # Phase 2 is the leaf lock, not a phase of steps
                plan.phase(args.revert)  # an unknown phase fails here, before anything is recorded
            fingerprint = revert_fingerprint(plan.sha256, args.revert)
        if args.reject:
            rejection_id = approval.reject(conn, fingerprint, args.approver, via="cli", note=args.note)
            print(f"REJECTED: {fingerprint.scope} ({fingerprint.describe()}) by {args.approver} (#{rejection_id})")
            return 0
        approval_id = approval.approve(
            conn,
            fingerprint,
            args.approver,
            via="cli",
            note=args.note,
            details={"covers": decided.covered()} if not args.revert else None,
            standing=args.standing,
        )
    covered = (
        f"plan + decisions {decided.source}" if decided.exists else "plan (no decisions recorded for this database)"
    )
    if decided.answers_sha256:
        covered += " + the recorded 1L answers (`python -m ple.cli decide-1l`)"
    how_long = "standing, until revoked" if args.standing else "once: for the next run of each phase it covers"
    print(f"APPROVED ({how_long}): {fingerprint.describe()} by {args.approver} (approval {approval_id}): {covered}")
    return 0


def _cmd_decide(args) -> int:
    """Record a new version of this database's decisions: every open question answered by its
    proposal (--accept proposed), or a decisions file (--import); exported to the decisions file."""
    from ple.db import connect, transaction
    from ple.reorg import decisions, proposals
    from ple.reorg.plan import load

    plan = load()
    with connect() as conn:
        with transaction(conn, read_only=True):
            current = decisions.for_connection(conn)
            if args.import_file:
                text = Path(args.import_file).read_bytes()
                decided = decisions.parse(text, args.import_file, conn.info.dbname)
                how = f"imported from {args.import_file}"
            else:
                decided = proposals.propose(conn, plan, current)
                how = "proposals accepted (decide --accept proposed)"
        with transaction(conn):
            version, path = decisions.record(conn, decided, args.by, via="cli", note=how)
    print(
        f"recorded decisions version {version} ({how}) by {args.by}, exported to {path}: "
        f"{len(decided['actions'])} action decisions, {len(decided.get('targets', {}))} target decisions, "
        f"{len(decided.get('guards', {}).get('accept', {}))} accepted guards; review them (the console, or the file), "
        "then `make approve APPROVER=<name>`: approvals of earlier decisions no longer hold"
    )
    return 0


def _cmd_decide_1l(args) -> int:
    """Phase 1L: without --answer, each pending question with its live count, answer in force and
    candidate answers; with it, record a person's answer (append-only, who and when)."""
    from ple.db import connect, transaction
    from ple.reorg import pending
    from ple.reorg.plan import load

    plan = load()
    with connect() as conn:
        if args.answer is None:
            with transaction(conn, read_only=True):
                print(pending.report(conn, plan))
            return 0
        if not args.table or not args.by:
            raise BadInput("decide-1l --answer needs --table and --by (who decided)")
        answer = pending.record(conn, plan, args.table, args.answer, args.by, via="cli", note=args.note)
    print(f"ANSWERED {args.table}: {answer.line()} (answer {answer.answer_id})")
    if answer.action:
        print("carry it out: approve the plan with the answers (`make approve APPROVER=<name>`), then run phase 1l")
    return 0


def _cmd_run(args) -> int:
    """Run phases without Airflow (the same executor the DAGs use): plan or apply."""
    from ple.db import connect
    from ple.reporting import emit

    with connect() as conn:
        executor = _executor(
            conn,
            args.mode,
            args.run_id,
            rehearse_conn_id=args.rehearse_conn_id,
            rehearse_budget_seconds=args.rehearse_budget_seconds,
        )
        phases = args.phase or [p.phase for p in executor.declared.phases if p.steps]
        rehearsals = []
        for phase_id in phases:
            preflight = executor.preflight(phase_id)
            emit(preflight.text)
            rehearsals.append(preflight)
            for step in executor.declared.phase(phase_id).steps:
                emit(executor.run_step(step.step_id).text)
            emit(executor.verify(phase_id).text)
            emit(executor.freeze(phase_id).text)
    if executor.rehearsing:  # every phase is rehearsed; then the command fails if one was not clean
        from ple.reorg.rehearse import require_clean

        for report in rehearsals:
            require_clean(report)
    blocked = [r.step_id for r in rehearsals if r.status == "planned" and r.summary.get("blocking")]
    if blocked:  # every phase is planned; then the command fails if a lint failed, as the plan DAG run does
        from ple.errors import PlanRejected

        raise PlanRejected(f"lint: FAILED in {', '.join(blocked)}; apply would refuse it (the report above says why)")
    return 0


def _cmd_report(args) -> int:
    from ple.db import connect
    from ple.reorg import ledger

    with connect() as conn:
        print(ledger.report(conn, args.phase))
    return 0


def _cmd_revert(args) -> int:
    from ple.db import connect
    from ple.reorg import leaf_lock

    with connect() as conn:
        if args.phase == leaf_lock.PHASE:
            import uuid

            from ple.reorg.plan import load

            run_id = args.run_id or f"cli__revert_leaf_lock__{uuid.uuid4().hex[:8]}"
            print(leaf_lock.revert(conn, load(), run_id, apply=args.mode == "apply"))
            return 0
        executor = _executor(conn, args.mode, args.run_id)
        for report in executor.revert_phase(args.phase):
            print(report.text)
    return 0


def _cmd_leaf_lock(args) -> int:
    """Phase 2 without Airflow (what ctb_phase_2_leaf_lock runs): plan or apply."""
    import uuid

    from ple.db import connect
    from ple.reorg import leaf_lock
    from ple.reorg.plan import load

    run_id = args.run_id or f"cli__leaf_lock__{uuid.uuid4().hex[:8]}"
    with connect() as conn:
        print(leaf_lock.run(conn, load(), run_id, apply=args.mode == "apply"))
    return 0


def _cmd_cleanup(args) -> int:
    """plan: the rehearsal's counts and fingerprint; apply: the approved cleanup."""
    import uuid

    from ple import cleanup
    from ple.db import connect

    run_id = args.run_id or f"cli__{uuid.uuid4().hex[:12]}"
    apply = args.mode == "apply"
    with connect() as conn:
        if apply:
            results = cleanup.apply(conn, run_id, steps=args.step)
        else:
            shown = cleanup.preview(conn, steps=args.step)
            results = shown.results
    for result in results.values():
        print(result.describe(apply))
    if apply:
        print(f"run id {run_id}; undo with: python -m ple.cli cleanup-undo --run-id {run_id}")
    else:
        print(f"preview {shown.fingerprint.describe()}; approve with {cleanup.APPROVE_HOW}")
    return 0


def _cmd_cleanup_approve(args) -> int:
    from ple import cleanup
    from ple.db import connect

    with connect() as conn:
        shown = cleanup.preview(conn, steps=args.step)
        for result in shown.results.values():
            print(result.describe(False))
        approval_id = cleanup.approve(conn, shown, args.approver, via="cli", note=args.note)
    print(f"APPROVED: {shown.fingerprint.describe()} by {args.approver} (approval {approval_id})")
    return 0


def _cmd_cleanup_undo(args) -> int:
    from ple import cleanup
    from ple.db import connect

    with connect() as conn:
        report = cleanup.undo(conn, args.run_id)
    for what, outcomes in report.tables.items():
        print(f"{what}: " + ", ".join(f"{outcome} {rows:,}" for outcome, rows in outcomes.items()))
    for line in report.unresolved:
        print(f"NOT RESTORED: {line}", file=sys.stderr)
    return 0 if report.complete else 1


def _cmd_audit(_args) -> int:
    from ple.audit.numbers import compute
    from ple.db import connect
    from ple.reporting import table

    with connect() as conn:
        print(table(list(compute(conn).items()), ("number", "value")))
    return 0


def _cmd_audit_accept(args) -> int:
    from ple.audit import history
    from ple.db import connect

    with connect() as conn:
        accepted = history.accept(conn, args.approver, args.run_id, via="cli", note=args.note)
    print(f"ACCEPTED as the nightly audit's baseline: {accepted.describe()}")
    return 0


def _cmd_airflow(args) -> int:
    """A local Airflow deployment on this bundle (make airflow / make airflow-stop)."""
    local_airflow = _devtools("local_airflow")

    deployment = local_airflow.deployment()
    if args.action == "start":
        print(local_airflow.describe(local_airflow.start(deployment)))
    else:
        print("stopped: " + (", ".join(local_airflow.stop(deployment)) or "nothing was running"))
    return 0


def main(argv: list[str] | None = None) -> int:
    from ple.reporting import show_reports_on_stdout

    show_reports_on_stdout()
    parser = argparse.ArgumentParser(prog="ple", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL (demo and tests)")
    db.add_argument("action", choices=["start", "stop"])
    db.set_defaults(func=_cmd_db)

    fixture = sub.add_parser("fixture", help="build the pre-reorganization PLE database")
    fixture.add_argument("--scale", type=float, default=0.01)
    fixture.add_argument("--seed", type=int, default=None)
    fixture.add_argument("--replace", action="store_true", help="rebuild a fixture this builder made before")
    fixture.add_argument("--verbose", action="store_true", help="print every table as it is built")
    fixture.add_argument(
        "--state",
        choices=["pre-plan", "production", "production-2026-03"],
        default="pre-plan",
        help="pre-plan: the database the plan assumes; production: the twin of the real one (2026-02-20); "
        "production-2026-03: that twin with what changed up to 2026-03-12 (CTB governance, Phase 3)",
    )
    fixture.set_defaults(func=_cmd_fixture)

    summary = sub.add_parser("summary", help="tables and rows per schema of the target database")
    summary.set_defaults(func=_cmd_summary)

    lint = sub.add_parser("lint", help="lint the CTB plan against the live catalog (writes nothing)")
    lint.add_argument("--phase", action="append", help="only this phase (repeatable)")
    lint.set_defaults(func=_cmd_lint)

    decide = sub.add_parser("decide", help="write the decisions file of the database ctb_postgres names")
    how = decide.add_mutually_exclusive_group(required=True)
    how.add_argument("--accept", choices=["proposed"], help="accept every proposal not decided yet")
    how.add_argument("--import", dest="import_file", metavar="FILE", help="record this decisions file as a new version")
    decide.add_argument(
        "--by", default=os.environ.get("DECIDER") or getpass.getuser(), help="who decides (default: $DECIDER, the user)"
    )
    decide.set_defaults(func=_cmd_decide)

    approve = sub.add_parser("approve", help="record an approval of the exact current plan file and decisions file")
    approve.add_argument("--approver", required=True)
    approve.add_argument("--note")
    approve.add_argument("--revert", metavar="PHASE", help="approve reverting this phase instead of applying the plan")
    approve.add_argument("--phase", help="approve this phase only (default: the whole plan, every phase)")
    approve.add_argument(
        "--standing", action="store_true", help="every run until revoked (default: the next run of each phase, once)"
    )
    approve.add_argument("--reject", action="store_true", help="record a rejection: the scope is vetoed until approved")
    approve.add_argument(
        "--revoke", type=int, metavar="NUMBER", help="revoke this approval or rejection (--approver: who revokes)"
    )
    approve.add_argument(
        "--dol-columns",
        nargs="+",
        metavar="PATH",
        help="approve the columns these DOL files (or landing folders) would add to the live tables (add_columns)",
    )
    approve.set_defaults(func=_cmd_approve)

    run = sub.add_parser("run", help="run phases without Airflow (plan: read-only; apply: needs an approval)")
    run.add_argument("--mode", choices=["plan", "apply", "rehearse"], default="plan")
    run.add_argument("--phase", action="append", help="only this phase (repeatable); default every phase with actions")
    run.add_argument("--run-id")
    run.add_argument(
        "--rehearse-conn-id",
        help="rehearse on this Airflow connection (a copy of the target, e.g. a Neon branch) instead of the target",
    )
    run.add_argument(
        "--rehearse-budget-seconds",
        type=float,
        help="rehearsing on the target: the longest its one transaction may hold its locks (default 30)",
    )
    run.set_defaults(func=_cmd_run)

    lock = sub.add_parser(
        "leaf-lock", help="Phase 2, the leaf lock (plan: what it would do; apply: Phase 1 frozen, the plan approved)"
    )
    lock.add_argument("--mode", choices=["plan", "apply"], default="plan")
    lock.add_argument("--run-id")
    lock.set_defaults(func=_cmd_leaf_lock)

    report = sub.add_parser("report", help="the ledger report (last attempt of every step)")
    report.add_argument("--phase")
    report.set_defaults(func=_cmd_report)

    revert = sub.add_parser(
        "revert",
        help="undo an applied phase, or the leaf lock (--phase 2) (plan: what it would do; apply: needs `approve --revert PHASE`)",
    )
    revert.add_argument("--phase", required=True)
    revert.add_argument("--mode", choices=["plan", "apply"], default="plan")
    revert.add_argument("--run-id")
    revert.set_defaults(func=_cmd_revert)

    cleanup = sub.add_parser(
        "cleanup", help="the Phase 2C cleanup (plan: a rolled-back rehearsal; apply: needs cleanup-approve)"
    )
    cleanup.add_argument("--mode", choices=["plan", "apply"], default="plan")
    cleanup.add_argument("--run-id")
    cleanup.add_argument("--step", action="append", help="only this step (repeatable; default: every step)")
    cleanup.set_defaults(func=_cmd_cleanup)

    cleanup_approve = sub.add_parser(
        "cleanup-approve", help="preview the Phase 2C cleanup and approve exactly that preview (definition and counts)"
    )
    cleanup_approve.add_argument("--approver", required=True)
    cleanup_approve.add_argument("--note")
    cleanup_approve.add_argument(
        "--step", action="append", help="approve only this step's preview (repeatable; default: every step)"
    )
    cleanup_approve.set_defaults(func=_cmd_cleanup_approve)

    undo = sub.add_parser("cleanup-undo", help="put back every row a cleanup run changed or removed")
    undo.add_argument("--run-id", required=True)
    undo.set_defaults(func=_cmd_cleanup_undo)

    audit = sub.add_parser("audit", help="the Phase 2C audit numbers of the target database")
    audit.set_defaults(func=_cmd_audit)

    accept = sub.add_parser(
        "audit-accept", help="accept an audit run's numbers (default: the latest run) as the regression baseline"
    )
    accept.add_argument("--approver", required=True)
    accept.add_argument("--run-id", help="the ctb_nightly_audit run to accept (default: the latest)")
    accept.add_argument("--note")
    accept.set_defaults(func=_cmd_audit_accept)

    demo = sub.add_parser("demo", help="the whole product on the embedded database (make demo)")
    demo.set_defaults(func=lambda _args: _devtools("demo").main())

    airflow = sub.add_parser("airflow", help="a local Airflow (api-server, scheduler, dag-processor, triggerer)")
    airflow.add_argument("action", choices=["start", "stop"])
    airflow.set_defaults(func=_cmd_airflow)

    decide_1l = sub.add_parser(
        "decide-1l", help="Phase 1L: show the pending questions, or record an answer (a sub-hub, archive, keep_pending)"
    )
    decide_1l.add_argument("--table", help="the pending table, e.g. company.pipeline_events")
    decide_1l.add_argument("--answer", help="a sub-hub of the plan's leaf_lock, archive, or keep_pending")
    decide_1l.add_argument("--by", help="who decided")
    decide_1l.add_argument("--note")
    decide_1l.set_defaults(func=_cmd_decide_1l)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
