"""The reorganization DAGs, built from the plan file: one DAG per phase, `ctb_reorganization`
running every phase in order, and `ctb_approve_plan` recording an approval from the UI.

A phase is one task group: preflight -> archive -> merge -> move -> add_pk -> reclassify -> verify
-> freeze, one task per step (a retry repeats one step), stages without steps left out. The phase
DAGs and `ctb_reorganization` use the same group builder, so `airflow dags test
ctb_reorganization` runs every phase to the end without a scheduler.

Across phases, the document's execution order is a per-table ordering (a table is archived before
anything merges, merged before it is moved or reclassified). Running the phases in document order
(1A..1K) honours it: the plan lint proves, for every table several phases touch, that its stages
never go backwards (e.g. outreach.bit_signals: merged in 1F, reclassified in 1G), and fails the
preflight if an edited plan ever breaks that.
"""

from __future__ import annotations

import json

from airflow.sdk import DAG, Param, TaskGroup, chain, get_current_context, get_parsing_context, task

from ple.orchestration import pending_questions
from ple.orchestration.approval_gate import approval_gate
from ple.orchestration.common import dag_arguments, duration_param, mode_param, optional_text_param
from ple.reorg.plan import STAGES, Phase, Plan, load, plan_sha256

PARAMS = {
    "mode": mode_param(
        "carry the phase out, refused unless this exact plan file is approved; "
        "plan also lints, renders the exact SQL and reports live counts",
        {"rehearse": "carry the phase out, verify it and roll it all back in one transaction (writes nothing)"},
    ),
    "lock_timeout": duration_param("2s", "SET LOCAL lock_timeout of every action transaction"),
    "statement_timeout": duration_param("30min", "SET LOCAL statement_timeout", hours=True),
    "lock_retries": Param(
        5, type="integer", minimum=1, maximum=20, description="tries per action on lock timeouts, with backoff"
    ),
    "large_table_rows": Param(
        1_000_000, type="integer", minimum=0, description="ADD_PK on tables with more rows takes the low-lock path"
    ),
    "backfill_batch_pages": Param(
        1000,
        type="integer",
        minimum=1,
        description="pages per batch transaction: the low-lock ADD_PK backfill, and a merge that bypasses a "
        "trigger on its live target (so application writes never wait for the whole merge)",
    ),
    "rehearse_conn_id": optional_text_param(
        "Rehearse on connection",
        "rehearse: the Airflow connection id of a copy of the target (e.g. a Neon branch) to rehearse on; "
        "empty: rehearse on the target itself, in one transaction bounded by rehearse_budget_seconds",
    ),
    "rehearse_budget_seconds": Param(
        30,
        type="number",
        minimum=0,
        description="rehearse on the target itself: the longest its one transaction may hold its locks; "
        "when spent, it rolls back and reports which steps were rehearsed",
    ),
}


def _executor():
    from ple.db import connect
    from ple.reorg.context import Settings
    from ple.reorg.executor import Executor

    context = get_current_context()
    conn = connect()
    return conn, Executor(conn, load(), context["run_id"], Settings.from_params(context["params"]))


def _report(result) -> dict:
    from ple.reporting import emit

    emit(result.text)
    return {"step": result.step_id, "status": result.status, **result.summary}


@task
def preflight(phase_id: str) -> dict:
    conn, executor = _executor()
    with conn:
        report = executor.preflight(phase_id)
    summary = _report(report)
    if executor.rehearsing:  # a rehearsal that found a problem is red, after its report is logged
        from ple.reorg.rehearse import require_clean

        require_clean(report)
    elif report.status == "planned" and summary.get("blocking"):
        # a plan whose lint fails is red too (after its report): apply would refuse it as shown
        from ple.errors import PlanRejected

        raise PlanRejected(
            f"{report.step_id}: lint: FAILED with {summary['blocking']} error(s); apply would refuse this phase "
            "(the report above names each error and its fix); nothing was written"
        )
    return summary


@task
def run_step(step_id: str) -> dict:
    conn, executor = _executor()
    with conn:
        return _report(executor.run_step(step_id))


@task
def verify(phase_id: str) -> dict:
    conn, executor = _executor()
    with conn:
        return _report(executor.verify(phase_id))


