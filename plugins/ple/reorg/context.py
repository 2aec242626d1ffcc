"""What every action module receives and returns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum

import psycopg
from psycopg import sql

from ple import approval as approvals
from ple import governance
from ple.catalog import Catalog
from ple.ops import ADVISORY_LOCK
from ple.reorg import decision_store, pending
from ple.reorg.plan import Plan, Step
from ple.sqlutil import qualified


class Mode(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    REHEARSE = "rehearse"  # carry a phase out, verify it, roll it all back (rehearse.py)


@dataclass(frozen=True)
class Settings:
    """Run options; every one is a trigger Param of the phase DAGs."""

    mode: Mode = Mode.PLAN
    lock_timeout: str = "2s"
    statement_timeout: str = "30min"
    lock_retries: int = 5
    large_table_rows: int = 1_000_000  # ADD_PK above this takes the low-lock path
    backfill_batch_pages: int = 1_000  # low-lock ADD_PK backfill; merges bypassing a target trigger
    # rehearse: run on this Airflow connection (e.g. a Neon branch) instead of the target itself
    rehearse_conn_id: str | None = None
    # rehearse on the target itself: the longest its one transaction may hold its locks, in seconds
    rehearse_budget_seconds: float = 30.0

    @classmethod
    def from_params(cls, params: dict) -> Settings:
        known = {name: params[name] for name in cls.__dataclass_fields__ if name in params}
        if "mode" in known:
            known["mode"] = Mode(known["mode"])
        return cls(**known)


@dataclass
class Statement:
    """One SQL statement of an action, with its bound values, as plan mode shows it."""

    purpose: str
    query: sql.Composable
    params: dict = field(default_factory=dict)

    def render(self, conn: psycopg.Connection) -> str:
        text = self.query.as_string(conn)
        if self.params:
            text += "\n  -- parameters: " + ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return text


@dataclass
class Context:
    conn: psycopg.Connection
    plan: Plan
    run_id: str
    settings: Settings
    catalog: Catalog | None = None
    approval: approvals.Fingerprint | None = None  # what every apply transaction re-checks
    bypass: tuple[tuple[str, str], ...] = ()  # (table, trigger) the guards let this step pass
    unfreeze: tuple[str, ...] = ()  # tables frozen in the owner's registry a person let this step alter
    freeze_after: tuple[str, ...] = ()  # names the step gives a frozen table: frozen like it
    no_compat: tuple[str, ...] = ()  # sources whose decision is `compat: none` (compat.py)
    compat_planned: dict = field(default_factory=dict)  # step id -> compat.Compat list, read before the step

    def execute(self, statement: Statement):
        return self.conn.execute(statement.query, statement.params or None)

    @contextmanager
    def unfrozen(self) -> Iterator[None]:
        """Within the caller's transaction: the tables frozen in the owner's registry that a person
        let this step alter, unfrozen; before it commits frozen again, with each name the step gave
        them that exists by then (a name frozen before its table exists would refuse the rename
        into it: a batched merge archives its source only in its last transaction)."""
        unfrozen = governance.set_frozen(self.conn, list(self.unfreeze), False)
        yield
        given = [
            name
            for name in self.freeze_after
            if self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
        ]
        governance.set_frozen(self.conn, [*unfrozen, *given], True)

    @contextmanager
    def bypassing_triggers(self, *, unfreeze: bool = True) -> Iterator[None]:
        """Within the caller's transaction, the guards' exceptions for this step: tables frozen in the
        owner's registry that a person let it alter are unfrozen (unless the caller holds them
        unfrozen already: `unfreeze=False`), the triggers the guards let it pass are off; before it
        commits the triggers are on again, in the firing mode each had (ENABLE, ENABLE ALWAYS), and
        the tables frozen again (unfrozen): transactional, so no other session ever sees either."""
        with self.unfrozen() if unfreeze else nullcontext():
            modes = {
                (table, trigger): self.conn.execute(
                    "SELECT tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s", (table, trigger)
                ).fetchone()[0]
                for table, trigger in self.bypass
            }
            for table, trigger in self.bypass:
                self.conn.execute(trigger_switch(table, trigger, "DISABLE"))
            yield
            for table, trigger in self.bypass:
                self.conn.execute(trigger_switch(table, trigger, ENABLE_MODES[modes[(table, trigger)]]))

    def hold(self) -> None:
        """In the current transaction: take the advisory lock, then re-check the approval (an
        approval revoked, or code edited, between two transactions of one step stops the next)."""
        hold(self.conn, self.approval, run_id=self.run_id)


# pg_trigger.tgenabled -> the ALTER TABLE clause that restores it
ENABLE_MODES = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA", "D": "DISABLE"}


def trigger_switch(table: str, trigger: str, clause: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(qualified(table), sql.SQL(clause), sql.Identifier(trigger))


def hold(
    conn: psycopg.Connection, fingerprint: approvals.Fingerprint | None, how: str | None = None, *, run_id: str
) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ADVISORY_LOCK,))
    if fingerprint is not None:
        if fingerprint.subject == approvals.REORGANIZATION:  # what the run read is still in force
            decision_store.require_in_force(conn, fingerprint.parts.get("decisions"))
            pending.require_in_force(conn, fingerprint.parts.get("answers_1l"))
        approvals.require(conn, fingerprint, *([how] if how else []), run_id=run_id)


class OutcomeStatus(StrEnum):
    """What an action's apply or revert did (a StepReport, what a task says, has more states)."""

    APPLIED = "applied"
    ALREADY_DONE = "already_done"  # a re-run: nothing to do, nothing done
    REVERTED = "reverted"


@dataclass
class Outcome:
    """What an action did. `status` is an OutcomeStatus; a plain string names one (and a string
    that names none is refused here, not written to the ledger)."""

    step: Step
    status: OutcomeStatus
    statements: list[Statement] = field(default_factory=list)
    rows_before: dict = field(default_factory=dict)
    rows_after: dict = field(default_factory=dict)
    checksums_before: dict = field(default_factory=dict)
    checksums_after: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __setattr__(self, name, value) -> None:
        super().__setattr__(name, OutcomeStatus(value) if name == "status" else value)


@dataclass
class StepReport:
    """What one task reports: its status, a text for the log, and a summary for XCom."""

    step_id: str
    status: str
    text: str
    summary: dict = field(default_factory=dict)


class State(StrEnum):
    PENDING = "pending"
    DONE = "done"
