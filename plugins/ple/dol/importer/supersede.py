"""Amendments and Schedule A links, after the write: every row stays in the live table, the
superseded table or the errors table.

Filings an amendment replaced move, whole, to <table>_superseded with the ACK_ID that replaced
them (nothing is deleted); Schedule A rows point at their filing, whichever arrived first.
"""

from __future__ import annotations

from psycopg import sql

from ple.dol import target
from ple.dol.importer.state import LOSERS, STAGE
from ple.dol.layouts import DATASETS, Dataset
from ple.sqlutil import qualified, raw_template


def supersede(conn, dataset: Dataset, live: target.LiveTable, superseded: target.LiveTable) -> tuple[int, int]:
    """Amended filings replace their originals: for each plan and plan year this file touched,
    the filing received last (then the greatest ACK_ID) stays; the others move, whole, to
    <table>_superseded with the ACK_ID that replaced them. Nothing is deleted. The losers are
    found first (one join and one sort); the move runs only when something lost.
    Returns (rows moved, of those the rows of this file)."""
    if not dataset.plan_identity or not all(live.has(c) for c in dataset.plan_identity):
        return 0, 0
    order = sql.SQL("f.date_received DESC NULLS LAST, f.ack_id DESC" if live.has("date_received") else "f.ack_id DESC")
    kept = [c for c in live.columns if c in superseded.columns and c not in ("superseded_by_ack_id", "superseded_at")]

    def identity(alias: str) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in dataset.plan_identity
        )

    def joined(left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{l}.{c} = {r}.{c}").format(l=sql.Identifier(left), r=sql.Identifier(right), c=sql.Identifier(c))
            for c in dataset.plan_identity
        )

    losers = conn.execute(
        sql.SQL(raw_template("dol/import/losers")).format(
            losers=sql.Identifier(LOSERS),
            sidentity=identity("s"),
            fidentity=identity("f"),
            stage=sql.Identifier(STAGE),
            live=qualified(live.name),
            ft=joined("f", "t"),
            order=order,
        )
    ).rowcount
    if not losers:
        return 0, 0
    statement = sql.SQL(raw_template("dol/import/supersede")).format(
        live=qualified(live.name),
        losers=sql.Identifier(LOSERS),
        superseded=qualified(superseded.name),
        kept=sql.SQL(", ").join(map(sql.Identifier, kept)),
    )
    moved = conn.execute(statement).rowcount
    of_file = conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS r WHERE EXISTS (SELECT 1 FROM {} AS s WHERE s.ack_id = r.ack_id)").format(
            sql.Identifier(LOSERS), sql.Identifier(STAGE)
        )
    ).fetchone()[0]
    return moved, of_file


def link_schedule_a(conn, dataset: Dataset) -> None:
    """Schedule A rows point at their filing, whichever of the two arrived first (only the rows
    of this file's filings are looked at; the join starts from Schedule A, so a filings file
    whose schedules have not arrived costs nothing)."""
    schedule, filings = DATASETS["F_SCH_A"].table, DATASETS["F_5500"].table
    for name in (schedule, filings):
        live = target.inspect(conn, name)
        if live is None or not live.has("filing_id"):
            return
    conn.execute(
        sql.SQL(raw_template("dol/import/link_schedule_a")).format(
            schedule=qualified(schedule), filings=qualified(filings), stage=sql.Identifier(STAGE)
        )
    )
