"""The five steps of the 2C cleanup and what each one writes through: archive first, under row
locks, then change exactly the rows archived; a guard's refusal makes the step blocked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors, sql

from ple.catalog import read_catalog
from ple.config import REPO_ROOT
from ple.errors import PermanentError, VerificationFailed
from ple.sqlutil import qualified, raw_template

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


def run_step(conn, name: str, run_id: str, durable: bool, artifacts: Path) -> StepResult:
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
