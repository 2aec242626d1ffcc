"""Plan lint: everything that can be wrong with the plan, found before any write.

Static checks need only the plan; live checks read the catalog and count rows in one read-only
transaction. Errors block `apply`; warnings and the document findings (where the source document
is wrong or silent, and what this plan decided) are printed with every report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

import psycopg
from psycopg import sql

from ple import governance
from ple.catalog import Catalog, dangling_triggers, read_catalog
from ple.errors import PlanRejected
from ple.reorg import decisions as decisions_module
from ple.reorg import guards, merge_mapping, reconcile, tool_changes
from ple.reorg.actions import fold, module_for, relocate
from ple.reorg.actions import merge as merge_action
from ple.reorg.context import Context, Settings
from ple.reorg.decisions import Decisions
from ple.reorg.findings import Finding, LintReport
from ple.reorg.plan import STAGE_OF, STAGES, Plan, Step, new_column_names
from ple.reorg.reconcile import Status
from ple.sqlutil import qualified


def lint_static(plan: Plan, phases: list[str] | None = None) -> LintReport:
    report = LintReport()
    counted = Counter(a.kind for a in plan.actions)
    summary = {k: v for k, v in plan.document_summary.items() if k != "TOTAL"}
    for kind in sorted(set(summary) | set(counted)):
        if summary.get(kind, 0) != counted.get(kind, 0):
            report.document.append(
                Finding(
                    "summary-mismatch",
                    kind,
                    f"the document's Action Summary says {summary.get(kind, 0)}, its detailed tables list {counted.get(kind, 0)}",
                )
            )
    if plan.document_summary.get("TOTAL") != len(plan.actions):
        report.document.append(
            Finding(
                "summary-mismatch",
                "TOTAL",
                f"the Action Summary says {plan.document_summary.get('TOTAL')}, the detailed tables list {len(plan.actions)} actions",
            )
        )
    for phase in plan.phases:
        if phase.decision:
            report.document.append(Finding("decision", f"phase {phase.phase}", phase.decision))
        for action in phase.actions:
            if action.decision:
                report.document.append(
                    Finding("decision", f"{phase.phase} {action.kind} {action.source}", action.decision)
                )
    for name, target in plan.merge_targets.items():
        if target.decision:
            report.document.append(Finding("decision", f"merge target {name}", target.decision))

    sources = Counter(a.source for a in plan.actions)
    for table, n in sources.items():
        if n > 1:
            report.errors.append(Finding("claimed-twice", table, f"{n} actions take this table as their source"))
    relocated_to: dict[str, str] = {}
    for action in plan.actions:
        destinations = []
        if action.kind in ("ARCHIVE", "MOVE"):
            destinations.append(action.target)
        if action.kind in ("MERGE", "MERGE_JSONB", "MERGE_COLS"):
            destinations.append(plan.archive_name(action.source))
        for destination in destinations:
            if destination in relocated_to:
                report.errors.append(
                    Finding(
                        "claimed-twice",
                        destination,
                        f"both {relocated_to[destination]} and {action.source} would become it",
                    )
                )
            relocated_to[destination] = action.source
            if destination in sources:
                report.errors.append(
                    Finding(
                        "claimed-twice",
                        destination,
                        f"{action.source} would become a table another action uses as its source",
                    )
                )
    moved_away = {a.source for a in plan.actions if a.kind in ("ARCHIVE", "MOVE", "MERGE")}
    merge_targets_used: dict[str, list] = defaultdict(list)
    for action in plan.actions:
        if action.kind in ("MERGE", "MERGE_JSONB", "MERGE_COLS") and action.target in moved_away:
            report.errors.append(
                Finding(
                    "target-moves", action.target, f"{action.source} merges into a table the plan moves or archives"
                )
            )
        if action.kind == "MERGE":
            if action.target not in plan.merge_targets:
                report.errors.append(
                    Finding(
                        "no-target-spec",
                        action.target,
                        "MERGE target without an entry in merge_targets (discriminator column)",
                    )
                )
            if not action.value:
                report.errors.append(
                    Finding(
                        "no-discriminator", f"{action.phase} {action.source}", "MERGE without a discriminator value"
                    )
                )
            merge_targets_used[action.target].append(action)
    for target, actions in merge_targets_used.items():
        values = Counter(a.value for a in actions if a.value)
        for value, n in values.items():
            if n > 1:
                report.errors.append(
                    Finding("discriminator-collision", target, f"value {value!r} is given to {n} sources")
                )

    # The document's execution order, across phases: per table, stages must not go backwards.
    order = {p.phase: i for i, p in enumerate(plan.phases)}
    touches: dict[str, list] = defaultdict(list)
    for action in plan.actions:
        stage = STAGE_OF[action.kind]
        if stage is None:
            continue
        for table in {action.source, action.target} - {None}:
            touches[table].append((order[action.phase], STAGES.index(stage), action))
    for table, uses in touches.items():
        uses.sort(key=lambda u: u[0])
        for (p1, s1, a1), (p2, s2, a2) in pairwise(uses):
            if p1 != p2 and s2 < s1:
                report.errors.append(
                    Finding(
                        "order",
                        table,
                        f"{a2.kind} in phase {a2.phase} runs after {a1.kind} in phase {a1.phase}, against the document's execution order",
                    )
                )
            if a1.kind == "MERGE" and a2.kind == "KEEP_AS_MV" and table == a1.target:
                report.warnings.append(
                    Finding(
                        "mv-merge-target",
                        table,
                        f"merge target in phase {a1.phase} and reclassified as a materialized view in phase {a2.phase}",
                    )
                )
    for action in plan.actions:
        if action.kind == "PENDING":
            report.info.append(Finding("pending", action.source, f"awaiting a human decision: {action.question}"))
    if phases is not None:
        relevant = {t for p in phases for a in plan.phase(p).actions for t in (a.source, a.target) if t}

        def concerns(finding: Finding) -> bool:
            words = set(finding.where.replace(",", " ").split())
            return finding.code == "summary-mismatch" or bool(
                words & (relevant | set(phases) | {f"{p}" for p in phases})
            )

        report.document = [f for f in report.document if concerns(f)]
        report.warnings = [f for f in report.warnings if concerns(f)]
        report.info = [f for f in report.info if concerns(f)]
    return report


def lint_live(
    conn: psycopg.Connection,
    plan: Plan,
    phases: list[str] | None = None,
    catalog: Catalog | None = None,
    decisions: Decisions | None = None,
) -> LintReport:
    """Static lint, reconcile (every action's state with evidence), the guards, and everything
    the live database can tell about the plan as decided (read-only). `plan` is the declared plan;
    the decisions of this database shape the plan that is checked."""
    report = lint_static(plan, phases)
    catalog = catalog or read_catalog(conn)
    decisions = decisions if decisions is not None else decisions_module.for_connection(conn)
    effective = decisions_module.effective_plan(plan, decisions)
    verdicts = reconcile.reconcile(conn, plan, catalog, phases, effective)
    report.reconcile = reconcile.render(verdicts, decisions.as_table())
    by_source = {v.action.source: v for v in verdicts}
    for verdict in verdicts:
        if verdict.needs_decision and not _decided(verdict, decisions):
            report.errors.append(
                Finding(
                    "undecided",
                    verdict.step_id,
                    f"{verdict.action.source}: {verdict.status.value}: {verdict.evidence}. Proposal: "
                    f"{_proposal_text(verdict)}; decide in the UI (ctb_decide), or `make decide ACCEPT=proposed`, or edit and import {decisions.path}",
                )
            )
    ctx = Context(conn, effective, run_id="lint", settings=Settings(), catalog=catalog)
    selected = [effective.phase(p) for p in phases] if phases else list(effective.phases)
    for table, trigger, function, missing in dangling_triggers(conn):
        report.warnings.append(
            Finding(
                "dangling-trigger",
                table,
                f"trigger {trigger} ({function}) names {missing}, which does not exist: every write that fires it "
                "fails. The tool never fires it (disabled for its own writes); fix the function or drop the trigger",
            )
        )
    owner_gate = governance.detect(conn)
    if owner_gate:
        report.info.append(
            Finding("governance", "database", f"{owner_gate.describe()}: each step registers its new names first")
        )
        drift = governance.drift(conn)
        if drift:
            report.warnings.append(
                Finding(
                    "governance-drift",
                    "database",
                    f"the owner's registry and the catalog disagree, in the owner's drift classes (no step of the "
                    f"plan is blocked by it): {'; '.join(governance.drift_summary(drift))}",
                )
            )
    for phase in selected:
        for step in phase.steps:
            step_verdicts = [by_source[a.source] for a in step.actions if a.source in by_source]
            if any(v.needs_decision and not _decided(v, decisions) for v in step_verdicts):
                continue
            if step_verdicts and all(v.status in (Status.APPLIED, Status.ADOPTED) for v in step_verdicts):
                report.info.append(Finding("done", step.step_id, "; ".join(v.evidence for v in step_verdicts)))
                continue
            set_aside = {
                v.facts["occupant"]
                for v in step_verdicts
                if "set_aside" in decisions.for_action(v.action.source) and "occupant" in v.facts  # not set aside yet
            }
            try:
                module_for(step).check(ctx, step)
            except PlanRejected as exc:
                if not set_aside:
                    report.errors.append(Finding("catalog", step.step_id, str(exc)))
                    continue
            _lint_pending(ctx, step, report, set_aside)
            report.errors += module_for(step).lint(ctx, step)
        for action in plan.phase(phase.phase).pending:
            if not catalog.exists(action.source):
                report.warnings.append(Finding("catalog", action.source, "pending table does not exist"))
    for guard in guards.inspect(conn, effective, catalog, decisions, phases):
        if guard.blocks:
            report.errors.append(
                Finding(f"guard-{guard.kind}", guard.step_id, f"{guard.key}: {guard.message}; {guard.handling}")
            )
        else:
            report.guards.append(
                Finding(f"guard-{guard.kind}", guard.step_id, f"{guard.key}: {guard.message}; {guard.handling}")
            )
    return report


def _decided(verdict: reconcile.Verdict, decisions: Decisions) -> bool:
    if verdict.proposal is not None and not any(
        k in decisions.for_action(verdict.action.source)
        for k in ("skip", "adopt", "set_aside", "retarget", "fold_as_jsonb")
    ):
        return False
    if verdict.target_proposal is not None:
        entry = decisions.targets.get(verdict.proposal_target) or {}
        return all(k in entry for k in verdict.target_proposal)
    return True


def _proposal_text(verdict: reconcile.Verdict) -> str:
    parts = []
    if verdict.proposal:
        parts.append(f"actions.{verdict.action.source}: {verdict.proposal}")
    if verdict.target_proposal:
        parts.append(f"targets.{verdict.proposal_target}: {verdict.target_proposal}")
    return "; ".join(parts) or "none: fix the database or the plan"


def _lint_relocation(
    ctx: Context, step_id: str, source: str, target: str, report: LintReport, set_aside: frozenset = frozenset()
) -> None:
    for collision in relocate.name_collisions(ctx.conn, ctx.catalog, source, target):
        if collision not in set_aside:  # a decided set-aside frees the name first
            report.errors.append(Finding("name-collision", step_id, f"{collision} already exists"))


def _lint_pending(ctx: Context, step: Step, report: LintReport, set_aside=frozenset()) -> None:
    if step.kind in ("ARCHIVE", "MOVE"):
        _lint_relocation(ctx, step.step_id, step.action.source, step.action.target, report, set_aside)
        return
    if step.kind == "MERGE":
        _lint_merge(ctx, step, report, set_aside)
        return
    if step.kind == "FOLD":
        _lint_fold(ctx, step, report, set_aside)


def _lint_merge(ctx: Context, step: Step, report: LintReport, set_aside=frozenset()) -> None:
    action = step.action
    catalog = ctx.catalog
    _lint_relocation(ctx, step.step_id, action.source, ctx.plan.archive_name(action.source), report, set_aside)
    spec = ctx.plan.merge_targets.get(action.target)
    target = catalog.get(action.target)
    source = catalog.get(action.source)
    if spec is None or target is None or source is None:
        return
    mapping = merge_mapping.mapping(action, spec, source, target, catalog)
    if mapping.uncovered:
        report.errors.append(
            Finding(
                "required-column",
                step.step_id,
                f"target columns {mapping.uncovered} are NOT NULL and nothing fills them",
            )
        )
    for source_column, target_column in mapping.nullable_copies:
        nulls = ctx.conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
                qualified(action.source), sql.Identifier(source_column)
            )
        ).fetchone()[0]
        if nulls:
            report.errors.append(
                Finding(
                    "required-column",
                    step.step_id,
                    f"{nulls} rows have NULL {source_column}, but {action.target}.{target_column} is NOT NULL",
                )
            )
    if mapping.provenance_only:
        report.info.append(
            Finding(
                "provenance-only", step.step_id, f"kept only in ctb_source_row: {', '.join(mapping.provenance_only)}"
            )
        )
    column = target.column(spec.discriminator_column)
    if column is not None:
        if column.type_category != "S":
            report.errors.append(
                Finding(
                    "discriminator-type", step.step_id, f"{action.target}.{column.name} is {column.type}, not a string"
                )
            )
        else:
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                qualified(action.target), sql.Identifier(column.name)
            )
            params: tuple = (action.value,)
            if target.column("ctb_source_table"):  # rows this source merged before are its own
                query += sql.SQL(" AND ctb_source_table IS DISTINCT FROM %s")
                params += (action.source,)
            clashes = ctx.conn.execute(query, params).fetchone()[0]
            if clashes:
                report.errors.append(
                    Finding(
                        "discriminator-collision",
                        step.step_id,
                        f"{clashes} rows of {action.target} already have {column.name} = {action.value!r}",
                    )
                )
    try:
        with ctx.conn.transaction():  # a savepoint: a query that fails here must not end the lint
            preview = merge_action.preview(ctx, step)
    except PlanRejected as exc:
        report.errors.append(Finding("merge", step.step_id, str(exc)))
        return
    except psycopg.Error as exc:
        report.errors.append(Finding("merge", step.step_id, f"the merge query does not run: {exc}".splitlines()[0]))
        return
    conflicts = preview["key_conflicts_kept_in_archive"]
    if conflicts and spec.on_key_conflict == "fail":
        report.errors.append(
            Finding("key-conflict", step.step_id, f"{conflicts} rows collide with {action.target}'s primary key")
        )
    elif conflicts:
        report.info.append(
            Finding(
                "key-conflict",
                step.step_id,
                f"{conflicts} rows share a key with {action.target}: the target keeps its row, the source row stays archived",
            )
        )


def _lint_fold(ctx: Context, step: Step, report: LintReport, set_aside=frozenset()) -> None:
    catalog = ctx.catalog
    errors_before = len(report.errors)
    target = catalog.get(step.target)
    if target is None:
        report.errors.append(Finding("catalog", step.step_id, f"{step.target} does not exist"))
        return
    keys = {a.join.target for a in step.actions}
    if len(keys) > 1:
        report.errors.append(
            Finding("join-key", step.step_id, f"side tables join {step.target} on different columns {sorted(keys)}")
        )
    for action in step.actions:
        _lint_relocation(ctx, step.step_id, action.source, ctx.plan.archive_name(action.source), report, set_aside)
        source = catalog.get(action.source)
        if source is None:
            continue
        join = action.join
        missing = []
        if source.column(join.source) is None:
            missing.append(f"{action.source}.{join.source}")
        if target.column(join.target) is None:
            missing.append(f"{step.target}.{join.target}")
        key_type_source = source.column(join.source)
        if join.via_table:
            via = catalog.get(join.via_table)
            if via is None:
                missing.append(join.via_table)
            else:
                missing += [
                    f"{join.via_table}.{c}" for c in (join.via_source, join.via_target) if via.column(c) is None
                ]
                key_type_source = via.column(join.via_target)
        if missing:
            report.errors.append(Finding("join-key", step.step_id, f"join columns missing: {', '.join(missing)}"))
            continue
        pairs = [(f"{step.target}.{join.target}", target.column(join.target), key_type_source)]
        if join.via_table:
            pairs.append(
                (f"{join.via_table}.{join.via_source}", via.column(join.via_source), source.column(join.source))
            )
        for name, column, other in pairs:
            if column.type != other.type:
                report.warnings.append(
                    Finding(
                        "join-key",
                        step.step_id,
                        f"{action.source} joins {name} ({column.type}) with a key of type {other.type}: compared as "
                        "text; a side row whose key is written otherwise matches no row and stays in the archive",
                    )
                )
        for name in new_column_names(action):
            if target.column(name) is not None and not tool_changes.recorded(
                ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN
            ):  # a column this fold added before it stopped is its own
                report.errors.append(Finding("column-exists", step.step_id, f"{step.target}.{name} already exists"))
        needed = [action.order_by] if action.order_by else []
        if action.pivot:
            needed += [action.pivot["key"], action.pivot["value"], action.pivot["latest_by"]]
        needed += [column for _, column in action.columns]
        for column in needed:
            if source.column(column) is None:
                report.errors.append(
                    Finding("column-missing", step.step_id, f"{action.source}.{column} does not exist")
                )
    if len(report.errors) == errors_before:
        for source, counts in fold.side_counts(ctx, step).items():
            if counts["unmatched"]:
                report.warnings.append(
                    Finding(
                        "unmatched",
                        step.step_id,
                        f"{counts['unmatched']} of {counts['rows']} rows of {source} match no row of {step.target}; "
                        "they stay in the archived side table",
                    )
                )
