"""ARCHIVE: move a table unchanged into the archive schema under its target name."""

from __future__ import annotations

from ple.reorg.actions import relocate
from ple.reorg.context import Context, Outcome, State
from ple.reorg.proof import count


def check(ctx: Context, step) -> State:
    return relocate.check(ctx.catalog, step.action.source, step.action.target)


def statements(ctx: Context, step):
    return relocate.statements(ctx.conn, ctx.catalog, step.action.source, step.action.target)


def preview(ctx: Context, step) -> dict:
    return {"rows": count(ctx.conn, step.action.source)}


def apply(ctx: Context, step) -> Outcome:
    action = step.action
    identity = relocate.apply(ctx.conn, ctx.catalog, action.source, action.target)
    return Outcome(step, "applied", details={"table": identity, "rows_copied": 0})


def lint(ctx: Context, step) -> list:
    return relocate.lint(ctx, step)


def verify(ctx: Context, step, located: dict) -> list[str]:
    """`located`: current names of the snapshot's tables, by their snapshot name."""
    action = step.action
    if located.get(action.source) != action.target:
        return [f"{action.source} should now be {action.target}, found {located.get(action.source)}"]
    return []


def revert(ctx: Context, step) -> Outcome:
    action = step.action
    if relocate.check(ctx.catalog, action.target, action.source) != State.PENDING:
        return Outcome(step, "already_done")
    relocate.apply(ctx.conn, ctx.catalog, action.target, action.source)
    return Outcome(step, "reverted")


def transactional(ctx: Context, step) -> bool:
    """One transaction: the caller's."""
    return True


def revert_blockers(ctx: Context, step) -> list[str]:
    """Its revert drops nothing the application could have built on."""
    return []