@task
def freeze(phase_id: str) -> dict:
    conn, executor = _executor()
    with conn:
        return _report(executor.freeze(phase_id))


@task
def carry_out(phase_id: str, source: str) -> dict:
    """Phase 1L: carry out what the recorded answer about `source` decides (a MOVE or ARCHIVE step
    of the plan as answered); nothing while it is unanswered or kept pending."""
    from ple.reporting import emit

    conn, executor = _executor()
    with conn:
        step = next(
            (s for s in executor.plan.phase(phase_id).steps if any(a.source == source for a in s.actions)), None
        )
        if step is None:
            emit(f"{source}: no answer decides an action (unanswered or keep_pending): it stays where it is")
            return {"source": source, "status": "pending"}
        return _report(executor.run_step(step.step_id))


def _plan_settings(context):
    from ple.reorg.context import Mode, Settings

    return Settings.from_params({**context["params"], "mode": Mode.PLAN})


def _reorganization_fingerprint(phase_ids: list[str]):
    """What the request shows, as the executor re-checks it in every apply transaction: one
    phase's scope, or the whole plan when the request shows every phase."""

    def fingerprint(conn, context):
        from ple.reorg.executor import Executor

        executor = Executor(conn, load(), context["run_id"], _plan_settings(context))
        if len(phase_ids) == 1:
            return executor.approval_of(phase_ids[0])
        return executor.fingerprint

    return fingerprint


def render_plan(phase_ids: list[str]):
    """The plan of these phases as plan mode shows it, with a summary first (what each step does
    to how many rows, what is done already or blocked, which functions break): lint, preflight,
    the exact SQL of every step, live counts. Read-only."""

    def render(conn, context) -> tuple[str, str]:
        from ple.reorg import pending
        from ple.reorg.executor import Executor

        executor = Executor(conn, load(), context["run_id"], _plan_settings(context))
        texts, summary = [], []
        for phase_id in phase_ids:
            if load().phase(phase_id).pending:
                texts.append(pending.report(conn, load()))
            checked = executor.preflight(phase_id)
            steps = [(step, executor.run_step(step.step_id)) for step in executor.plan.phase(phase_id).steps]
            texts += [checked.text, *(report.text for _, report in steps)]
            summary += summary_lines(executor.plan.phase(phase_id), checked, steps)
        with_steps = [p for p in phase_ids if executor.plan.phase(p).steps]
        if len(phase_ids) == 1 and with_steps:
            summary.append(_rehearsed(conn, context, phase_ids[0], texts))
        elif with_steps:
            summary.append(_rehearsed_in_order(conn, context, with_steps, texts))
        return "\n".join(summary), "\n\n".join(texts)

    return render


REHEARSAL_XCOM = "rehearsal"


def _rehearsed(conn, context, phase_id: str, texts: list[str]) -> str:
    """Rehearse the phase the request shows (rolled back; on `rehearse_conn_id` when given, else on
    the target within the lock budget). A rehearsal that is not clean ends the task red before
    anything is asked; a clean one is shown in the request and recorded with the approval, which
    then covers exactly the steps it rehearsed (executor: require_approval)."""
    from ple.reorg.context import Mode, Settings
    from ple.reorg.executor import Executor
    from ple.reorg.rehearse import require_clean
    from ple.reporting import emit

    settings = Settings.from_params({**context["params"], "mode": Mode.REHEARSE})
    report = Executor(conn, load(), context["run_id"], settings).preflight(phase_id)
    texts.append(report.text)
    if report.status != "rehearsed":
        emit("\n\n".join(texts))
    require_clean(report)
    steps = report.summary.get("steps", {})
    context["ti"].xcom_push(key=REHEARSAL_XCOM, value={phase_id: {"status": report.status, "steps": steps}})
    return f"- **rehearsed** (carried out, verified and rolled back): {len(steps)} step(s), no problem"


