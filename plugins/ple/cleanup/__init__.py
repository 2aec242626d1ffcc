"""Phase 2C cleanup: the five steps of the plan's cleanup script, set-based, approved and undoable.

Its own package, not part of `ple.audit`: the audits only read, the cleanup changes data (with
its archive, approval and undo). `steps` holds the steps and the archive-first write they share,
`run` the preview, approval and apply, `restore` the undo.

1. backfill NULL spine domains from CL;
2. export duplicate spine domains for manual merge (a CSV per run; nothing changes);
3. attach orphan people to a free slot of the spine company their email domain names;
4. de-duplicate emails in people.people_master: in every group of people sharing an email the
   earliest record survives, the others' slots and every other reference move to it, then the
   others (group size - 1 per group) are removed;
5. archive and remove orphan slots.

**Archive first, under row locks.** Every change is two statements in one transaction: the first
locks the rows that match (`SELECT ... FOR UPDATE`), copies them whole to
archive.<schema>_<table>_2c with the run id, and remembers their row ids; the second changes
exactly those rows, by row id, without evaluating the predicate again. A row a concurrent writer
makes match in between is not touched (the next run sees it); a row the first statement locked
cannot change before the transaction ends. So no changed row is without its archive copy, and
the number changed must equal the number archived, or the step rolls back.

**Preview and approval.** The preview is a rehearsal: every step runs in one transaction that is
rolled back, so it reports exactly what apply would touch (and what a guard of the database would
refuse), writing nothing. An approval (ple.approval, subject "cleanup") binds the cleanup's
definition (this package's modules and its SQL templates), the steps chosen and their previewed counts: any
step or set of steps can be previewed, approved and applied on its own (backfilling 3 NULL
domains does not approve de-duplicating people), each selection with its own fingerprint. Apply rehearses again,
refuses unless that exact preview is approved, and re-checks the approval and the counts inside
every step's transaction: a step whose live counts differ from the approved preview rolls back
with a message naming the fix (preview and approve again).

**Guards.** Before a step writes, it is reported as blocked (with the reason, nothing written)
when a table or column it needs is missing, when row-level security would hide the rows from the
role, or when other rows reference rows it would remove through a foreign key (RESTRICT / NO
ACTION would refuse; CASCADE / SET NULL would change rows without an archive copy). A trigger or
constraint that refuses a write (a write-once column, a CHECK) rolls the step back and is reported
as blocked the same way, in the preview first.

**Undo** restores a run's rows last step first; a removed row whose key is taken again, or a
changed row edited since the cleanup (its content no longer what the cleanup left), is reported
and left alone, never skipped silently or overwritten. A changed row is found by the content the
cleanup left (its md5), not by its key: the key may be what the cleanup changed, and a table may
have none; a removed row of a table without a key is inserted back once.
"""

from ple.cleanup.restore import UNDO_OUTCOMES, UndoReport, undo
from ple.cleanup.run import Preview, apply, apply_step, approve, definition_sha256, preview, selected
from ple.cleanup.steps import (
    APPROVE_HOW,
    ARCHIVE_COLUMNS,
    DEFAULT_ARTIFACTS,
    LOCK_KEY,
    REFUSALS,
    STEPS,
    SUBJECT,
    Blocked,
    Step,
    StepResult,
    archive_name,
)

__all__ = [
    "APPROVE_HOW",
    "ARCHIVE_COLUMNS",
    "DEFAULT_ARTIFACTS",
    "LOCK_KEY",
    "REFUSALS",
    "STEPS",
    "SUBJECT",
    "UNDO_OUTCOMES",
    "Blocked",
    "Preview",
    "Step",
    "StepResult",
    "UndoReport",
    "apply",
    "apply_step",
    "approve",
    "archive_name",
    "definition_sha256",
    "preview",
    "selected",
    "undo",
]
