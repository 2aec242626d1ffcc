"""What the stages of a run (verify, freeze, revert, rehearse) use of the executor that runs them:
its connection and plan, its transactions under the advisory lock, its context and ledger. A
Protocol, so the stages sit beside the executor without importing it (the executor calls them;
reorg/executor.py is the one implementation).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import psycopg

from ple.catalog import Catalog
from ple.reorg.context import Context, Settings, Statement
from ple.reorg.decisions import Decisions, ResolvedStep
from ple.reorg.plan import Phase, Plan
from ple.reorg.proof import Fingerprint


class Session(Protocol):
    conn: psycopg.Connection
    plan: Plan  # as the decisions in force shape it
    declared: Plan  # as declared, with the 1L questions as answered
    decisions: Decisions
    run_id: str
    settings: Settings

    @property
    def applying(self) -> bool: ...

    def transaction(self, read_only: bool = False) -> AbstractContextManager: ...

    def lock_exclusive(self) -> None: ...

    def require_approval(self, phase_id: str, step_id: str | None = None) -> dict: ...

    def context(self, catalog: Catalog, phase_id: str | None = None) -> Context: ...

    def retrying(self, work) -> Any: ...

    def write_ledger(
        self, phase: str, step_id: str, action: str, started: datetime, outcome: str, mode: str = "apply", **fields
    ) -> None: ...

    def touched(self, phase: Phase) -> list[tuple[str, str]]: ...

    def targets_to_create(self, phase: Phase) -> list[tuple[str, dict]]: ...

    def created_targets(self, phase: Phase, catalog: Catalog) -> list[Statement]: ...

    def preflight_ddl(self, phase: Phase, catalog: Catalog) -> list[Statement]: ...

    def snapshot(self, phase: Phase, catalog: Catalog, counted: bool = True) -> dict[str, Fingerprint]: ...

    def resolve(self, step_id: str) -> ResolvedStep: ...

    def set_asides(self, ctx: Context, resolved: ResolvedStep) -> list: ...
