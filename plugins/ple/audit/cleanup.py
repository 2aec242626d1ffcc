"""Phase 2C cleanup: the five steps of the plan's cleanup script, set-based, approved and undoable.

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
definition (this module and its SQL templates), the steps chosen and their previewed counts: any
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

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Jsonb

from ple import approval
from ple.catalog import read_catalog
from ple.config import INCLUDE_DIR, REPO_ROOT
from ple.db import transaction, with_lock_retry
from ple.errors import BadInput, NotApproved, PermanentError, VerificationFailed
from ple.ops import ensure_schema
from ple.sqlutil import qualified, raw_template

log = logging.getLogger(__name__)

SUBJECT = "cleanup"
APPROVE_HOW = (
    "`python -m ple.cli cleanup-approve --approver <name> [--step <step> ...]` "
    "(`make cleanup-approve APPROVER=<name>`), or the approval step of ctb_phase_2c_data_quality in the UI"
)
ARCHIVE_COLUMNS = (
    ("ctb_2c_run_id", "text"),
    ("ctb_2c_step", "text"),
    ("ctb_2c_action", "text"),
    ("ctb_2c_archived_at", "timestamptz"),
    ("ctb_2c_ctid", "tid"),  # the row's id while the step held its lock
    ("ctb_2c_after", "text"),  # md5 of the row as the cleanup left it (updates): undo's edit check
    ("ctb_2c_undo", "text"),  # restored / conflict / edited_since
    ("ctb_2c_undone_at", "timestamptz"),
)
DEFAULT_ARTIFACTS = REPO_ROOT / "artifacts" / "phase_2c"
LOCK_KEY = "ple.phase_2c_cleanup"
# errors by which the database itself refuses a write: the step is blocked, not failed
REFUSALS = (
    errors.RaiseException,
    errors.CheckViolation,
    errors.ForeignKeyViolation,
    errors.RestrictViolation,
    errors.UniqueViolation,
    errors.NotNullViolation,
    errors.InsufficientPrivilege,
)


class Blocked(PermanentError):
    """A guard of the database would refuse the step or make it lossy; nothing was written."""


@dataclass
class StepResult:
    step: str
    rows_touched: int = 0
    archived_rows: int = 0
    artifact: str | None = None
    blocked: str | None = None
    details: dict = field(default_factory=dict)

    def describe(self, applied: bool) -> str:
        if self.blocked:
            return f"{self.step}: BLOCKED, nothing written: {self.blocked}"
        verb = "touched" if applied else "would touch"
        text = f"{self.step}: {verb} {self.rows_touched:,} rows"
        if self.archived_rows:
            text += f" ({self.archived_rows:,} rows {'saved' if applied else 'to save'} to archive first)"
        if self.artifact:
            text += f"; artifact {self.artifact}"
        if self.details:
            text += f"; {self.details}"
        return text

    def approved_counts(self) -> dict:
        """What an approval binds for this step."""
        return {"rows": self.rows_touched, "archived": self.archived_rows, "blocked": self.blocked}


@dataclass
class Step:
    """What a step function gets: where it writes, for which run, and whether for real."""

    conn: psycopg.Connection
    run_id: str
    name: str
    durable: bool  # False in the preview's rehearsal (rolled back; no files written)
    artifacts: Path
    result: StepResult

    def change(
        self,
        table: str,
        where: sql.Composable,
        action: str,
        assignments: sql.Composable | None = None,
        source: sql.Composable | None = None,
        joined_on: sql.Composable | None = None,
    ) -> int:
        """Lock the rows of `table` (alias t) matching `where`, archive them whole, then change
        exactly those rows: `UPDATE ... SET assignments [FROM source WHERE joined_on]` or DELETE."""
        conn = self.conn
        live = _guard_table(conn, table, "UPDATE" if action == "update" else "DELETE")
        target = _ensure_archive(conn, table, live.column_names)
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS ctb_2c_rows (row_ctid tid) ON COMMIT DROP")
        conn.execute("TRUNCATE pg_temp.ctb_2c_rows")
        columns = sql.SQL(", ").join(map(sql.Identifier, live.column_names))
        meta = {"run": self.run_id, "step": self.name, "action": action}
        locked = conn.execute(
            sql.SQL(
                "WITH locked AS (SELECT t.ctid AS ctb_2c_ctid, t.* FROM {table} AS t WHERE {where} FOR UPDATE OF t), "
                "saved AS (INSERT INTO {archive} ({columns}, ctb_2c_run_id, ctb_2c_step, ctb_2c_action, ctb_2c_archived_at, ctb_2c_ctid) "
                "SELECT {columns}, %(run)s, %(step)s, %(action)s, now(), ctb_2c_ctid FROM locked) "
                "INSERT INTO pg_temp.ctb_2c_rows (row_ctid) SELECT ctb_2c_ctid FROM locked"
            ).format(table=qualified(table), where=where, archive=qualified(target), columns=columns),
            meta,
        ).rowcount
        if not locked:
            return 0
        if action == "delete":
            _guard_references(conn, table)
            changed = conn.execute(
                sql.SQL("DELETE FROM {} AS t USING pg_temp.ctb_2c_rows r WHERE t.ctid = r.row_ctid").format(
                    qualified(table)
                )
            ).rowcount
        else:
            extra = sql.SQL(", {}").format(source) if source is not None else sql.SQL("")
            condition = sql.SQL(" AND {}").format(joined_on) if joined_on is not None else sql.SQL("")
            changed = conn.execute(
                sql.SQL(
                    "WITH changed AS (UPDATE {table} AS t SET {assignments} FROM pg_temp.ctb_2c_rows r{extra} "
                    "WHERE t.ctid = r.row_ctid{condition} RETURNING r.row_ctid, md5(t::text) AS after) "
                    "UPDATE {archive} a SET ctb_2c_after = c.after FROM changed c WHERE a.ctb_2c_run_id = %(run)s "
                    "AND a.ctb_2c_step = %(step)s AND a.ctb_2c_action = %(action)s AND a.ctb_2c_ctid = c.row_ctid "
                    "AND a.ctb_2c_after IS NULL"
                ).format(
                    table=qualified(table),
                    assignments=assignments,
                    extra=extra,
                    condition=condition,
                    archive=qualified(target),
                ),
                meta,
            ).rowcount
        if changed != locked:
            raise VerificationFailed(
                f"{self.name}: {table}: archived {locked:,} rows but the {action.upper()} changed {changed:,} "
                "(a trigger skipped rows or a policy hid them); rolled back, nothing written"
            )
        self.result.archived_rows += locked
        triggers = [
            r[0] for r in conn.execute(raw_template("audit/row_triggers"), {"table": table, "event": action.upper()})
        ]
        if triggers:
            self.result.details.setdefault("triggers fired", {})[table] = triggers
        return changed


def _guard_table(conn: psycopg.Connection, table: str, command: str):
    live = read_catalog(conn, [table.split(".", maxsplit=1)[0]]).get(table)
    if live is None:
        raise Blocked(f"{table} does not exist in this database")
    hidden = conn.execute(
        raw_template("audit/row_security"), {"table": table, "command": {"UPDATE": "w", "DELETE": "d"}[command]}
    ).fetchone()[0]
    if hidden:
        raise Blocked(
            f"row-level security on {table} has no {command} policy for role {conn.info.get_parameters().get('user')}: "
            f"the {command} would change nothing; run as the table's owner or a role with BYPASSRLS"
        )
    return live


def _guard_references(conn: psycopg.Connection, table: str) -> None:
    """Rows of other tables that reference the locked rows would make the DELETE fail (RESTRICT,
    NO ACTION) or change them without an archive copy (CASCADE, SET NULL, SET DEFAULT)."""
    rules = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
    for name, referencing, columns, referenced, rule in conn.execute(
        raw_template("audit/foreign_keys_into"), {"table": table}
    ).fetchall():
        joined = sql.SQL(" AND ").join(
            sql.SQL("x.{} = t.{}").format(sql.Identifier(c), sql.Identifier(r))
            for c, r in zip(columns, referenced, strict=True)
        )
        count = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {referencing} x JOIN {table} t ON {joined} "
                "WHERE t.ctid IN (SELECT row_ctid FROM pg_temp.ctb_2c_rows)"
            ).format(referencing=sql.Identifier(*referencing), table=qualified(table), joined=joined)
        ).fetchone()[0]
        if count:
            effect = (
                "the DELETE would fail"
                if rule in ("a", "r")
                else f"the DELETE would {rules[rule].lower()} them without an archive copy"
            )
            raise Blocked(
                f"{count:,} rows of {'.'.join(referencing)} reference rows of {table} this step would remove "
                f"(foreign key {name}, ON DELETE {rules[rule]}): {effect}; resolve those references first"
            )


def archive_name(table: str) -> str:
    return f"archive.{table.replace('.', '_')}_2c"


def _ensure_archive(conn: psycopg.Connection, table: str, columns: list[str]) -> str:
    """archive.<schema>_<table>_2c: the live table's columns (added when the live table grew) and
    the cleanup's own."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS archive")
    target = archive_name(table)
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {})").format(qualified(target), qualified(table)))
    catalog = read_catalog(conn, ["archive", table.split(".", maxsplit=1)[0]])
    source, archived = catalog.get(table), catalog.get(target)
    for column in source.columns:
        if archived.column(column.name) is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    qualified(target), sql.Identifier(column.name), sql.SQL(column.type)
                )
            )
    for name, column_type in ARCHIVE_COLUMNS:
        if archived.column(name) is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    qualified(target), sql.Identifier(name), sql.SQL(column_type)
                )
            )
    if archived.column("ctb_2c_id") is None:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS ctb_2c_id bigint GENERATED ALWAYS AS IDENTITY").format(
                qualified(target)
            )
        )
    return target


