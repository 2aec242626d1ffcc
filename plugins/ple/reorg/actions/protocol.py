"""The shape every action module has (one module per plan kind, as pgroll has one operation per
file). The executor, the rehearsal and the revert call these and nothing else; a kind without
something to say for one of them says so explicitly (`transactional` True, `revert_blockers` []).
tests/unit/reorg/test_action_protocol.py checks every module against it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.findings import Finding
from ple.reorg.plan import Step


@runtime_checkable
class ActionModule(Protocol):
    def check(self, ctx: Context, step: Step) -> State:
        """Is it done already? From the live catalog (what makes a re-run a no-op)."""

    def statements(self, ctx: Context, step: Step) -> list[Statement]:
        """The exact SQL `apply` runs (plan mode prints it)."""

    def preview(self, ctx: Context, step: Step) -> dict:
        """Live counts of what would change (plan mode)."""

    def lint(self, ctx: Context, step: Step) -> list[Finding]:
        """What would make apply fail half way, found before any write."""

    def transactional(self, ctx: Context, step: Step) -> bool:
        """True: `apply` runs in the caller's one transaction; False: it makes its own (a fold, a
        batched merge, a low-lock key), each under the advisory lock and the approval re-check."""

    def apply(self, ctx: Context, step: Step) -> Outcome:
        """Carry it out and prove it in the same transaction."""

    def verify(self, ctx: Context, step: Step, located: dict) -> list[str]:
        """After the fact, against the preflight snapshot: the problems found (none: proven)."""

    def revert_blockers(self, ctx: Context, step: Step) -> list[str]:
        """What others built on what `revert` would drop, read before the revert's first write."""

    def revert(self, ctx: Context, step: Step) -> Outcome:
        """Undo it from the live state; nothing is lost either way."""
