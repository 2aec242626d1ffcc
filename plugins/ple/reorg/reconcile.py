"""Reconcile: the state of every plan action in the live database, and the evidence for it.

The plan describes a database before its Phase 1. A real database may be anywhere between: part of
the plan done by hand (archive *copies* beside live sources that kept growing), tables dropped
since, merges that landed in other tables. Before anything is applied, every action is classified:

  pending    its source is where the plan expects it and its destination is free;
  applied    this tool did it: a ledger row, and the live catalog agrees;
  adopted    in the plan's end state by other means, shown by evidence (the destination has the
             source's columns; its rows and content checksum are recorded as the baseline);
             the ledger records it as `adopted`, never as `applied`;
  conflict   the plan cannot run as written (a stale hand copy holds the archive name, a merge
             target is gone, the plan's column mapping does not fit the live columns);
  moot       the source is gone: dropped (with the list it is on), empty when last seen, or unknown.

Every conflict and moot action comes with a proposal: a decision (see decisions.py) that resolves
it without losing a row. Read-only: nothing here writes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from enum import StrEnum

import psycopg
import yaml
from psycopg import sql

from ple.catalog import Catalog, TableInfo
from ple.config import INCLUDE_DIR, INVENTORY_FILE
from ple.reorg import merge_mapping, tool_changes
from ple.reorg.ledger import ledger_outcomes
from ple.reorg.plan import Action, Plan, Step, new_column_names
from ple.reorg.proof import fingerprint
from ple.reporting import table
from ple.sqlutil import qualified, raw_template, split_qualified

DROPPED_TABLES_FILE = INCLUDE_DIR / "reference" / "dropped_tables_2026_02_20.yaml"
# Columns the hand run of 2026-02-06 added to its archive copies (CREATE TABLE ... AS SELECT *, ...).
HAND_COPY_COLUMNS = frozenset({"archived_at", "archive_reason", "ctb_archived_at"})
# Where the hand run put rows the plan sends elsewhere (production_state.md).
HAND_RUN_TARGETS = {
    "outreach.pipeline_audit_log": "outreach.ctb_audit_log",
    "outreach.entity_resolution_queue": "outreach.ctb_queue",
}
RELOCATING = ("ARCHIVE", "MOVE", "MERGE", "MERGE_JSONB", "MERGE_COLS")


class Status(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    ADOPTED = "adopted"
    CONFLICT = "conflict"
    MOOT = "moot"


@dataclass(frozen=True)
class Verdict:
    step_id: str
    action: Action
    status: Status
    evidence: str
    proposal: dict | None = None  # a decision entry for this action (decisions.py)
    target_proposal: dict | None = None  # a decision entry for its merge target
    facts: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def proposal_target(self) -> str | None:
        """The merge target `target_proposal` is about (a retargeted merge's new one)."""
        return self.facts.get("fit_target") or self.action.target

    @property
    def needs_decision(self) -> bool:
        """Conflicts, moot actions and adoptions: a person decides each (adoption too: the
        evidence is shown, and only a decision covered by the approval turns it into `adopted`)."""
        return self.status in (Status.CONFLICT, Status.MOOT, Status.ADOPTED)


@functools.cache
def dropped_tables() -> frozenset[str]:
    return frozenset(yaml.safe_load(DROPPED_TABLES_FILE.read_text(encoding="utf-8"))["tables"])


@functools.cache
def _inventory() -> dict:
    return json.loads(INVENTORY_FILE.read_text(encoding="utf-8"))["tables"]


def gone_because(name: str) -> str:
    """What is known about a table that does not exist."""
    if name in dropped_tables():
        return f"{name} was dropped on 2026-02-20 (empty when dropped: {DROPPED_TABLES_FILE.name})"
    rows = (_inventory().get(name) or {}).get("rows_2026_02_20")
    if rows == 0:
        return f"{name} does not exist; it was empty when last seen (inventory of 2026-02-20: 0 rows)"
    return f"{name} does not exist; why is unknown (not on the list of dropped tables)"


def destination(plan: Plan, action: Action) -> str | None:
    """The name the action's source will have when it is done (None: it stays where it is)."""
    if action.kind in ("ARCHIVE", "MOVE"):
        return action.target
    if action.kind in ("MERGE", "MERGE_JSONB", "MERGE_COLS"):
        return plan.archive_name(action.source)
    return None


def count_and_checksum(conn: psycopg.Connection, info: TableInfo, columns: list[str] | None = None) -> tuple[int, int]:
    fp = fingerprint(conn, info, columns)
    return fp.rows, fp.checksum


def rows_missing_from(conn: psycopg.Connection, left: TableInfo, right: TableInfo, columns: list[str]) -> int:
    """Rows of `left` (over `columns`) that `right` does not hold, duplicates counted."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL("SELECT count(*) FROM (SELECT {c} FROM {l} EXCEPT ALL SELECT {c} FROM {r}) AS d").format(
        c=cols, l=qualified(left.name), r=qualified(right.name)
    )
    return conn.execute(query).fetchone()[0]


def set_aside_name(conn: psycopg.Connection, catalog: Catalog, occupant: TableInfo) -> str:
    """A free, dated name for a table that holds a name the plan needs: `<name>_handcopy_<date>`
    for a hand copy (the date its rows were archived), `<name>_occupant_<today>` otherwise."""
    schema, name = split_qualified(occupant.name)
    stamp_column = next((c for c in ("archived_at", "ctb_archived_at") if occupant.column(c)), None)
    if stamp_column:
        date = conn.execute(
            sql.SQL("SELECT to_char(min({}), 'YYYYMMDD') FROM {}").format(
                sql.Identifier(stamp_column), qualified(occupant.name)
            )
        ).fetchone()[0]
        label = f"handcopy_{date or 'undated'}"
    else:
        label = "occupant_" + conn.execute("SELECT to_char(now(), 'YYYYMMDD')").fetchone()[0]
    base = f"{name[: 63 - len(label) - 4]}_{label}"
    candidate, n = base, 1
    while catalog.exists(f"{schema}.{candidate}"):
        n += 1
        candidate = f"{base[:60]}_{n}"
    return f"{schema}.{candidate}"


def _is_hand_copy(source_columns: set[str], occupant: TableInfo) -> bool:
    extra = set(occupant.column_names) - source_columns
    return bool(extra) and extra <= HAND_COPY_COLUMNS and source_columns <= set(occupant.column_names)


def fill_by_type(column) -> dict | None:
    """A lossless fill rule for a required column the plan does not fill: the row itself (JSONB),
    the merge time, a UUID derived from the provenance key, or the discriminator value (text).
    Numbers and other types get none: inventing them would be making data up."""
    if column is None:
        return None
    if column.type_name == "jsonb":
        return {"generate": "source_row"}
    if column.type_category == "D":
        return {"generate": "merged_at"}
    if column.type_name == "uuid":
        return {"generate": "uuid"}
    if column.type_category == "S":
        return {"discriminator": True}
    return None


def _create_proposal(spec) -> dict:
    """A gone merge target, re-created with the columns the plan's fill rules describe."""
    types = {"source_row": "jsonb", "merged_at": "timestamptz", "uuid": "uuid"}
    columns = {name: types.get(rule.get("generate"), "text") for name, rule in (spec.fill if spec else {}).items()}
    if columns:
        return {"create": {"columns": columns}}
    return {"create": {"columns": {"merged_at": "timestamptz"}}, "fill": {"merged_at": {"generate": "merged_at"}}}


def _known_columns(name: str) -> list[str] | None:
    columns = (_inventory().get(name) or {}).get("columns")
    return [c["name"] for c in columns] if columns else None


class Reconciler:
    """Classifies actions against one read of the catalog and the ledger."""

    def __init__(self, conn: psycopg.Connection, plan: Plan, catalog: Catalog, effective: Plan | None = None):
        self.conn = conn
        self.plan = plan
        self.effective = effective or plan
        self.catalog = catalog
        self.ledger = ledger_outcomes(conn)
        self._decided = {a.source: a for a in self.effective.actions}
        self._registry = (
            dict(conn.execute(raw_template("governance/registry_rows"), {}).fetchall())
            if catalog.exists("ctb.table_registry")
            else {}
        )

    def gone_because(self, name: str) -> str:
        """What the live database says about a table that does not exist: the owner's registry (it
        lists tables when they are created, so a row there for a missing table means it was dropped
        since), where its columns live on now (a copy the owner made, e.g. into vendor.*), and the
        published list of 2026-02-20 and the inventory."""
        reason = gone_because(name)
        entry = self._registry.get(name)
        if entry is not None:
            when = str(entry.get("created_at") or "")[:10] or "at an unknown date"
            reason = (
                f"{name} does not exist, but the owner's registry lists it ({entry.get('leaf_type')}, registered "
                f"{when} by {entry.get('registered_by') or 'unknown'}): dropped after it was registered"
                + (f"; also {reason}" if name in dropped_tables() else "")
            )
        elsewhere = self._lives_elsewhere(name)
        return f"{reason}; {elsewhere}" if elsewhere else reason

    def _lives_elsewhere(self, name: str) -> str | None:
        """Where the gone table's rows live on: tables whose `source_table` column names it (the
        owner's vendor copies record their origin so), else a live table holding most of its
        columns (inventory of 2026-02-20)."""
        copies = self._copy_counts.get(name)
        if copies:
            return "its rows live on in " + ", ".join(
                f"{table} ({rows:,} rows whose source_table names it)" for table, rows in sorted(copies.items())
            )
        known = _known_columns(name)
        if not known or len(known) < 3:
            return None
        best = []
        for info in self.catalog.tables.values():
            if info.kind not in ("r", "p") or info.name.split(".")[0] in (self.plan.archive_schema, "ple_ops", "ctb"):
                continue
            shared = len(set(known) & set(info.column_names))
            if shared >= max(3, int(0.8 * len(known))):
                best.append((shared, info.name))
        if not best:
            return None
        shared, where = max(best)
        return f"its columns live on in {where} ({shared} of its {len(known)} columns): its rows may have been copied there"

    @functools.cached_property
    def _copy_counts(self) -> dict[str, dict[str, int]]:
        """{plan table: {table: rows}} for the rows of live tables whose source_table names a table of the plan."""
        names = {a.source for a in self.plan.actions} | {a.target for a in self.plan.actions if a.target}
        names |= {  # the Phase 2 tables too: the leaf lock explains a gone one with the same evidence
            t for classes in self.plan.leaf_lock.get("sub_hubs", {}).values() for ts in classes.values() for t in ts
        }
        wanted = sorted(names | {n.split(".", 1)[1] for n in names})
        result: dict[str, dict[str, int]] = {}
        for info in self.catalog.tables.values():
            column = info.column("source_table")
            if (
                column is None
                or column.type_category != "S"
                or info.kind not in ("r", "p")  # a view may fail to read, a materialized view be unpopulated
                or info.name.split(".")[0] in (self.plan.archive_schema, "ple_ops")
            ):
                continue
            query = sql.SQL("SELECT source_table, count(*) FROM {} WHERE source_table = ANY(%s) GROUP BY 1").format(
                qualified(info.name)
            )
            try:
                with self.conn.transaction():  # a table this role may not read is no evidence either way
                    found = self.conn.execute(query, (wanted,)).fetchall()
            except psycopg.Error:
                continue
            for named, rows in found:
                full = named if "." in named else next((n for n in names if n.split(".", 1)[1] == named), named)
                result.setdefault(full, {})[info.name] = rows
        return result

    # ------------------------------------------------------------------ entry points
    def verdicts(self, phases: list[str] | None = None) -> list[Verdict]:
        selected = [self.plan.phase(p) for p in phases] if phases else list(self.plan.phases)
        return [self.verdict(step, action) for phase in selected for step in phase.steps for action in step.actions]

    def verdict(self, step: Step, action: Action) -> Verdict:
        done = self.ledger.get(f"{step.step_id}.{action.slug}") or self.ledger.get(step.step_id)
        if action.kind in RELOCATING:
            result = self._relocating(step, action, done)
        elif action.kind == "ADD_PK":
            result = self._add_pk(step, action, done)
        else:
            result = self._in_place(step, action, done)
        decided = self._decided.get(action.source)
        if decided is None or action.kind not in ("MERGE", "MERGE_JSONB", "MERGE_COLS"):
            return result
        if result.status == Status.PENDING:
            return self._fit_merge(result, decided) if decided.kind == "MERGE" else self._fit_fold(result, decided)
        if result.facts.get("occupant"):  # set aside first; does the rest of the plan fit?
            pending = dataclasses.replace(result, status=Status.PENDING, proposal=None)
            fitted = self._fit_merge(pending, decided) if decided.kind == "MERGE" else self._fit_fold(pending, decided)
            if fitted.status == Status.CONFLICT:
                return dataclasses.replace(
                    result,
                    evidence=fitted.evidence,
                    proposal={**result.proposal, **(fitted.proposal or {})},
                    target_proposal=fitted.target_proposal,
                    facts=fitted.facts | result.facts,
                )
        if result.facts.get("target_gone") and decided.target != action.target:
            # retargeted: does the plan fit the table the decision names?
            fitted = self._fit_merge(dataclasses.replace(result, status=Status.PENDING), decided)
            if fitted.target_proposal:
                return dataclasses.replace(
                    result, evidence=fitted.evidence, target_proposal=fitted.target_proposal, facts=fitted.facts
                )
        return result

    def _retarget_misfit(self, action: Action, hand: str) -> str | None:
        """Why merging into the hand run's table would not work (None: it would)."""

        spec = dataclasses.replace(self.plan.merge_targets[action.target], table=hand)
        target, source = self.catalog.get(hand), self.catalog.get(action.source)
        if not target.primary_key:  # verify proves a target's own rows unchanged by their key
            return "it has no primary key: its own rows could not be told apart from merged ones in the proof"
        uncovered = merge_mapping.mapping(action, spec, source, target, self.catalog).uncovered
        unfillable = [c for c in uncovered if fill_by_type(target.column(c)) is None]
        if unfillable:
            return f"its required columns {unfillable} have no lossless value"
        column = target.column(spec.discriminator_column)
        if column is not None:
            clashes = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {}::text = %s").format(
                    qualified(hand), sql.Identifier(column.name)
                ),
                (action.value,),
            ).fetchone()[0]
            if clashes:
                return f"{clashes} of its rows already have {column.name} = {action.value!r}: merged rows could not be told apart"
        return None

    # ------------------------------------------------------------------ does the plan fit the live columns?
    def _fit_merge(self, verdict: Verdict, action: Action) -> Verdict:

        spec = self.effective.merge_targets.get(action.target)
        source, target = self.catalog.get(action.source), self.catalog.get(action.target)
        if target is None and source is not None:
            # whatever else holds the names (a hand copy set aside first), the target must exist
            gone = self._target_gone(verdict.step_id, action, verdict.evidence)
            return dataclasses.replace(gone, facts=verdict.facts | gone.facts)
        if spec is None or source is None or target is None:
            return verdict
        uncovered = merge_mapping.mapping(action, spec, source, target, self.catalog).uncovered
        if not uncovered:
            return verdict
        fill = {c: rule for c in uncovered if (rule := fill_by_type(target.column(c))) is not None}
        unfillable = [c for c in uncovered if c not in fill]
        evidence = f"{verdict.evidence}; {action.target} requires {uncovered}, which nothing in the plan fills"
        if unfillable:
            evidence += f"; no lossless default exists for {unfillable}"
        return dataclasses.replace(
            verdict,
            status=Status.CONFLICT,
            evidence=evidence,
            target_proposal={"fill": fill} if fill else None,
            facts=verdict.facts | {"fit_target": action.target},
        )

    def _fit_fold(self, verdict: Verdict, action: Action) -> Verdict:
        source, target = self.catalog.get(action.source), self.catalog.get(action.target)
        if source is None or target is None:
            return verdict
        join = action.join
        keys = [(source, join.source), (target, join.target)]
        if join.via_table:
            via = self.catalog.get(join.via_table)
            keys += [(via, join.via_source), (via, join.via_target)] if via else [(None, join.via_table)]
        missing_keys = [f"{t.name}.{c}" if t else c for t, c in keys if t is None or t.column(c) is None]
        if missing_keys:
            return dataclasses.replace(
                verdict,
                status=Status.CONFLICT,
                evidence=f"{verdict.evidence}; join columns missing: {', '.join(missing_keys)}",
                proposal={
                    "skip": f"no join key ({', '.join(missing_keys)}): the side table stays where it is, unchanged"
                },
            )
        needed = [action.order_by] if action.order_by else []
        if action.pivot:
            needed += [action.pivot["key"], action.pivot["value"], action.pivot["latest_by"]]
        needed += [column for _, column in action.columns]
        missing = [c for c in needed if source.column(c) is None]

        taken = [  # a column this fold added before it stopped is its own (the tool's record says so)
            n
            for n in new_column_names(action)
            if target.column(n) is not None
            and not tool_changes.recorded(self.conn, target.oid, n, tool_changes.CREATED_COLUMN)
        ]
        if not missing and not taken:
            return verdict
        column = action.source.split(".")[1] if action.kind == "MERGE_COLS" else action.column
        while target.column(column) is not None:
            column = f"{column}_ctb"
        problems = []
        if missing:
            problems.append(f"the plan's mapping names columns {action.source} does not have: {missing}")
        if taken:
            filled = self._non_null(target, taken[0])
            problems.append(f"{action.target}.{taken[0]} exists already ({filled:,} non-NULL values, kept as they are)")
        return dataclasses.replace(
            verdict,
            status=Status.CONFLICT,
            evidence=f"{verdict.evidence}; {'; '.join(problems)}",
            proposal={"fold_as_jsonb": column},
        )

    def _non_null(self, info: TableInfo, column: str) -> int:
        return self.conn.execute(
            sql.SQL("SELECT count({}) FROM {}").format(sql.Identifier(column), qualified(info.name))
        ).fetchone()[0]

    # ------------------------------------------------------------------ kinds
    def _recorded(self, step: Step, action: Action, done: dict) -> Verdict:
        outcome = done["outcome"]
        what = f"ledger attempt #{done['attempt']} (run {done['run_id']}): {outcome}"
        if outcome == "skipped":
            return Verdict(
                step.step_id,
                action,
                Status.MOOT,
                f"{what}: {done['details'].get('reason', '')}",
                proposal={"skip": done["details"].get("reason", "skipped")},
                facts={"ledger": done["attempt"]},
            )
        status = Status.ADOPTED if outcome == "adopted" else Status.APPLIED
        return Verdict(step.step_id, action, status, what, facts={"ledger": done["attempt"]})

    def _relocating(self, step: Step, action: Action, done: dict | None) -> Verdict:
        source, dest = self.catalog.get(action.source), self.catalog.get(destination(self.plan, action))
        dest_name = destination(self.plan, action)
        if done and source is None and dest is not None:
            recorded = done["details"].get("table")
            oid = recorded.get("oid") if isinstance(recorded, dict) else done["details"].get("oid")
            verdict = self._recorded(step, action, done)
            if oid is None or oid == dest.oid:
                return verdict
        if done and done["outcome"] == "skipped":
            return self._recorded(step, action, done)
        if source is not None and dest is None:
            return self._pending_relocation(step, action, source)
        if source is not None and dest is not None:
            return self._occupied(step, action, source, dest)
        if source is None and dest is not None:
            return self._source_gone_destination_there(step, action, dest)
        reason = self.gone_because(action.source)
        return Verdict(
            step.step_id,
            action,
            Status.MOOT,
            f"{reason}; {dest_name} does not exist either",
            proposal={"skip": f"source gone: {reason}"},
            facts={"gone": action.source},
        )

    def _pending_relocation(self, step: Step, action: Action, source: TableInfo) -> Verdict:
        rows = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(source.name))).fetchone()[0]
        evidence = f"{action.source}: {rows:,} rows; {destination(self.plan, action)} is free"
        if action.kind == "MERGE" and not self.catalog.exists(action.target):
            return self._target_gone(step.step_id, action, evidence)
        return Verdict(step.step_id, action, Status.PENDING, evidence, facts={"rows": rows})

    def _target_gone(self, step_id: str, action: Action, evidence: str) -> Verdict:
        reason = self.gone_because(action.target)
        hand = HAND_RUN_TARGETS.get(action.target)
        misfit = self._retarget_misfit(action, hand) if hand and self.catalog.exists(hand) else None
        if hand and self.catalog.exists(hand) and misfit is None:
            return Verdict(
                step_id,
                action,
                Status.CONFLICT,
                f"{evidence}; merge target: {reason}; the hand run of 2026-02-06 put such rows into {hand}",
                proposal={"retarget": hand},
                facts={"target_gone": action.target},
            )
        elsewhere = f"{hand} does not fit ({misfit})" if misfit else "no table holds such rows"
        return Verdict(
            step_id,
            action,
            Status.CONFLICT,
            f"{evidence}; merge target: {reason}; {elsewhere}: create it with the columns the plan fills "
            "(each merged row keeps its whole source row in ctb_source_row)",
            target_proposal=_create_proposal(self.plan.merge_targets.get(action.target)),
            facts={"target_gone": action.target},
        )

    def _occupied(self, step: Step, action: Action, source: TableInfo, occupant: TableInfo) -> Verdict:
        """Both the source and its destination exist: usually a stale hand copy."""
        source_columns = set(source.column_names)
        common = [c for c in source.column_names if occupant.column(c)]
        rows_source, _ = count_and_checksum(self.conn, source, common)
        rows_copy, _ = count_and_checksum(self.conn, occupant, common)
        kind = "a hand copy (the source's columns + " if _is_hand_copy(source_columns, occupant) else "a table ("
        extra = sorted(set(occupant.column_names) - source_columns)
        evidence = f"both exist: {occupant.name} is {kind}{', '.join(extra) or 'no extra columns'})"
        if common:
            changed = rows_missing_from(self.conn, occupant, source, common)
            grown = rows_missing_from(self.conn, source, occupant, common)
            evidence += (
                f"; {action.source} has {rows_source:,} rows, the copy {rows_copy:,}; "
                f"{grown:,} live rows are not in the copy, {changed:,} copy rows no longer match the live table"
            )
        if _is_hand_copy(source_columns, occupant):
            proposal = {"set_aside": set_aside_name(self.conn, self.catalog, occupant)}
        else:  # it may be the table the application uses now: never swap it away by default
            proposal = {"skip": f"{occupant.name} is not a hand copy of {action.source}: both stay; a person decides"}
        return Verdict(
            step.step_id,
            action,
            Status.CONFLICT,
            evidence,
            proposal=proposal,
            facts={"occupant": occupant.name, "rows_source": rows_source, "rows_occupant": rows_copy},
        )

    def _source_gone_destination_there(self, step: Step, action: Action, dest: TableInfo) -> Verdict:
        """The plan's end state seems reached without this tool: adopt only with evidence."""
        known, listed_as = _known_columns(action.source), action.source
        if known is None:  # the inventory of 2026-02-20 lists tables where they stood then
            known, listed_as = _known_columns(dest.name), dest.name
        rows, checksum = count_and_checksum(self.conn, dest)
        facts = {"rows": rows, "checksum": str(checksum), "table": dest.name, "oid": dest.oid}
        inventory_rows = (_inventory().get(listed_as) or {}).get("rows_2026_02_20")
        emptied = rows == 0 and bool(inventory_rows)  # an empty look-alike proves nothing
        if action.kind in ("ARCHIVE", "MOVE") and known and set(known) == set(dest.column_names) and not emptied:
            evidence = (
                f"{action.source} is gone and {dest.name} has exactly the columns the inventory of 2026-02-20 "
                f"lists for {listed_as} ({len(known)}); {rows:,} rows"
                + (f" (inventory: {inventory_rows:,})" if inventory_rows is not None else "")
                + f", content checksum {checksum} recorded as the baseline (no earlier checksum exists)"
            )
            return Verdict(step.step_id, action, Status.ADOPTED, evidence, proposal={"adopt": True}, facts=facts)
        reason = self.gone_because(action.source)
        copy = "a hand copy" if set(dest.column_names) & HAND_COPY_COLUMNS else "a table this tool did not make"
        return Verdict(
            step.step_id,
            action,
            Status.MOOT,
            f"{reason}; {dest.name} is {copy} with {rows:,} rows (kept as it is); no evidence that it is this action's result",
            proposal={"skip": f"source gone: {reason}; {dest.name} stays as it is"},
            facts=facts,
        )

    def _add_pk(self, step: Step, action: Action, done: dict | None) -> Verdict:
        info = self.catalog.get(action.source)
        if info is None:
            reason = self.gone_because(action.source)
            return Verdict(step.step_id, action, Status.MOOT, reason, proposal={"skip": f"table gone: {reason}"})
        if info.primary_key == [action.column]:
            if done:
                return self._recorded(step, action, done)
            rows, checksum = count_and_checksum(self.conn, info)
            return Verdict(
                step.step_id,
                action,
                Status.ADOPTED,
                f"primary key ({action.column}) exists in the catalog; {rows:,} rows, checksum {checksum}",
                proposal={"adopt": True},
                facts={"rows": rows, "checksum": str(checksum)},
            )
        if info.primary_key:
            return Verdict(
                step.step_id,
                action,
                Status.CONFLICT,
                f"{action.source} already has the primary key {info.primary_key}",
                proposal={"skip": f"already keyed by {info.primary_key}"},
            )
        column = info.column(action.column)
        evidence = "no primary key" + (
            f"; {action.column} exists ({column.type}, {'NOT NULL' if column.not_null else 'nullable'}): it becomes the key"
            if column
            else ""
        )
        return Verdict(step.step_id, action, Status.PENDING, evidence)

    def _in_place(self, step: Step, action: Action, done: dict | None) -> Verdict:
        info = self.catalog.get(action.source)
        if info is None:
            reason = self.gone_because(action.source)
            return Verdict(step.step_id, action, Status.MOOT, reason, proposal={"skip": f"table gone: {reason}"})
        if done:
            return self._recorded(step, action, done)
        return Verdict(step.step_id, action, Status.PENDING, f"{action.source} exists; {action.kind} is metadata only")


def reconcile(
    conn: psycopg.Connection,
    plan: Plan,
    catalog: Catalog,
    phases: list[str] | None = None,
    effective: Plan | None = None,
) -> list[Verdict]:
    return Reconciler(conn, plan, catalog, effective).verdicts(phases)


def render(verdicts: list[Verdict], decided: dict | None = None) -> str:
    """The reconcile table: every action, its state, the evidence, the proposal and the decision."""
    decided = decided or {}
    rows = []
    for v in verdicts:
        decision = decided.get(v.action.source)
        rows.append(
            (
                v.step_id.split("__")[0],
                v.action.kind,
                v.action.source,
                v.status.value,
                v.evidence,
                _describe(v.proposal) if v.proposal else "",
                _describe(decision) if decision else ("UNDECIDED" if v.needs_decision else ""),
            )
        )
    counts = {s.value: sum(1 for v in verdicts if v.status == s) for s in Status}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return (
        table(rows, ("phase", "action", "source", "state", "evidence", "proposal", "decision"))
        + f"\nreconcile: {len(verdicts)} actions: {summary}"
    )


def _describe(entry: dict) -> str:
    return "; ".join(f"{k}: {v}" if v is not True else k for k, v in entry.items() if k not in ("state", "evidence"))