# ---------------------------------------------------------------------------------------- steps
def backfill_null_domains(step: Step) -> None:
    step.result.rows_touched = step.change(
        "outreach.outreach",
        sql.SQL(
            "coalesce(t.domain, '') = '' AND EXISTS (SELECT 1 FROM cl.company_identity ci "
            "WHERE ci.outreach_id = t.outreach_id AND coalesce(ci.company_domain, '') <> '')"
        ),
        "update",
        sql.SQL("domain = d.domain, updated_at = now()"),
        sql.SQL(
            "(SELECT outreach_id, min(company_domain) AS domain FROM cl.company_identity "
            "WHERE coalesce(company_domain, '') <> '' GROUP BY outreach_id) AS d"
        ),
        sql.SQL("d.outreach_id = t.outreach_id"),
    )


def export_duplicate_domains(step: Step) -> None:
    query = raw_template("audit/duplicate_domains")
    step.result.details["duplicate_domains"] = step.conn.execute(f"SELECT count(*) FROM ({query}) d").fetchone()[0]
    if not step.durable:
        return
    path = step.artifacts / step.run_id.replace(":", "_").replace("+", "_") / "duplicate_domains.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        step.conn.cursor() as cur,
        path.open("wb") as out,
        cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER true)").format(sql.SQL(query))) as copy,
    ):
        for chunk in copy:
            out.write(chunk)
    step.result.artifact = str(path)