def _rehearsed_in_order(conn, context, phase_ids: list[str], texts: list[str]) -> str:
    """A request for several phases rehearses them in order in one transaction, each on the state
    the ones before it leave (rehearse.rehearse_phases; on `rehearse_conn_id` when given, else on
    the target within one lock budget for them all). Not clean: the task is red before anything
    is asked; clean: recorded with the approval per phase, as a phase's own request is."""
    from ple.reorg.context import Mode, Settings
    from ple.reorg.executor import Executor
    from ple.reorg.rehearse import rehearse_phases, require_clean
    from ple.reporting import emit

    settings = Settings.from_params({**context["params"], "mode": Mode.REHEARSE})
    report = rehearse_phases(Executor(conn, load(), context["run_id"], settings), phase_ids)
    texts.append(report.text)
    if report.status != "rehearsed":
        emit("\n\n".join(texts))
    require_clean(report)
    phases = report.summary["phases"]
    context["ti"].xcom_push(key=REHEARSAL_XCOM, value=phases)
    steps = sum(len(r["steps"]) for r in phases.values())
    return (
        f"- **rehearsed** (every phase in order, carried out, verified and rolled back in one transaction): "
        f"{len(phases)} phases, {steps} step(s), no problem"
    )


def _rehearsal_details(conn, context) -> dict:
    """What the approval records of the rehearsal its request showed."""
    rehearsal = context["ti"].xcom_pull(task_ids=context["ti"].task_id, key=REHEARSAL_XCOM)
    return {"rehearsal": rehearsal} if rehearsal else {}


def summary_lines(phase: Phase, checked, steps) -> list[str]:
    """Markdown: one line per step (kind, what it takes, where to, rows, done already or blocked),
    then what breaks."""
    lines = [f"**Phase {phase.phase.upper()}: {phase.title}** ({len(steps)} steps)"]
    if checked.summary.get("blocking"):
        lines.append(f"- **lint: {checked.summary['blocking']} blocking error(s): apply stops at the preflight**")
    for step, report in steps:
        what = " + ".join(f"`{a.source}`" for a in step.actions) + (f" → `{step.target}`" if step.target else "")
        rows = _rows(report.summary)
        state = {"already_done": ": done already, changes nothing"}.get(report.status, "")
        if "BLOCKED" in report.text:
            state = ": **BLOCKED** (see its SQL below)"
        aside = ", after setting a hand copy aside (decided)" if "set aside (decided)" in report.text else ""
        lines.append(f"- `{step.kind}` {what}{rows}{aside}{state}")
    broken = checked.summary.get("broken_functions") or []
    if broken:
        lines.append(
            f"- **breaks {len(broken)} function(s)** naming what this phase takes away (UndefinedTable after "
            "the step until edited): " + "; ".join(f"`{b}`" for b in broken)
        )
    return lines


def _rows(summary: dict) -> str:
    if "rows_to_merge" in summary:
        return (
            f": {summary['rows_to_merge']:,} rows merged, {summary['key_conflicts_kept_in_archive']:,} kept in archive"
        )
    if "side_tables" in summary:
        return f": side tables {summary['side_tables']} into {summary['target_rows']:,} rows"
    if isinstance(summary.get("rows"), int):
        return f": {summary['rows']:,} rows"
    if "set_aside_first" in summary:
        held = sum(v.get("rows", 0) for v in summary["set_aside_first"].values())
        return f": sets aside {held:,} rows first"
    return ""


def reorganization_gate(title: str, phase_ids: list[str]):
    return approval_gate(
        "approve",
        subject=f"Approve {title}",
        fingerprint=_reorganization_fingerprint(phase_ids),
        render=render_plan(phase_ids),
        approval_details=_rehearsal_details,
    )


def phase_group(phase: Phase) -> TaskGroup:
    with TaskGroup(group_id=f"phase_{phase.phase}", tooltip=phase.title) as group:
        tasks = [preflight.override(task_id="preflight")(phase.phase)]
        if phase.pending:  # 1L: the steps depend on the answers, known only at run time
            tasks += [carry_out.override(task_id=f"carry_out__{a.slug}")(phase.phase, a.source) for a in phase.pending]
        for stage in STAGES:
            steps = [s for s in phase.steps if s.stage == stage]
            if steps:
                with TaskGroup(group_id=stage):
                    tasks += [run_step.override(task_id=s.task_id)(s.step_id) for s in steps]
        tasks.append(verify.override(task_id="verify")(phase.phase))
        tasks.append(freeze.override(task_id="freeze")(phase.phase))
        chain(*tasks)
    return group


