"""Verify a phase: the tool's work proven, everyone else's changes reported.

Two kinds of rows, held to two standards:
- rows the tool owns once the phase ran: archived tables (merge sources, fold side tables, each
  proven against its preflight checksum), provenance copies in merge targets (each archived source
  = its merged copies + the rows whose key the target kept), folded values (each equal to the
  aggregate of its archived side rows), relocated tables (same OID and data file: identity, no
  scan). Any difference fails the phase; no option turns a lost tool-owned row into a pass.
- live tables (merge targets' own rows, moved tables, fold targets) keep taking writes from the
  application while the phase runs. Their differences from the snapshot are reported, never
  hidden, and never fail the phase: one INSERT into a moved table is not a loss.
Merged copies the application edited since the merge (their hash differs from what the merge
wrote) are reported. Merges reverted since are not counted.

The proof is SQL over the rows that moved, the snapshot, the ledger and the catalog. Great
Expectations is not run here: everything a phase suite could expect is already proven exactly (an
archived table's count and content by its checksum, a canonical key's uniqueness and non-nullness
by its primary-key constraint), and its start-up cost (2-3 s per phase) was most of a phase's time.
It judges data against expectations where that is the question: the nightly audit's thresholds and
the DOL import's contract.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import sql

from ple.catalog import read_catalog
from ple.errors import VerificationFailed
from ple.reorg.actions import module_for
from ple.reorg.context import StepReport
from ple.reorg.plan import Phase
from ple.reorg.proof import columns_gone, fingerprint, native_count, row_hash, stable_text
from ple.reorg.session import Session
from ple.sqlutil import qualified


def stored_snapshot(ex: Session, phase_id: str) -> list[tuple]:
    """The phase's preflight snapshot (this run's, else the latest):
    (table, oid, relfilenode, columns, rows, checksum, proof)."""
    rows = ex.conn.execute(
        "SELECT table_name, table_oid, relfilenode, columns, row_count, checksum, proof FROM ple_ops.table_snapshot "
        "WHERE phase = %s AND run_id = coalesce((SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s AND run_id = %s LIMIT 1), "
        "(SELECT run_id FROM ple_ops.table_snapshot WHERE phase = %s ORDER BY taken_at DESC LIMIT 1))",
        (phase_id, phase_id, ex.run_id, phase_id),
    ).fetchall()
    if not rows:
        raise VerificationFailed(f"no preflight snapshot for phase {phase_id}: run the phase's preflight first")
    return rows


def tool_owned(ex: Session, phase: Phase) -> set[str]:
    """Snapshot names of the tables whose every row belongs to the tool after the phase."""
    owned = set()
    for step in phase.steps:
        if step.kind == "ARCHIVE":
            owned.add(step.action.source)
        elif step.kind in ("MERGE", "FOLD"):
            owned |= {a.source for a in step.actions}
    return owned


def merged_rows(ex: Session, target: str) -> int:
    """Rows the ledger says are merged into `target` now: the latest apply or revert of each merge
    step, counted only where that is an apply (a merge reverted since counts nothing)."""
    return ex.conn.execute(
        "SELECT coalesce(sum((rows_after ->> target)::bigint) FILTER (WHERE outcome = 'applied'), 0) FROM ("
        " SELECT DISTINCT ON (step_id) rows_after, target, outcome FROM ple_ops.action_ledger"
        " WHERE action = 'MERGE' AND target = %s AND outcome IN ('applied', 'reverted') ORDER BY step_id, attempt_id DESC) l",
        (target,),
    ).fetchone()[0]


def edited_copies(ex: Session, target) -> int:
    """Merged copies in `target` that no longer hash to what the merge wrote (the application
    edited them: reported; revert keeps them)."""
    total = 0
    for (columns,) in ex.conn.execute(
        "SELECT DISTINCT columns FROM ple_ops.merged_row WHERE target_oid = %s", (target.oid,)
    ).fetchall():
        if any(target.column(c) is None for c in columns):
            continue
        total += ex.conn.execute(
            sql.SQL(
                "SELECT count(*) FROM ple_ops.merged_row AS m JOIN {} AS t ON t.ctb_source_table = m.source_table "
                "AND t.ctb_source_key = m.source_key WHERE m.target_oid = %s AND m.columns = %s AND {} <> m.row_hash"
            ).format(qualified(target.name), row_hash("t", list(columns))),
            (target.oid, list(columns)),
        ).fetchone()[0]
    return total


def verify_phase(ex: Session, phase_id: str) -> StepReport:
    """Tool-owned rows exactly, live tables reported, per-action proofs."""
    phase = ex.plan.phase(phase_id)
    step_id = f"{phase_id}__verify"
    started = datetime.now(UTC)
    if not ex.applying:
        return StepReport(
            step_id,
            "planned",
            f"{step_id}: would prove the tool's rows of {len(ex.touched(phase))} tables against the preflight "
            "snapshot and report live changes",
        )
    if not phase.steps:  # the preflight snapshots the tables of the steps the decisions leave in
        return StepReport(
            step_id,
            "verified",
            f"{step_id}: every action of phase {phase_id} was left out by the decisions (each skipped or adopted "
            "with its ledger row and evidence): no table moved, nothing to prove",
        )
    owned = tool_owned(ex, phase)
    canonical = {s.target for s in phase.steps if s.kind in ("MERGE", "FOLD", "ADD_PK")}
    rekeyed = {s.action.source for s in phase.steps if s.kind == "ADD_PK"}
    receiving = {s.target for s in phase.steps if s.kind in ("MERGE", "FOLD")}
    problems, reported, lines = [], [], []
    with ex.transaction(read_only=True):
        stable_text(ex.conn)
        catalog = read_catalog(ex.conn)
        by_oid = {t.oid: t for t in catalog.tables.values()}
        located = {}
        for name, oid, relfilenode, columns, rows, checksum, proof in stored_snapshot(ex, phase_id):
            table = by_oid.get(oid)
            if table is None:
                problems.append(f"{name} (oid {oid}) no longer exists")
                continue
            located[name] = table.name
            if proof != "checksum":
                # proven by identity: the same OID answers to its new name; for a table the tool owns
                # (an archive), the same data file too (a TRUNCATE or a rewrite gives it a new one)
                same_file = table.relfilenode == relfilenode
                line = f"  {name:<44} -> {table.name:<50} same table{', same data file' if same_file else ', NEW data file'}"
                if name in receiving:  # merge and fold targets: their own rows counted, changes reported
                    now_rows = native_count(ex.conn, table)
                    line += f", own rows {rows:,} -> {now_rows:,}"
                    if now_rows != rows:
                        reported.append(
                            f"live table changed by other sessions: {name}: rows {rows} -> {now_rows} since the "
                            "preflight snapshot"
                        )
                lines.append(line)
                if not same_file and name not in rekeyed:  # adding a key column may rewrite the table
                    message = f"{name}: data file {relfilenode} -> {table.relfilenode} since the preflight snapshot"
                    if name in owned:
                        problems.append(message + " (TRUNCATE, VACUUM FULL or a rewrite of an archive)")
                    else:
                        reported.append(f"live table rewritten since the preflight snapshot: {message}")
                continue
            gone = columns_gone(name, table, columns)
            if gone:
                (problems if name in owned else reported).append(gone)
                continue
            merged_into = table.column("ctb_source_table") is not None
            now = fingerprint(ex.conn, table, list(columns), native_only=merged_into)
            same = (now.rows, now.checksum) == (rows, int(checksum))
            merged = merged_rows(ex, table.name) if merged_into else 0
            lines.append(
                f"  {name:<44} -> {table.name:<50} rows {rows:>9,} -> {now.rows + merged:>9,}"
                + (f" (+{merged:,} merged)" if merged_into else "")
                + f"  checksum {'equal' if same else 'DIFFERS'}"
            )
            if not same:
                message = (
                    f"{name}: rows {rows} -> {now.rows}, content checksum "
                    f"{'equal' if now.checksum == int(checksum) else 'differs'} since the preflight snapshot"
                )
                if name in owned:
                    problems.append(message)
                else:
                    reported.append(f"live table changed by other sessions: {message}")
        for target in sorted(canonical):
            table = catalog.get(target)
            if table is None:
                continue
            if table.column("ctb_source_table") is not None:
                edited = edited_copies(ex, table)
                if edited:
                    reported.append(f"{target}: {edited} merged rows were edited since the merge (kept; reported)")
                lines.append(f"  {target:<44} merged rows now: {merged_rows(ex, target):,} (ledger)")
            if not table.primary_key:
                problems.append(f"{target} has no primary key: its rows cannot be told apart")
        ctx = ex.context(catalog)
        for step in phase.steps:
            problems += module_for(step).verify(ctx, step, located)
    text = "\n".join(
        [
            f"{step_id}: {len(located)} tables against the snapshot ({len(owned)} owned by the tool now)",
            *lines,
            *[f"  REPORTED: {r}" for r in reported],
            *[f"  PROBLEM: {p}" for p in problems],
        ]
    )
    outcome = "applied" if not problems else "failed"
    with ex.transaction():
        ex.write_ledger(
            phase_id,
            step_id,
            "VERIFY",
            started,
            outcome,
            details={
                "tables": located,
                "problems": problems,
                "live_changes": reported,
            },
        )
    if problems:
        raise VerificationFailed(text)
    return StepReport(step_id, "applied", text, {"tables": len(located), "live_changes": len(reported)})