def attach_orphan_people(step: Step) -> None:
    conn = step.conn
    orphans = conn.execute(
        "SELECT count(*) FROM people.people_master p WHERE NOT EXISTS (SELECT 1 FROM people.company_slot s WHERE s.person_unique_id = p.unique_id)"
    ).fetchone()[0]
    conn.execute(f"CREATE TEMP TABLE orphan_pairs ON COMMIT DROP AS {raw_template('audit/orphan_pairs')}")
    pairs = conn.execute("SELECT count(*) FROM orphan_pairs").fetchone()[0]
    step.result.details["orphans_left_unattached"] = orphans - pairs
    if not pairs:
        return
    step.result.rows_touched = step.change(
        "people.company_slot",
        sql.SQL("t.slot_id IN (SELECT slot_id FROM orphan_pairs) AND t.person_unique_id IS NULL"),
        "update",
        sql.SQL("person_unique_id = o.unique_id, is_filled = true, filled_at = now(), updated_at = now()"),
        sql.SQL("orphan_pairs o"),
        sql.SQL("o.slot_id = t.slot_id"),
    )
    step.change(
        "people.people_master",
        sql.SQL("t.unique_id IN (SELECT unique_id FROM orphan_pairs)"),
        "update",
        sql.SQL(
            "company_unique_id = o.company_unique_id, company_slot_unique_id = o.slot_id::text, updated_at = now()"
        ),
        sql.SQL("orphan_pairs o"),
        sql.SQL("o.unique_id = t.unique_id"),
    )


