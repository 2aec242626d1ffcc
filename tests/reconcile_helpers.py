"""Helpers for reconcile tests: hand-made real-world states on a fixture clone, and `decide`."""

from __future__ import annotations

from psycopg import sql

from ple.reorg import decisions, proposals
from ple.reorg import plan as plan_module


def decide(conn, plan=None) -> dict:
    """`make decide ACCEPT=proposed` for the connection's database; returns the file's data."""
    plan = plan or plan_module.load()
    current = decisions.for_connection(conn)
    proposed = proposals.propose(conn, plan, current)
    decisions.write(proposed, current.path)
    return proposed


def text_column(conn, table: str) -> str:
    schema, name = table.split(".")
    return conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND (data_type = 'text' OR (data_type = 'character varying' AND coalesce(character_maximum_length, 999) > 40)) "
        "ORDER BY ordinal_position DESC LIMIT 1",
        (schema, name),
    ).fetchone()[0]


def stale_hand_copy(conn, source: str, archive: str) -> None:
    """What the hand run of 2026-02-06 did: a copy with archived_at beside the live source, of part
    of its rows; then the source kept changing (rows edited since)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS archive")
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT *, timestamptz '2026-02-06 12:00+00' AS archived_at FROM {} "
            "WHERE ctid IN (SELECT ctid FROM {} LIMIT (SELECT count(*) * 2 / 3 FROM {}))"
        ).format(
            sql.Identifier(*archive.split(".")),
            sql.Identifier(*source.split(".")),
            sql.Identifier(*source.split(".")),
            sql.Identifier(*source.split(".")),
        )
    )
    column = text_column(conn, source)
    conn.execute(
        sql.SQL(
            "UPDATE {t} SET {c} = coalesce({c}, '') || ' (edited since)' WHERE ctid IN (SELECT ctid FROM {t} LIMIT 3)"
        ).format(t=sql.Identifier(*source.split(".")), c=sql.Identifier(column))
    )


def production_like(conn) -> None:
    """A pre-plan fixture clone brought into the kinds of state production_state.md describes."""
    stale_hand_copy(conn, "company.company_master", "archive.company_company_master_ctb")
    stale_hand_copy(conn, "marketing.failed_no_pattern", "archive.marketing_failed_no_pattern_ctb")
    # dropped on 2026-02-20: a merge source, a fold side table, a table to reclassify
    for table in ("outreach.people_errors", "people.person_scores", "bit.movement_events"):
        conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(*table.split("."))))
    # moved by hand
    conn.execute("ALTER TABLE company.url_discovery_failures SET SCHEMA outreach")
    # the audit merge target is gone; the hand run put audit rows into outreach.ctb_audit_log
    conn.execute("DROP TABLE outreach.pipeline_audit_log CASCADE")
    conn.execute(
        "CREATE TABLE outreach.ctb_audit_log (audit_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "source_hub varchar(50) NOT NULL, source_table text NOT NULL, log_data jsonb NOT NULL, original_id text, "
        "original_created_at timestamptz, ctb_merged_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute(
        "INSERT INTO outreach.ctb_audit_log (source_hub, source_table, log_data) "
        "SELECT 'hand', 'outreach.dol_audit_log', '{}'::jsonb FROM generate_series(1, 5)"
    )
