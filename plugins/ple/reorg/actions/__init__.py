"""One module per action type, each with the same shape: `protocol.ActionModule` (check,
statements, preview, lint, transactional, apply, verify, revert_blockers, revert). Helpers the
kinds share sit beside them (relocate, set_aside, create_target, merge_sql, merge_batches).
"""

from ple.reorg.actions import add_pk, archive, fold, keep_as_mv, merge, move
from ple.reorg.actions.protocol import ActionModule

MODULES: dict[str, ActionModule] = {
    "ARCHIVE": archive,
    "MOVE": move,
    "MERGE": merge,
    "FOLD": fold,
    "ADD_PK": add_pk,
    "KEEP_AS_MV": keep_as_mv,
}


def module_for(step) -> ActionModule:
    return MODULES[step.kind]


def revert_blockers(ctx, step) -> list[str]:
    return module_for(step).revert_blockers(ctx, step)