def dedupe_emails(step: Step) -> None:
    """In each group of people sharing an email, rank 1 survives. Everything that points at the
    others (their slots, and the rows of every table with a foreign key to people.people_master)
    moves to the survivor; where a referencing table allows one row per person, the row of the
    best-ranked member that has one stays, the others are archived and removed. Then the
    duplicates are removed: group size - 1 per group."""
    conn = step.conn
    conn.execute(f"CREATE TEMP TABLE duplicate_people ON COMMIT DROP AS {raw_template('audit/duplicate_people')}")
    conn.execute("ALTER TABLE duplicate_people ADD PRIMARY KEY (person)")
    groups, duplicates = conn.execute(
        "SELECT count(DISTINCT survivor), count(*) FILTER (WHERE rank > 1) FROM duplicate_people"
    ).fetchone()
    step.result.details["groups"] = groups
    if not duplicates:
        return
    duplicate = sql.SQL("t.{} IN (SELECT person FROM duplicate_people WHERE rank > 1)")
    step.result.details["slots_reassigned"] = step.change(
        "people.company_slot",
        duplicate.format(sql.Identifier("person_unique_id")),
        "update",
        sql.SQL("person_unique_id = d.survivor, updated_at = now()"),
        sql.SQL("duplicate_people d"),
        sql.SQL("d.person = t.person_unique_id"),
    )
    moved = {}
    references = conn.execute(
        raw_template("catalog/referencing_columns"), {"table": "people.people_master", "column": "unique_id"}
    ).fetchall()
    for table, column, unique in references:
        if (table, column) == ("people.company_slot", "person_unique_id"):
            continue
        referencing = duplicate.format(sql.Identifier(column))
        if unique:  # one row per person: the best-ranked member's row stays
            shadowed = sql.SQL(
                "{} AND EXISTS (SELECT 1 FROM duplicate_people m JOIN duplicate_people e "
                "ON e.survivor = m.survivor AND e.rank < m.rank JOIN {} x ON x.{} = e.person WHERE m.person = t.{})"
            ).format(referencing, qualified(table), sql.Identifier(column), sql.Identifier(column))
            step.change(table, shadowed, "delete")
        moved[table] = step.change(
            table,
            referencing,
            "update",
            sql.SQL("{} = d.survivor").format(sql.Identifier(column)),
            sql.SQL("duplicate_people d"),
            sql.SQL("d.person = t.{}").format(sql.Identifier(column)),
        )
    step.result.details["references_moved"] = moved
    step.result.rows_touched = step.change(
        "people.people_master", duplicate.format(sql.Identifier("unique_id")), "delete"
    )


def remove_orphan_slots(step: Step) -> None:
    step.result.rows_touched = step.change(
        "people.company_slot",
        sql.SQL("NOT EXISTS (SELECT 1 FROM outreach.outreach o WHERE o.outreach_id = t.outreach_id)"),
        "delete",
    )


STEPS: dict[str, Callable[[Step], None]] = {
    "backfill_null_domains": backfill_null_domains,
    "export_duplicate_domains": export_duplicate_domains,
    "attach_orphan_people": attach_orphan_people,
    "dedupe_emails": dedupe_emails,
    "remove_orphan_slots": remove_orphan_slots,
}


def _run(conn, name: str, run_id: str, durable: bool, artifacts: Path) -> StepResult:
    """One step inside the caller's transaction, in a savepoint: a guard's refusal rolls the step
    back and comes back as `blocked`."""
    result = StepResult(name)
    try:
        with conn.transaction():
            STEPS[name](Step(conn, run_id, name, durable, artifacts, result))
    except (Blocked, VerificationFailed) as exc:
        return StepResult(name, blocked=str(exc))
    except REFUSALS as exc:
        return StepResult(name, blocked=f"the database refused it ({type(exc).__name__}): {exc}".strip())
    return result