def _phase_doc(doc_md: str, phase: Phase) -> str:
    lines = [doc_md.strip(), "", f"## Phase {phase.phase.upper()}: {phase.title}", ""]
    lines += [
        f"- `{a.kind}` `{a.source}`"
        + (f" -> `{a.target}`" if a.target else "")
        + (f" (`{a.value}`)" if a.value else "")
        for a in phase.actions
    ]
    if phase.decision:
        lines += ["", f"Decision: {phase.decision}"]
    return "\n".join(lines)


def _dag(dag_id: str, doc_md: str, tag_names: list[str], params: dict = PARAMS) -> DAG:
    return DAG(schedule=None, **dag_arguments(dag_id, doc_md, tuple(tag_names), params))


PENDING_PARAMS = {
    **PARAMS,
    "mode": mode_param(
        "ask each unanswered question in Required Actions and record the answer with who gave it, then ask "
        "for an approval of the plan with the answers and carry them out; plan asks nothing and shows what "
        "the recorded answers would do"
    ),
    "redecide": Param(
        False,
        type="boolean",
        title="Re-decide",
        description="apply: ask every question again, also those answered before (the latest answer counts)",
    ),
}


def build_phase_dags(doc_md: str, plan: Plan | None = None) -> list[DAG]:
    """One DAG per phase; only the one Airflow is parsing for when it says so (a task of
    ctb_phase_1a runs in a process that builds ctb_phase_1a, not all twelve)."""
    plan = plan or load()
    wanted = get_parsing_context().dag_id
    dags = []
    for phase in plan.phases:
        if wanted is not None and wanted != f"ctb_phase_{phase.phase}":
            continue
        with _dag(
            f"ctb_phase_{phase.phase}",
            _phase_doc(doc_md, phase),
            ["ctb", f"phase-{phase.phase}", "manual"],
            PENDING_PARAMS if phase.pending else PARAMS,
        ) as dag:
            group = phase_group(phase)
            gate = reorganization_gate(f"phase {phase.phase.upper()}: {phase.title}", [phase.phase])
            chain(*pending_questions.questions(plan, phase.phase), gate, group)
        dags.append(dag)
    return dags


def build_reorganization_dag(doc_md: str, plan: Plan | None = None) -> DAG:
    plan = plan or load()
    with _dag("ctb_reorganization", doc_md, ["ctb", "reorganization", "manual"]) as dag:
        phases = [phase for phase in plan.phases if phase.steps]
        chain(
            reorganization_gate("the whole CTB reorganization (every phase)", [p.phase for p in phases]),
            *[phase_group(phase) for phase in phases],
        )
    return dag


# `airflow dags test` (airflow.sdk DAG.test) triggers its runs as this user: nobody signed in.
DAG_TEST_USER = "dag_test"


def _approver(typed: str | None, signed_in: str | None) -> str:
    """Who approves: the signed-in user who triggered the run (nobody can approve in another's
    name from the UI); the conf's `approver` only where no one is signed in (`airflow dags test`)."""
    from ple.errors import BadInput, NotApproved

    if signed_in and signed_in != DAG_TEST_USER:
        if typed and typed.strip() != signed_in:
            raise NotApproved(
                f"you are signed in as {signed_in}: an approval is recorded under your own name; "
                "give no approver in the run's conf"
            )
        return signed_in
    if not typed:
        raise BadInput(
            'approver: no signed-in user triggered this run (command line): give the name, conf {"approver": "<name>"}'
        )
    return typed


