"""Phase 1L: the plan's pending questions, answered by a person, carried out as plan actions.

The plan leaves three tables to a human decision (`PENDING` actions: "Which sub-hub owns URL
discovery?"). Each question has the same candidate answers:

  <sub-hub>      a sub-hub of the plan's `leaf_lock.sub_hubs` owns the table: MOVE it into that
                 sub-hub's schema (the schema of its CANONICAL table), as the plan's MOVE actions do
  archive        nobody owns it: ARCHIVE it (archive.<schema>_<table>_ctb), as the plan's ARCHIVE actions do
  keep_pending   not decided yet: the table stays where it is

An answer is recorded with who gave it, how and when in `ple_ops.pending_answer`, append-only: the
latest answer per table counts and every earlier one stays as history. Recording an answer changes
no data. The recorded answers become part of the plan the executor runs (`answered`: each answered
PENDING action is replaced by its MOVE or ARCHIVE) and of the reorganization's approval fingerprint
(`answers_sha256`, a part of `approval.reorganization`), so a changed answer voids the approval and
the approval, ledger, proof, verify, freeze and revert of phase 1l are the executor's, as for every
other phase.

Once a table's 1L step is applied, a different answer is refused until phase 1l is reverted: the
answer in force is always the one that explains where the table is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from ple.catalog import exact_counts, read_catalog
from ple.errors import BadInput, NotApproved
from ple.ops import ADVISORY_LOCK, ensure_schema
from ple.reorg.ledger import ledger_outcomes
from ple.reorg.plan import Action, Plan

ARCHIVE = "archive"
KEEP_PENDING = "keep_pending"


@dataclass(frozen=True)
class Choice:
    """One candidate answer to a pending question and what it would do."""

    answer: str
    action: str | None  # MOVE, ARCHIVE, or None (the table stays)
    target: str | None

    def says(self, source: str) -> str:
        if self.action == "MOVE":
            return f"the sub-hub {self.answer} owns it: MOVE {source} -> {self.target} (ALTER TABLE ... SET SCHEMA)"
        if self.action == "ARCHIVE":
            return f"nobody owns it: ARCHIVE {source} -> {self.target} (read-only once the phase is frozen)"
        return f"not decided yet: {source} stays where it is"


@dataclass(frozen=True)
class Answer:
    answer_id: int
    table: str
    answer: str
    action: str | None
    target: str | None
    decided_by: str
    decided_via: str
    decided_at: datetime
    note: str | None = None

    def line(self) -> str:
        what = f"{self.action} -> {self.target}" if self.action else "stays where it is"
        return (
            f"{self.answer} ({what}) by {self.decided_by} via {self.decided_via} at {self.decided_at.isoformat()}"
            + (f": {self.note}" if self.note else "")
        )


# ---------------------------------------------------------------------- questions and choices
def questions(plan: Plan) -> list[Action]:
    """Every PENDING action of the declared plan, in the plan's order."""
    return [a for a in plan.actions if a.kind == "PENDING"]


def question(plan: Plan, table: str) -> Action:
    for action in questions(plan):
        if action.source == table:
            return action
    pending = ", ".join(a.source for a in questions(plan)) or "none"
    raise BadInput(f"{table!r} is not a pending question of the plan (pending: {pending})")


def sub_hub_schema(plan: Plan, sub_hub: str) -> str:
    """Where a sub-hub's tables live: the schema of its CANONICAL table (its first class otherwise)."""
    classes = plan.leaf_lock["sub_hubs"][sub_hub]
    tables = classes.get("CANONICAL") or next(iter(classes.values()))
    return tables[0].split(".", 1)[0]


def choices(plan: Plan, action: Action) -> dict[str, Choice]:
    """The candidate answers to one question, in the order they are offered."""
    name = action.source.split(".", 1)[1]
    result = {
        sub_hub: Choice(sub_hub, "MOVE", f"{sub_hub_schema(plan, sub_hub)}.{name}")
        for sub_hub in plan.leaf_lock.get("sub_hubs", {})
    }
    result[ARCHIVE] = Choice(ARCHIVE, "ARCHIVE", plan.archive_name(action.source))
    result[KEEP_PENDING] = Choice(KEEP_PENDING, None, None)
    return result


# ---------------------------------------------------------------------- recorded answers
def _recorded(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('ple_ops.pending_answer') IS NOT NULL").fetchone()[0]


COLUMNS = "answer_id, table_name, answer, action, target, decided_by, decided_via, decided_at, note"


def latest(conn: psycopg.Connection) -> dict[str, Answer]:
    """The answer in force per table (the latest recorded); empty before any answer."""
    if not _recorded(conn):
        return {}
    rows = conn.execute(
        f"SELECT DISTINCT ON (table_name) {COLUMNS} FROM ple_ops.pending_answer ORDER BY table_name, answer_id DESC"
    ).fetchall()
    return {row[1]: Answer(*row) for row in rows}


def history(conn: psycopg.Connection, table: str | None = None) -> list[Answer]:
    """Every answer ever recorded (for one table), oldest first."""
    if not _recorded(conn):
        return []
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM ple_ops.pending_answer WHERE %s::text IS NULL OR table_name = %s ORDER BY answer_id",
        (table, table),
    ).fetchall()
    return [Answer(*row) for row in rows]


def applied_step(conn: psycopg.Connection, action: Action) -> str | None:
    """The step id of this question's answer if it is applied and not reverted."""
    for step_id, entry in ledger_outcomes(conn).items():
        if (
            step_id.startswith(f"{action.phase}__")
            and step_id.endswith(f"__{action.slug}")
            and entry["outcome"] == "applied"
        ):
            return step_id
    return None


