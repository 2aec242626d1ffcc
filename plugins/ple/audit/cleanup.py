"""Phase 2C cleanup: the five steps of the plan's cleanup script, set-based and undoable.

1. backfill NULL spine domains from CL;
2. export duplicate spine domains for manual merge (a CSV per run; nothing changes);
3. attach orphan people to a free slot of the spine company their email domain names;
4. de-duplicate emails in people.people_master: the earliest record survives, the others' slots
   and every other reference move to it, then the duplicates are removed;
5. archive and remove orphan slots.

Every row a step changes or removes is first copied, whole, to archive.<schema>_<table>_2c with
the run id, the step and what happened to it (update or delete), so `undo` can put it back. A
step is one transaction; a second run finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ple.catalog import read_catalog
from ple.config import REPO_ROOT
from ple.db import transaction, with_lock_retry
from ple.ops import ensure_schema
from ple.sqlutil import qualified, raw_template

ARCHIVE_COLUMNS = (
    ("ctb_2c_run_id", "text"),
    ("ctb_2c_step", "text"),
    ("ctb_2c_action", "text"),
    ("ctb_2c_archived_at", "timestamptz"),
)
DEFAULT_ARTIFACTS = REPO_ROOT / "artifacts" / "phase_2c"


@dataclass
class StepResult:
    step: str
    rows_touched: int = 0
    archived_rows: int = 0
    artifact: str | None = None
    details: dict = field(default_factory=dict)

    def describe(self, applied: bool) -> str:
        verb = "touched" if applied else "would touch"
        text = f"{self.step}: {verb} {self.rows_touched:,} rows"
        if self.archived_rows:
            text += f" ({self.archived_rows:,} rows saved to archive first)"
        if self.artifact:
            text += f"; artifact {self.artifact}"
        if self.details:
            text += f"; {self.details}"
        return text


def archive_name(table: str) -> str:
    return f"archive.{table.replace('.', '_')}_2c"


def save(
    conn: psycopg.Connection, table: str, where: sql.Composable, params: dict, run_id: str, step: str, action: str
) -> int:
    """Copy the rows of `table` matching `where` (over alias t) to its 2C archive, whole."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS archive")
    target = archive_name(table)
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {})").format(qualified(target), qualified(table)))
    catalog = read_catalog(conn, ["archive", table.split(".", maxsplit=1)[0]])
    source, archived = catalog.get(table), catalog.get(target)
    for column in source.columns:  # the live table may have gained columns since the archive was made
        if archived.column(column.name) is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    qualified(target), sql.Identifier(column.name), sql.SQL(column.type)
                )
            )
    for name, column_type in ARCHIVE_COLUMNS:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                qualified(target), sql.Identifier(name), sql.SQL(column_type)
            )
        )
    columns = [c.name for c in source.columns]
    return conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}, ctb_2c_run_id, ctb_2c_step, ctb_2c_action, ctb_2c_archived_at) SELECT {}, {}, {}, {}, now() FROM {} AS t WHERE {}"
        ).format(
            qualified(target),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
            sql.Literal(run_id),
            sql.Literal(step),
            sql.Literal(action),
            qualified(table),
            where,
        ),
        params,
    ).rowcount


# ---------------------------------------------------------------------------------------- steps
def backfill_null_domains(conn, run_id: str, apply: bool, artifacts: Path) -> StepResult:
    result = StepResult("backfill_null_domains")
    candidates = sql.SQL(
        "t.outreach_id IN (SELECT o.outreach_id FROM outreach.outreach o JOIN cl.company_identity ci ON ci.outreach_id = o.outreach_id "
        "WHERE coalesce(o.domain, '') = '' AND coalesce(ci.company_domain, '') <> '')"
    )
    if not apply:
        result.rows_touched = conn.execute(
            sql.SQL("SELECT count(*) FROM outreach.outreach t WHERE {}").format(candidates)
        ).fetchone()[0]
        return result
    result.archived_rows = save(conn, "outreach.outreach", candidates, {}, run_id, result.step, "update")
    result.rows_touched = conn.execute(
        "UPDATE outreach.outreach o SET domain = d.domain, updated_at = now() FROM "
        "(SELECT outreach_id, min(company_domain) AS domain FROM cl.company_identity WHERE coalesce(company_domain, '') <> '' GROUP BY outreach_id) d "
        "WHERE d.outreach_id = o.outreach_id AND coalesce(o.domain, '') = ''"
    ).rowcount
    return result


