"""One module per action type, each with the same shape:

check(ctx, step) -> State          is it done already? (from the live catalog; idempotency)
statements(ctx, step) -> [Statement]   the exact SQL `apply` runs (plan mode prints it)
preview(ctx, step) -> dict         live counts of what would change (plan mode)
lint(ctx, step) -> [Finding]       what would make apply fail half way, found before any write
apply(ctx, step) -> Outcome        run it in the caller's transaction and prove it there
verify(ctx, step, snapshot) -> [problem]   after the fact, against the preflight snapshot
revert(ctx, step) -> Outcome       undo it from the live state (nothing is lost either way)
revert_blockers(ctx, step) -> [problem]   (where revert drops something the tool made) what others
                                   built on it: the revert refuses before its first write
"""

from ple.reorg.actions import add_pk, archive, fold, keep_as_mv, merge, move

MODULES = {
    "ARCHIVE": archive,
    "MOVE": move,
    "MERGE": merge,
    "FOLD": fold,
    "ADD_PK": add_pk,
    "KEEP_AS_MV": keep_as_mv,
}


def module_for(step):
    return MODULES[step.kind]


def revert_blockers(ctx, step) -> list[str]:
    module = module_for(step)
    return module.revert_blockers(ctx, step) if hasattr(module, "revert_blockers") else []