def build_approval_dag(doc_md: str) -> DAG:
    with DAG(
        schedule=None,
        **dag_arguments(
            "ctb_approve_plan",
            doc_md,
            ("ctb", "manual"),
            {
                "plan_sha256": Param(
                    plan_sha256(),
                    type="string",
                    pattern="^[0-9a-f]{64}$",
                    title="Plan SHA-256",
                    description="the checksum of include/plan/ctb_plan.yaml you reviewed (prefilled with the file's current one)",
                ),
                "note": optional_text_param("Note", "optional: what you checked, or a ticket"),
                "standing": Param(
                    False,
                    type="boolean",
                    title="Standing approval",
                    description="off: the approval covers each phase for the next run that applies it, once; "
                    "on: every run, until revoked (ctb_revoke_approval)",
                ),
            },
        ),
    ) as dag:

        @task
        def record_approval() -> dict:
            from ple import approval
            from ple.db import connect
            from ple.errors import NotApproved
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            # Not a form field: from the UI the approval is always the signed-in user's, and a field
            # that refused every name but the user's own only misled (it "always failed").
            dag_run = context["dag_run"]
            approver = _approver((dag_run.conf or {}).get("approver"), dag_run.triggering_user_name)
            plan = load()
            if params["plan_sha256"] != plan.sha256:
                raise NotApproved(
                    f"the plan file changed since this form was shown (now {plan.sha256}, form {params['plan_sha256']}): review it again"
                )
            from ple.reorg import decisions

            with connect() as conn:
                decided = decisions.for_connection(conn)
                covered = decided.covered()
                approval_id = approval.approve(
                    conn,
                    decisions.fingerprint(plan, decided),  # plan + this database's decisions + 1L answers
                    approver,
                    via="airflow-form",
                    note=params["note"] or None,
                    details={"covers": covered},
                    standing=params["standing"],
                )
            how_long = (
                "standing, until revoked" if params["standing"] else "each phase once, for the next run applying it"
            )
            emit(
                f"APPROVED the whole plan {plan.sha256} ({how_long}) by {approver} (approval {approval_id}), and with "
                "it, in this database:\n" + json.dumps(covered, indent=2, default=str)
            )
            return {"approval_id": approval_id, "plan_sha256": plan.sha256}

        record_approval()
    return dag


def build_leaf_lock_dag(doc_md: str) -> DAG:
    with DAG(
        schedule=None,
        **dag_arguments(
            "ctb_phase_2_leaf_lock",
            doc_md,
            ("ctb", "phase-2", "leaf-lock", "manual"),
            {
                "mode": mode_param(
                    "register the sub-hubs' tables and lock the leaf schemas (Phase 1 must be frozen, the plan approved)"
                )
            },
        ),
    ) as dag:

        @task
        def leaf_lock() -> dict:
            from ple.db import connect
            from ple.reorg import leaf_lock as lock
            from ple.reporting import emit

            context = get_current_context()
            with connect() as conn:
                emit(lock.run(conn, load(), context["run_id"], apply=context["params"]["mode"] == "apply"))
            return {"mode": context["params"]["mode"]}

        leaf_lock()
    return dag


def build_revoke_dag(doc_md: str) -> DAG:
    with DAG(
        schedule=None,
        **dag_arguments(
            "ctb_revoke_approval",
            doc_md,
            ("ctb", "manual"),
            {
                "approval_id": Param(
                    1,
                    type="integer",
                    minimum=1,
                    title="Approval #",
                    description="the number of the approval or rejection to revoke (the console's Approvals table)",
                ),
                "reason": optional_text_param("Reason", "optional: why it is revoked"),
            },
        ),
    ) as dag:

        @task
        def revoke() -> dict:
            from ple import approval
            from ple.db import connect
            from ple.errors import BadInput
            from ple.reporting import emit

            context = get_current_context()
            params = context["params"]
            who = context["dag_run"].triggering_user_name
            if not who or who == DAG_TEST_USER:
                raise BadInput("a revocation is recorded under the signed-in user who triggers it: sign in to Airflow")
            with connect() as conn:
                revoked = approval.revoke(conn, params["approval_id"], who, params["reason"] or None)
            emit(
                f"REVOKED {revoked['verdict']} {revoked['approval_id']} ({revoked['subject']}, {revoked['scope']}) "
                f"by {who}: from the next transaction that re-checks it, it authorises nothing"
                if revoked["verdict"] == "approve"
                else f"REVOKED rejection {revoked['approval_id']} ({revoked['subject']}, {revoked['scope']}) by {who}: "
                "the scope is no longer vetoed by it"
            )
            return revoked

        revoke()
    return dag