def export_duplicate_domains(conn, run_id: str, apply: bool, artifacts: Path) -> StepResult:
    result = StepResult("export_duplicate_domains")
    query = raw_template("audit/duplicate_domains")
    result.rows_touched = 0
    result.details["duplicate_domains"] = conn.execute(f"SELECT count(*) FROM ({query}) d").fetchone()[0]
    if not apply:
        return result
    path = artifacts / run_id.replace(":", "_").replace("+", "_") / "duplicate_domains.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        conn.cursor() as cur,
        path.open("wb") as out,
        cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER true)").format(sql.SQL(query))) as copy,
    ):
        for chunk in copy:
            out.write(chunk)
    result.artifact = str(path)
    return result


def attach_orphan_people(conn, run_id: str, apply: bool, artifacts: Path) -> StepResult:
    result = StepResult("attach_orphan_people")
    pairs = raw_template("audit/orphan_pairs")
    orphans = conn.execute(
        "SELECT count(*) FROM people.people_master p WHERE NOT EXISTS (SELECT 1 FROM people.company_slot s WHERE s.person_unique_id = p.unique_id)"
    ).fetchone()[0]
    if not apply:
        result.rows_touched = conn.execute(f"SELECT count(*) FROM ({pairs}) o").fetchone()[0]
        result.details["orphans_left_unattached"] = orphans - result.rows_touched
        return result
    conn.execute(f"CREATE TEMP TABLE orphan_pairs ON COMMIT DROP AS {pairs}")
    result.rows_touched = conn.execute("SELECT count(*) FROM orphan_pairs").fetchone()[0]
    result.details["orphans_left_unattached"] = orphans - result.rows_touched
    if not result.rows_touched:
        return result
    result.archived_rows = save(
        conn,
        "people.company_slot",
        sql.SQL("t.slot_id IN (SELECT slot_id FROM orphan_pairs)"),
        {},
        run_id,
        result.step,
        "update",
    )
    result.archived_rows += save(
        conn,
        "people.people_master",
        sql.SQL("t.unique_id IN (SELECT unique_id FROM orphan_pairs)"),
        {},
        run_id,
        result.step,
        "update",
    )
    conn.execute(
        "UPDATE people.company_slot s SET person_unique_id = o.unique_id, is_filled = true, filled_at = now(), updated_at = now() "
        "FROM orphan_pairs o WHERE s.slot_id = o.slot_id"
    )
    conn.execute(
        "UPDATE people.people_master p SET company_unique_id = o.company_unique_id, company_slot_unique_id = o.slot_id::text, updated_at = now() "
        "FROM orphan_pairs o WHERE p.unique_id = o.unique_id"
    )
    return result


