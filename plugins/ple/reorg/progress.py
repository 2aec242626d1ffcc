"""Where each phase stands, counted from the reconcile verdicts and the ledger, and what is left.

The console's phase table must not disagree with its own reconcile table (issue 21: "not
started" above 24 conflicts, "11/4"). So the counts here are the reconcile verdicts of the plan as
answered (1L's answered questions become its MOVE/ARCHIVE actions, as the executor runs them),
grouped by phase, plus two facts reconcile folds into other states:

  undecided  a conflict, moot action or adoption with no decision recorded for it, and a 1L
             question nobody answered (or answered `keep_pending`): a person has to decide;
  reverted   an action whose step was applied and then reverted (reconcile shows it again as
             pending or conflict, which it also is);
  failed     steps whose latest ledger attempt failed.

The state is derived from those counts only, so it cannot contradict them. The checklist is what a
phase left to do after it ran, read live, so an item disappears once it is resolved: functions
whose body names a table the phase took away (they fail with UndefinedTable), copies a revert
kept (rule zero: it never deletes a changed row), triggers disabled on the phase's tables.
Read-only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from ple.reorg import pending
from ple.reorg.plan import Plan
from ple.reorg.reconcile import RELOCATING, Status, Verdict
from ple.sqlutil import raw_template

COUNTED = ("pending", "conflict", "undecided", "moot", "applied", "adopted", "reverted", "failed")


@dataclass(frozen=True)
class PhaseProgress:
    phase: str
    title: str
    counts: dict[str, int]
    state: str
    css: str  # ok, bad or "" (the console colours the state with it)
    last_change: object = None
    checklist: list[str] = field(default_factory=list)


def answered_plan(conn: psycopg.Connection, plan: Plan) -> Plan:
    """The plan with the recorded 1L answers carried in (what the executor runs)."""
    return pending.answered(plan, pending.latest(conn))


def undecided(verdict: Verdict, decided) -> bool:
    """A person still has to decide this action: reconcile needs a decision and the decisions
    record none for the action nor (where reconcile proposed one) for its merge target."""
    if not verdict.needs_decision:
        return False
    if decided.as_table().get(verdict.action.source):
        return False
    return not (verdict.target_proposal and decided.targets.get(verdict.proposal_target))


def _ledger_facts(conn: psycopg.Connection) -> tuple[set[str], set[str], dict]:
    """(reverted step ids, failed step ids, {phase: (status, last change)}) from the ledger."""
    if not conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]:
        return set(), set(), {}
    reverted = {r[0] for r in conn.execute(raw_template("ui/reverted_steps"))}
    failed = {r[0] for r in conn.execute(raw_template("ui/failed_steps"))}
    phases = {r[0]: (r[1], r[2]) for r in conn.execute(raw_template("ui/phase_last_change"))}
    return reverted, failed, phases


def _step_key_in(verdict: Verdict, step_ids: set[str]) -> bool:
    return verdict.step_id in step_ids or f"{verdict.step_id}.{verdict.action.slug}" in step_ids


def state_of(counts: dict[str, int], total: int, settled: int, status: str | None) -> tuple[str, str]:
    """The phase's state in words, from its counts and its phase_status row (frozen, reverted).
    `settled`: actions with nothing left to do (applied, or moot or adopted with a decision)."""
    waiting = f"; {counts['undecided']} undecided" if counts["undecided"] else ""
    if counts["failed"]:
        return f"failed: {counts['failed']} step(s) last failed{waiting}", "bad"
    if total == 0:
        return "nothing to do", "muted"
    if settled == total:
        if status == "frozen":
            return "frozen", "ok"
        return ("applied, not frozen", "") if counts["applied"] else ("nothing to apply: every action decided", "muted")
    if counts["applied"]:
        return f"partly applied: {counts['applied']} of {total} actions{waiting}", "bad" if waiting else ""
    if status == "reverted" or counts["reverted"]:
        return f"reverted{waiting}", "bad" if waiting else ""
    if counts["undecided"]:
        return f"waiting for {counts['undecided']} decision(s)", "bad"
    if counts["conflict"]:
        return f"not applied; {counts['conflict']} conflict(s) with the database, each decided", ""
    return "not started", ""


def phases(conn: psycopg.Connection, plan: Plan, verdicts: list[Verdict], decided) -> list[PhaseProgress]:
    """Every phase of `plan` with its counts, state and checklist; `verdicts` are reconcile's for
    the answered plan (answered_plan), the ones the console's reconcile table shows."""
    reverted, failed, recorded = _ledger_facts(conn)
    answers = pending.latest(conn)
    by_phase: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_phase.setdefault(verdict.step_id.split("__")[0], []).append(verdict)
    result = []
    for phase in plan.phases:
        mine = by_phase.get(phase.phase, [])
        counts = Counter({key: 0 for key in COUNTED})
        counts.update(v.status.value for v in mine)
        counts["undecided"] = sum(undecided(v, decided) for v in mine)
        counts["reverted"] = sum(_step_key_in(v, reverted) for v in mine)
        counts["failed"] = len({s for s in failed if s.split("__")[0] == phase.phase})
        questions = [a for a in phase.pending if not (answers.get(a.source) and answers[a.source].action)]
        counts["undecided"] += len(questions)
        status, changed = recorded.get(phase.phase, (None, None))
        settled = sum(
            v.status == Status.APPLIED or (v.status in (Status.MOOT, Status.ADOPTED) and not undecided(v, decided))
            for v in mine
        )
        state, css = state_of(counts, len(mine) + len(questions), settled, status)
        result.append(
            PhaseProgress(
                phase.phase, phase.title, dict(counts), state, css, changed, checklist(conn, phase.phase, mine)
            )
        )
    return result


def checklist(conn: psycopg.Connection, phase_id: str, verdicts: list[Verdict]) -> list[str]:
    """What the phase left to do, read live (an item is gone once resolved)."""
    items = []
    taken = sorted({v.action.source for v in verdicts if v.status == Status.APPLIED and v.action.kind in RELOCATING})
    gone = [t for t in taken if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t,)).fetchone()[0]]
    if gone:
        for function, table, form, _live in conn.execute(raw_template("guards/functions_naming"), {"tables": gone}):
            items.append(
                f"function {function} names {table} ({form}), which phase {phase_id.upper()} took away: "
                "it fails with UndefinedTable until it is changed to the table's new name"
            )
    if conn.execute("SELECT to_regclass('ple_ops.action_ledger') IS NOT NULL").fetchone()[0]:
        for step_id, details in conn.execute(raw_template("ui/revert_kept"), {"phase": phase_id}):
            kept = {k: v for k, v in (details or {}).items() if "kept" in k and v}
            if not kept:
                continue
            items.append(
                f"the revert of {step_id} kept "
                + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in kept.items())
                + " (changed rows or columns are never deleted): review them, then apply again or remove by hand"
            )
    tables = sorted(
        {v.action.target or v.action.source for v in verdicts if v.status in (Status.APPLIED, Status.ADOPTED)}
        | {v.action.source for v in verdicts}
    )
    for table, trigger in conn.execute(raw_template("dol/disabled_triggers"), {"tables": tables}):
        items.append(f"trigger {trigger} on {table} is disabled: enable it again (ALTER TABLE ... ENABLE TRIGGER)")
    return items