def record(
    conn: psycopg.Connection,
    plan: Plan,
    table: str,
    answer: str,
    decided_by: str,
    *,
    via: str,
    decided_at: datetime | None = None,
    note: str | None = None,
    details: dict | None = None,
) -> Answer:
    """Record a person's answer (append-only), with when they gave it (default: now). Bad input is
    refused naming the valid answers."""
    action = question(plan, table)
    offered = choices(plan, action)
    if answer not in offered:
        raise BadInput(f"{answer!r} is not an answer to {table}: one of {', '.join(offered)}")
    if not decided_by or not decided_by.strip():
        raise BadInput("an answer needs the name of who decided")
    choice = offered[answer]
    with conn.transaction():
        # the apply transactions' advisory lock: an answer is recorded either before a step that
        # re-reads it (approval.require) or after that step applied, where a different one is refused
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ADVISORY_LOCK,))
        ensure_schema(conn)
        current = latest(conn).get(table)
        step = applied_step(conn, action)
        if step and (current is None or current.answer != answer):
            raise BadInput(
                f"{table}: its answer {current.answer if current else '?'} is applied ({step}); "
                "revert phase 1l first (`python -m ple.cli revert --phase 1l`), then answer again"
            )
        row = conn.execute(
            "INSERT INTO ple_ops.pending_answer (table_name, answer, action, target, decided_by, decided_via, "
            "decided_at, plan_sha256, note, details) "
            f"VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s) RETURNING {COLUMNS}",
            (
                table,
                answer,
                choice.action,
                choice.target,
                decided_by.strip(),
                via,
                decided_at,
                plan.sha256,
                note,
                Jsonb(details or {}),
            ),
        ).fetchone()
    return Answer(*row)


def sha256(answers: dict[str, Answer]) -> str | None:
    """What the approval covers of the answers: each table's answer (the owning sub-hub), decided
    action and target; None when no answer changes anything. Who answered is recorded, not
    approved: the same answer given again does not void an approval; a different one does."""
    decided = {t: [a.answer, a.action, a.target] for t, a in sorted(answers.items()) if a.action}
    if not decided:
        return None
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()


def require_in_force(conn: psycopg.Connection, approved_sha256: str | None) -> None:
    """A run reads the 1L answers once, when it starts; the answers live in the database and may
    change while it runs. Every transaction that re-checks the approval re-reads them first, so a
    run never carries out an answer that is no longer in force (`record` takes the same advisory
    lock)."""
    in_force = sha256(latest(conn))
    if in_force != approved_sha256:
        raise NotApproved(
            f"the Phase 1L answers changed since this run read them (approved {approved_sha256}, "
            f"in force now {in_force}): nothing more runs under the earlier answers. Review the answers in force "
            "(`python -m ple.cli decide-1l`), approve them, and run again"
        )


# ---------------------------------------------------------------------- the plan, as answered
def answered(plan: Plan, answers: dict[str, Answer]) -> Plan:
    """The plan with each answered PENDING action replaced by the action its answer decides (same
    phase, same place). Unanswered and `keep_pending` questions stay PENDING."""
    if not any(a.action for a in answers.values()):
        return plan
    phases = []
    for phase in plan.phases:
        actions = tuple(_as_answered(action, answers.get(action.source)) for action in phase.actions)
        phases.append(dataclasses.replace(phase, actions=actions))
    return dataclasses.replace(plan, phases=tuple(phases))


def _as_answered(action: Action, answer: Answer | None) -> Action:
    if action.kind != "PENDING" or answer is None or not answer.action:
        return action
    return dataclasses.replace(
        action,
        kind=answer.action,
        target=answer.target,
        sub_hub=answer.answer if answer.action == "MOVE" else None,
        decision=f"{action.question} Answered {answer.line()}",
    )


# ---------------------------------------------------------------------- what a person reads
def live_rows(conn: psycopg.Connection, tables: list[str]) -> dict[str, int | None]:
    """Exact row counts where each table stands now (its name, or where an answer put it)."""
    catalog = read_catalog(conn)
    present = [t for t in tables if catalog.exists(t)]
    counts = exact_counts(conn, present)
    return {t: counts.get(t) for t in tables}


def describe(plan: Plan, action: Action, rows: int | None, current: Answer | None, past: list[Answer]) -> str:
    """One question as the person answering reads it (Markdown): counts, answers, what each does."""
    lines = [
        f"**{action.question}**",
        "",
        f"Table `{action.source}`: "
        + (f"{rows:,} rows now" if rows is not None else "not under this name now")
        + (f" (the plan document counted {action.document_rows:,})" if action.document_rows else ""),
        "",
        "| answer | what it does |",
        "|---|---|",
        *[f"| `{c.answer}` | {c.says(action.source)} |" for c in choices(plan, action).values()],
        "",
        "The answer is recorded with your name and the time; MOVE and ARCHIVE then need an approval "
        "of the plan with the answers before anything changes, and phase 1l reverts like any other phase.",
    ]
    if current:
        lines += ["", f"Answer in force: {current.line()}"]
    if len(past) > 1:
        lines += ["", "Earlier answers:", *[f"- {a.line()}" for a in past[:-1]]]
    return "\n".join(lines)


def report(conn: psycopg.Connection, plan: Plan) -> str:
    """Every question with its live count, its answer in force and the candidate answers."""
    answers = latest(conn)
    asked = questions(plan)
    rows = live_rows(conn, [a.source for a in asked])
    lines = []
    for action in asked:
        current = answers.get(action.source)
        count = f"{rows[action.source]:,} rows" if rows[action.source] is not None else "not under this name"
        lines.append(f"PENDING {action.source} ({count}): {action.question}")
        lines.append(f"  answer in force: {current.line() if current else 'none'}")
        lines += [f"  {c.answer:<16} {c.says(action.source)}" for c in choices(plan, action).values()]
    return "\n".join(lines)