def dedupe_emails(conn, run_id: str, apply: bool, artifacts: Path) -> StepResult:
    """The earliest record of an email survives. Everything that points at a duplicate (its slots,
    and the rows of every table with a foreign key to people.people_master) moves to the
    survivor; where a referencing table allows one row per person and the survivor already has
    one, the duplicate's row is archived and removed instead. Then the duplicates are removed."""
    result = StepResult("dedupe_emails")
    duplicates = raw_template("audit/duplicate_people")
    if not apply:
        result.rows_touched = conn.execute(f"SELECT count(*) FROM ({duplicates}) d").fetchone()[0]
        result.details["slots_reassigned"] = conn.execute(
            f"SELECT count(*) FROM people.company_slot WHERE person_unique_id IN (SELECT loser FROM ({duplicates}) d)"
        ).fetchone()[0]
        return result
    conn.execute(f"CREATE TEMP TABLE duplicate_people ON COMMIT DROP AS {duplicates}")
    conn.execute("ALTER TABLE duplicate_people ADD PRIMARY KEY (loser)")
    result.rows_touched = conn.execute("SELECT count(*) FROM duplicate_people").fetchone()[0]
    result.details["slots_reassigned"] = conn.execute(
        "SELECT count(*) FROM people.company_slot WHERE person_unique_id IN (SELECT loser FROM duplicate_people)"
    ).fetchone()[0]
    if not result.rows_touched:
        return result
    losers = sql.SQL("t.{} IN (SELECT loser FROM duplicate_people)")
    archived = save(
        conn,
        "people.company_slot",
        losers.format(sql.Identifier("person_unique_id")),
        {},
        run_id,
        result.step,
        "update",
    )
    conn.execute(
        "UPDATE people.company_slot s SET person_unique_id = d.survivor, updated_at = now() FROM duplicate_people d WHERE s.person_unique_id = d.loser"
    )
    references = conn.execute(
        raw_template("catalog/referencing_columns"), {"table": "people.people_master", "column": "unique_id"}
    ).fetchall()
    moved = {}
    for table, column, unique in references:
        referencing = losers.format(sql.Identifier(column))
        if unique:  # one row per person: where the survivor has its own row, the duplicate's is removed
            shadowed = sql.SQL(
                "{} AND EXISTS (SELECT 1 FROM duplicate_people d JOIN {} x ON x.{} = d.survivor WHERE d.loser = t.{})"
            ).format(referencing, qualified(table), sql.Identifier(column), sql.Identifier(column))
            archived += save(conn, table, shadowed, {}, run_id, result.step, "delete")
            conn.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(qualified(table), shadowed))
        archived += save(conn, table, referencing, {}, run_id, result.step, "update")
        moved[table] = conn.execute(
            sql.SQL("UPDATE {} r SET {} = d.survivor FROM duplicate_people d WHERE r.{} = d.loser").format(
                qualified(table), sql.Identifier(column), sql.Identifier(column)
            )
        ).rowcount
    archived += save(
        conn, "people.people_master", losers.format(sql.Identifier("unique_id")), {}, run_id, result.step, "delete"
    )
    conn.execute("DELETE FROM people.people_master p USING duplicate_people d WHERE p.unique_id = d.loser")
    result.archived_rows = archived
    result.details["references_moved"] = moved
    return result


def remove_orphan_slots(conn, run_id: str, apply: bool, artifacts: Path) -> StepResult:
    result = StepResult("remove_orphan_slots")
    orphan = sql.SQL("NOT EXISTS (SELECT 1 FROM outreach.outreach o WHERE o.outreach_id = t.outreach_id)")
    result.rows_touched = conn.execute(
        sql.SQL("SELECT count(*) FROM people.company_slot t WHERE {}").format(orphan)
    ).fetchone()[0]
    if not apply or not result.rows_touched:
        return result
    result.archived_rows = save(conn, "people.company_slot", orphan, {}, run_id, result.step, "delete")
    conn.execute(sql.SQL("DELETE FROM people.company_slot t WHERE {}").format(orphan))
    return result


STEPS: dict[str, Callable] = {
    "backfill_null_domains": backfill_null_domains,
    "export_duplicate_domains": export_duplicate_domains,
    "attach_orphan_people": attach_orphan_people,
    "dedupe_emails": dedupe_emails,
    "remove_orphan_slots": remove_orphan_slots,
}