# ---------------------------------------------------------------------------------------- preview
def definition_sha256() -> str:
    """What the cleanup is: this module and its SQL templates."""
    digest = hashlib.sha256()
    for path in [Path(__file__), *sorted((INCLUDE_DIR / "sql" / "audit").glob("*.sql"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Preview:
    results: dict[str, StepResult]
    database: str

    @property
    def counts(self) -> dict[str, dict]:
        return {name: r.approved_counts() for name, r in self.results.items()}

    @property
    def fingerprint(self) -> approval.Fingerprint:
        """Definition, database, the steps chosen (in order) and their counts: approving one step
        approves nothing of the others."""
        counts = json.dumps(self.counts, sort_keys=True).encode()
        return approval.Fingerprint(
            SUBJECT,
            {
                "definition": definition_sha256(),
                "steps": hashlib.sha256(",".join(self.results).encode()).hexdigest(),
                "counts": hashlib.sha256(counts).hexdigest(),
                "database": hashlib.sha256(self.database.encode()).hexdigest(),
            },
        )

    @property
    def changes_anything(self) -> bool:
        return any(r.rows_touched or r.archived_rows for r in self.results.values())

    def to_dict(self) -> dict:
        return {"database": self.database, "results": {n: asdict(r) for n, r in self.results.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Preview:
        return cls({n: StepResult(**r) for n, r in data["results"].items()}, data["database"])


def selected(steps: list[str] | None) -> list[str]:
    """The chosen steps in the cleanup's own order (all when none is chosen); an unknown name is refused."""
    unknown = sorted(set(steps or ()) - set(STEPS))
    if unknown:
        raise BadInput(f"no cleanup step {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    return [name for name in STEPS if not steps or name in steps]


def preview(conn: psycopg.Connection, lock_timeout: str = "2s", steps: list[str] | None = None) -> Preview:
    """Rehearse the steps (all, or `steps`) in one transaction that is rolled back: the counts
    apply would touch, in order, and what a guard would block. Writes nothing, no file either."""
    chosen = selected(steps)

    def rehearse() -> Preview:
        results = {}
        with transaction(conn, lock_timeout=lock_timeout, statement_timeout="1h"):
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
            for name in chosen:
                results[name] = _run(conn, name, "preview", False, DEFAULT_ARTIFACTS)
            database = conn.execute("SELECT current_database()").fetchone()[0]
            raise psycopg.Rollback
        return Preview(results, database)

    return with_lock_retry(rehearse)


def approve(
    conn: psycopg.Connection, shown: Preview, approver: str, *, via: str = "cli", note: str | None = None
) -> int:
    """Record that `approver` approved the cleanup as `shown` (the definition and its counts)."""
    ensure_schema(conn)
    with transaction(conn):
        return approval.approve(
            conn, shown.fingerprint, approver, via=via, note=note, details={"preview": shown.counts}
        )


def _approved_preview(conn: psycopg.Connection, fingerprint_sha256: str) -> dict | None:
    """The approved preview of this fingerprint, unless a rejection of the cleanup came after it
    (a rejection vetoes the cleanup until someone approves it again: ple/approval.py)."""
    row = conn.execute(
        "SELECT details -> 'preview' FROM ple_ops.approval a WHERE subject = %s AND fingerprint = %s "
        "AND verdict = 'approve' AND revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM ple_ops.approval r "
        "WHERE r.subject = a.subject AND r.verdict = 'reject' AND r.revoked_at IS NULL AND r.approval_id > a.approval_id) "
        "ORDER BY approval_id DESC LIMIT 1",
        (SUBJECT, fingerprint_sha256),
    ).fetchone()
    return row[0] if row else None


def _refusal(conn: psycopg.Connection, live: dict[str, dict]) -> NotApproved:
    """Why an apply is refused: no approval at all, or how the live counts differ from the latest
    approved preview."""
    row = conn.execute(
        "SELECT details -> 'preview', approver, approved_at FROM ple_ops.approval WHERE subject = %s "
        "AND verdict = 'approve' AND revoked_at IS NULL ORDER BY approval_id DESC LIMIT 1",
        (SUBJECT,),
    ).fetchone()
    fix = f"preview (mode plan) and approve again with {APPROVE_HOW}"
    if row is None:
        return NotApproved(f"the Phase 2C cleanup has no recorded approval; execution is BLOCKED: {fix}")
    approved, approver, approved_at = row
    moved = [
        f"{step}: approved {approved.get(step)}, live {counts}"
        for step, counts in live.items()
        if approved.get(step) != counts
    ]
    return NotApproved(
        f"the live counts no longer match the preview {approver} approved at {approved_at:%Y-%m-%d %H:%M:%S %Z} "
        f"({'; '.join(moved) or 'the cleanup definition or database changed'}); nothing was changed: {fix}"
    )


def _applied_steps(conn: psycopg.Connection, run_id: str) -> tuple[set[str], str | None]:
    rows = conn.execute(
        "SELECT step, details ->> 'approval' FROM ple_ops.cleanup_ledger WHERE run_id = %s AND mode = 'apply' "
        "AND outcome IN ('applied', 'nothing_to_do', 'failed')",
        (run_id,),
    ).fetchall()
    return {step for step, _ in rows}, next((sha for _, sha in rows if sha), None)


def apply(
    conn: psycopg.Connection,
    run_id: str,
    artifacts: Path = DEFAULT_ARTIFACTS,
    lock_timeout: str = "2s",
    steps: list[str] | None = None,
) -> dict[str, StepResult]:
    """Every chosen step (all, or `steps`) not yet done in this run, each in its own transaction,
    if approved: the approval must cover exactly these steps and their counts.

    The rehearsal's fingerprint must be approved (a resumed run keeps the approval it started
    with, and its remaining steps must match that approval's counts); inside each step's
    transaction the approval is checked again and the step's counts must equal the approved
    ones, or the step rolls back. A run that would change nothing needs no approval."""
    ensure_schema(conn)
    done, pinned = _applied_steps(conn, run_id)
    remaining = [name for name in selected(steps) if name not in done]
    if not remaining:
        return {}
    rehearsal = preview(conn, lock_timeout, remaining)
    if pinned is None and not rehearsal.changes_anything:
        approved, fingerprint = rehearsal.counts, None
    else:
        fingerprint = pinned or rehearsal.fingerprint.sha256
        approved = _approved_preview(conn, fingerprint)
        if approved is None or any(approved.get(n) != c for n, c in rehearsal.counts.items()):
            raise _refusal(conn, rehearsal.counts)
    results = {}
    for name in remaining:
        results[name] = with_lock_retry(
            lambda name=name: apply_step(conn, name, run_id, artifacts, lock_timeout, fingerprint, approved[name])
        )
    return results


def apply_step(
    conn: psycopg.Connection,
    name: str,
    run_id: str,
    artifacts: Path,
    lock_timeout: str,
    fingerprint: str | None,
    approved: dict,
) -> StepResult:
    """One step in its own transaction, as `apply` runs it: the approval (`fingerprint`) is
    checked again, the step runs, and its counts must equal the `approved` ones or it rolls back."""
    started, clock = datetime.now(UTC), time.monotonic()
    with transaction(conn, lock_timeout=lock_timeout, statement_timeout="1h"):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
        if fingerprint is not None and _approved_preview(conn, fingerprint) is None:
            raise NotApproved(
                f"the approval of this cleanup run was revoked; nothing more changed. Approve with {APPROVE_HOW}"
            )
        result = _run(conn, name, run_id, True, artifacts)
        if result.approved_counts() != approved:
            raise _refusal(conn, {name: result.approved_counts()})
        outcome = (
            "failed"
            if result.blocked
            else "applied"
            if result.rows_touched or result.archived_rows or result.artifact
            else "nothing_to_do"
        )
        conn.execute(
            "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, archived_rows, artifact, details, started_at, duration_ms, outcome) "
            "VALUES (%s, %s, 'apply', %s, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                name,
                result.rows_touched,
                result.archived_rows,
                result.artifact,
                Jsonb({**result.details, "approval": fingerprint, "blocked": result.blocked}),
                started,
                int((time.monotonic() - clock) * 1000),
                outcome,
            ),
        )
    if result.blocked:
        log.warning("%s", result.describe(True))
    return result


# ---------------------------------------------------------------------------------------- undo
@dataclass
class UndoReport:
    """Per table and action: rows restored, and rows left alone with the reason."""

    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, outcome: str, rows: int) -> None:
        if rows:
            self.tables.setdefault(key, {})
            self.tables[key][outcome] = self.tables[key].get(outcome, 0) + rows

    @property
    def restored(self) -> int:
        return sum(c.get("restored", 0) for c in self.tables.values())

    @property
    def complete(self) -> bool:
        return not any(o != "restored" for c in self.tables.values() for o in c)


UNDO_OUTCOMES = {
    "conflict": "its key is taken again by a row added since the cleanup",
    "edited_since": "the row was edited (or removed) since the cleanup; the live version is kept",
}


def undo(conn: psycopg.Connection, run_id: str) -> UndoReport:
    """Put back every row a cleanup run changed or removed, last step first; report (and leave
    alone) rows that conflict with rows added since, or that were edited since the cleanup."""
    report = UndoReport()
    steps = [s for s in reversed(STEPS) if s != "export_duplicate_domains"]
    with transaction(conn, statement_timeout="1h"):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_KEY,))
        catalog = read_catalog(conn)
        archives = sorted(
            (t for t in catalog.tables.values() if t.name.startswith("archive.") and t.name.endswith("_2c")),
            key=lambda a: a.name != "archive.people_people_master_2c",  # people first: references point at them
        )
        for step in steps:
            for action in ("delete", "update"):  # removed rows first: references may point at them
                for archive in archives:
                    live = catalog.get(_live_table(archive.name, catalog))
                    if live is None or archive.column("ctb_2c_id") is None:
                        continue
                    key = f"{step}:{live.name}:{action}"
                    params = {"run": run_id, "step": step, "action": action}
                    restore = _restore_removed if action == "delete" else _restore_changed
                    for outcome, rows in restore(conn, archive, live, params).items():
                        report.add(key, outcome, rows)
                    triggers = [
                        r[0]
                        for r in conn.execute(
                            raw_template("audit/row_triggers"), {"table": live.name, "event": "UPDATE"}
                        )
                        if "BEFORE" in r[0]
                    ]
                    if action == "update" and triggers and report.tables.get(key, {}).get("restored"):
                        report.notes.append(
                            f"{key}: the restore fired {', '.join(triggers)} (e.g. re-stamping updated_at); "
                            f"the values from before the cleanup stay in {archive.name}"
                        )
        for key, counts in report.tables.items():
            for outcome, rows in counts.items():
                if outcome != "restored":
                    report.unresolved.append(f"{key}: {rows:,} rows not restored: {UNDO_OUTCOMES[outcome]}")
        conn.execute(
            "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, started_at, duration_ms, outcome, details) "
            "VALUES (%s, 'all', 'undo', %s, now(), 0, %s, %s)",
            (run_id, report.restored, "undone" if report.complete else "failed", Jsonb(report.tables)),
        )
    return report


def _live_table(archive: str, catalog) -> str:
    stem = archive.removeprefix("archive.").removesuffix("_2c")
    for name in catalog.tables:
        if name.replace(".", "_") == stem and not name.startswith("archive."):
            return name
    return ""


PENDING = sql.SQL(
    "a.ctb_2c_run_id = %(run)s AND a.ctb_2c_step = %(step)s AND a.ctb_2c_action = %(action)s "
    "AND a.ctb_2c_undo IS DISTINCT FROM 'restored'"
)


def _columns(archive, live) -> list[str]:
    return [c.name for c in live.columns if not c.generated and archive.column(c.name) is not None]


def _mark_rest(conn, archive, params, outcome: str) -> int:
    return conn.execute(
        sql.SQL("UPDATE {} AS a SET ctb_2c_undo = %(outcome)s WHERE {} AND a.ctb_2c_undo IS NULL").format(
            qualified(archive.name), PENDING
        ),
        {**params, "outcome": outcome},
    ).rowcount


def _restore_removed(conn, archive, live, params) -> dict[str, int]:
    columns = _columns(archive, live)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = sql.SQL(", ").join(sql.SQL("a.{}").format(sql.Identifier(c)) for c in columns)
    table, pending = qualified(archive.name), PENDING
    if not live.primary_key:  # nothing to conflict on: every removed row goes back, once
        restored = conn.execute(
            sql.SQL(
                "WITH marked AS (UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() "
                "WHERE {pending} RETURNING {values}) INSERT INTO {live} ({names}) SELECT {names} FROM marked"
            ).format(table=table, pending=pending, values=values, live=qualified(live.name), names=names),
            params,
        ).rowcount
        return {"restored": restored}
    key = sql.SQL(" AND ").join(sql.SQL("l.{c} = a.{c}").format(c=sql.Identifier(c)) for c in live.primary_key)
    conn.execute(
        sql.SQL(
            "UPDATE {table} AS a SET ctb_2c_undo = CASE WHEN EXISTS (SELECT 1 FROM {live} l WHERE {key}) "
            "THEN 'conflict' END WHERE {pending}"
        ).format(table=table, live=qualified(live.name), key=key, pending=pending),
        params,
    )
    restored = conn.execute(
        sql.SQL(
            "WITH inserted AS (INSERT INTO {live} ({names}) SELECT {values} FROM {table} AS a "
            "WHERE {pending} AND a.ctb_2c_undo IS NULL ON CONFLICT DO NOTHING RETURNING {pk}) "
            "UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() FROM inserted l "
            "WHERE {pending} AND a.ctb_2c_undo IS NULL AND {key}"
        ).format(
            live=qualified(live.name),
            names=names,
            values=values,
            table=table,
            pending=pending,
            pk=sql.SQL(", ").join(map(sql.Identifier, live.primary_key)),
            key=key,
        ),
        params,
    ).rowcount
    _mark_rest(conn, archive, params, "conflict")  # another unique key of the row was taken
    conflicts = conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS a WHERE {} AND a.ctb_2c_undo = 'conflict'").format(table, pending),
        params,
    ).fetchone()[0]
    return {"restored": restored, "conflict": conflicts}


def _restore_changed(conn, archive, live, params) -> dict[str, int]:
    columns = _columns(archive, live)
    assignments = sql.SQL(", ").join(sql.SQL("{c} = a.{c}").format(c=sql.Identifier(c)) for c in columns)
    table, pending = qualified(archive.name), PENDING
    conn.execute(sql.SQL("UPDATE {} AS a SET ctb_2c_undo = NULL WHERE {}").format(table, pending), params)
    # the live row is the one whose content is what the cleanup left (the cleanup may have changed
    # its key, and a table may have none); equal rows are paired in order
    restored = conn.execute(
        sql.SQL(
            "WITH a AS (SELECT a.*, row_number() OVER (PARTITION BY a.ctb_2c_after ORDER BY a.ctb_2c_id) AS n "
            "FROM {table} AS a WHERE {pending}), "
            "l AS (SELECT l.ctid AS row_ctid, md5(l::text) AS after, row_number() OVER (PARTITION BY md5(l::text)) AS n "
            "FROM {live} AS l WHERE md5(l::text) IN (SELECT ctb_2c_after FROM a)), "
            "restored AS (UPDATE {live} AS t SET {assignments} FROM a JOIN l ON l.after = a.ctb_2c_after AND l.n = a.n "
            "WHERE t.ctid = l.row_ctid RETURNING a.ctb_2c_id) "
            "UPDATE {table} AS a SET ctb_2c_undo = 'restored', ctb_2c_undone_at = now() "
            "WHERE a.ctb_2c_id IN (SELECT ctb_2c_id FROM restored)"
        ).format(table=table, pending=pending, live=qualified(live.name), assignments=assignments),
        params,
    ).rowcount
    return {"restored": restored, "edited_since": _mark_rest(conn, archive, params, "edited_since")}