def run_step(
    conn, name: str, run_id: str, apply: bool, artifacts: Path = DEFAULT_ARTIFACTS, lock_timeout: str = "2s"
) -> StepResult:
    """One step in one transaction (read-only in plan mode), retried on lock timeouts, recorded."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    if apply:
        ensure_schema(conn)

    def work() -> StepResult:
        with transaction(conn, read_only=not apply, lock_timeout=lock_timeout, statement_timeout="1h"):
            if apply:
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ple.phase_2c_cleanup', 0))")
            result = STEPS[name](conn, run_id, apply, artifacts)
            if apply:
                conn.execute(
                    "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, archived_rows, artifact, details, started_at, duration_ms, outcome) "
                    "VALUES (%s, %s, 'apply', %s, %s, %s, %s, %s, %s, %s)",
                    (
                        run_id,
                        name,
                        result.rows_touched,
                        result.archived_rows,
                        result.artifact,
                        Jsonb(result.details),
                        started,
                        int((time.monotonic() - clock) * 1000),
                        "applied" if result.rows_touched or result.artifact else "nothing_to_do",
                    ),
                )
            return result

    return with_lock_retry(work)


def undo(conn, run_id: str) -> dict[str, int]:
    """Put back every row a cleanup run changed or removed, last step first."""
    restored: dict[str, int] = {}
    steps = [s for s in reversed(STEPS) if s != "export_duplicate_domains"]
    with transaction(conn, statement_timeout="1h"):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ple.phase_2c_cleanup', 0))")
        catalog = read_catalog(conn)
        archives = [t for t in catalog.tables.values() if t.name.startswith("archive.") and t.name.endswith("_2c")]
        for step in steps:
            for action in ("delete", "update"):  # removed rows first: references may point at them
                for archive in sorted(archives, key=lambda a: a.name != "archive.people_people_master_2c"):
                    live_name = _live_table(archive.name, catalog)
                    live = catalog.get(live_name)
                    if live is None or not live.primary_key:
                        continue
                    restored[f"{step}:{live_name}:{action}"] = _restore(conn, archive, live, run_id, step, action)
        conn.execute(
            "INSERT INTO ple_ops.cleanup_ledger (run_id, step, mode, rows_touched, started_at, duration_ms, outcome, details) "
            "VALUES (%s, 'all', 'undo', %s, now(), 0, 'undone', %s)",
            (run_id, sum(restored.values()), Jsonb({k: v for k, v in restored.items() if v})),
        )
    return {k: v for k, v in restored.items() if v}


def _live_table(archive: str, catalog) -> str:
    stem = archive.removeprefix("archive.").removesuffix("_2c")
    for name in catalog.tables:
        if name.replace(".", "_") == stem and not name.startswith("archive."):
            return name
    return ""


def _restore(conn, archive, live, run_id: str, step: str, action: str) -> int:
    columns = [c.name for c in live.columns if not c.generated and archive.column(c.name) is not None]
    key = sql.SQL(" AND ").join(sql.SQL("l.{c} = a.{c}").format(c=sql.Identifier(c)) for c in live.primary_key)
    source = sql.SQL(
        "(SELECT DISTINCT ON ({pk}) * FROM {a} WHERE ctb_2c_run_id = %(run)s AND ctb_2c_step = %(step)s AND ctb_2c_action = %(action)s ORDER BY {pk}, ctb_2c_archived_at) AS a"
    ).format(pk=sql.SQL(", ").join(map(sql.Identifier, live.primary_key)), a=qualified(archive.name))
    params = {"run": run_id, "step": step, "action": action}
    if action == "delete":
        return conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                qualified(live.name),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.SQL("a.{}").format(sql.Identifier(c)) for c in columns),
                source,
            ),
            params,
        ).rowcount
    return conn.execute(
        sql.SQL("UPDATE {} AS l SET {} FROM {} WHERE {}").format(
            qualified(live.name),
            sql.SQL(", ").join(
                sql.SQL("{c} = a.{c}").format(c=sql.Identifier(c)) for c in columns if c not in live.primary_key
            ),
            source,
            key,
        ),
        params,
    ).rowcount
