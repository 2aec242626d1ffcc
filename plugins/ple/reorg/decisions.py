"""Decisions: how the plan meets one real database, chosen by a person, versioned in that database.

The decisions of a database live in it, in the tool's own schema (`ple_ops.decision_version`: each
version's YAML, who recorded it, when, how, and who answered which entry); the latest version is
in force. They are made in the Airflow UI (the `ctb_decide` DAG asks each open question as a
Required Action) or on the command line (`make decide ACCEPT=proposed`); the YAML file
(`include/plan/decisions/<database>.yaml`, directory overridable with PLE_DECISIONS_DIR) is their
export, for review, and an import (`python -m ple.cli decide --import FILE`): a database with no
version recorded yet reads the file. Both are validated by `include/plan/decisions.schema.json`.
For every conflict, moot action, plan/catalog mismatch and blocking guard, reconcile and the guards
*propose* a lossless resolution. The version and SHA-256 of the decisions in force are part of
the reorganization's approval fingerprint, so `make approve` covers plan + decisions, a new
version voids the approval (recording earlier content again is a new version too), and a run that
started under an earlier version stops at its next transaction (decision_store.require_in_force).

A decision is data the engine carries out:
  actions.<source>.skip           the action is not carried out (the reason goes to the ledger)
  actions.<source>.adopt          the end state was reached by other means: recorded as `adopted`
  actions.<source>.set_aside      the table holding the destination name is renamed first (actions/set_aside.py)
  actions.<source>.retarget       merge into another table (e.g. where a hand run put such rows)
  actions.<source>.fold_as_jsonb  fold the side rows whole, as a JSONB array (when the plan's
                                  pivot or named columns do not fit the live columns)
  targets.<table>.create          create a merge target that is gone (actions/create_target.py)
  targets.<table>.discriminator   write the discriminator into another column (e.g. a CHECK forbids the value)
  targets.<table>.fill            fill rules that override the plan's (same grammar as ctb_plan.yaml)
  guards.accept.<key>             a guard finding a person accepted, with the reason
  leaf_lock.<table>.skip          a Phase 2 table gone from the live database: the leaf lock leaves it out
  leaf_lock.<table>.register      the owner's registry lacks this Phase 2 table: the leaf lock registers it
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import psycopg
import yaml
from psycopg.types.json import Jsonb

from ple import approval
from ple.config import INCLUDE_DIR
from ple.ops import ensure_schema
from ple.reorg import pending
from ple.reorg.decision_store import (  # noqa: F401 (re-exported: the decisions' public names)
    DATABASE_NAME,
    DECISIONS_DIR_ENV,
    DEFAULT_DIR,
    DecisionsRejected,
    approval_part,
    directory,
    path_for,
    stored,
)
from ple.reorg.plan import SAFE_LOADER, Action, MergeTarget, Plan, Step

SCHEMA_FILE = INCLUDE_DIR / "plan" / "decisions.schema.json"


@dataclass(frozen=True)
class Decisions:
    database: str
    path: Path
    sha256: str | None  # None: no file (nothing decided)
    actions: dict = field(default_factory=dict, hash=False)
    targets: dict = field(default_factory=dict, hash=False)
    accepted: dict = field(default_factory=dict, hash=False)  # guard key -> reason
    answers: dict = field(default_factory=dict, hash=False)  # 1L: table -> pending.Answer in force
    leaf_lock: dict = field(default_factory=dict, hash=False)  # Phase 2 table -> skip | register
    answers_sha256: str | None = None  # what the approval covers of them (pending.sha256)
    version: int | None = None  # the ple_ops.decision_version in force; None: read from the file

    @property
    def exists(self) -> bool:
        return self.sha256 is not None

    @property
    def approved_as(self) -> str:
        """This version's part of the approval fingerprint (decision_store.approval_part)."""
        return approval_part(self.version, self.sha256)

    @property
    def source(self) -> str:
        """Where the decisions in force come from, for messages."""
        if self.version is not None:
            return f"ple_ops.decision_version {self.version} (export: {self.path})"
        return str(self.path)

    def for_action(self, source: str) -> dict:
        return self.actions.get(source) or {}

    def covered(self) -> dict:
        """What an approval of the plan also approves in this database, in words a person can check:
        the decisions file and each decision in force, the guards accepted, the 1L answers."""
        return {
            "decisions_file": self.source if self.exists else None,
            "decisions_sha256": self.sha256,
            "decisions": {source: resolution(entry) for source, entry in sorted(self.as_table().items())},
            "targets_decided": sorted(self.targets),
            "guards_accepted": dict(sorted(self.accepted.items())),
            "answers_1l": {table: a.answer for table, a in sorted(self.answers.items())},
            "leaf_lock": {table: resolution(entry) for table, entry in sorted(self.leaf_lock.items())},
        }

    def as_table(self) -> dict[str, dict]:
        """Per action source, the decision in force (for the reconcile table)."""
        return {source: entry for source, entry in self.actions.items() if resolution(entry)}


def resolution(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("state", "evidence")}


def validate(raw: dict, where: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10])
        raise DecisionsRejected(f"{where} does not match {SCHEMA_FILE.name}: {details}")


def parse(text: bytes, where: str, database: str) -> dict:
    """Decisions YAML, validated, for this database."""
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise DecisionsRejected(f"{where} is not valid YAML: {exc}") from exc
    validate(raw, where)
    if raw["database"] != database:
        raise DecisionsRejected(f"{where} is written for database {raw['database']!r}, not {database!r}")
    return raw


def load(database: str) -> Decisions:
    """The decisions file of a database (the import/export; see for_connection)."""
    path = path_for(database)
    if not path.exists():
        return Decisions(database, path, None)
    text = path.read_bytes()
    return _decisions(database, path, parse(text, str(path), database), hashlib.sha256(text).hexdigest())


def _decisions(database: str, path: Path, raw: dict, sha256: str, version: int | None = None) -> Decisions:
    return Decisions(
        database,
        path,
        sha256,
        raw.get("actions") or {},
        raw.get("targets") or {},
        (raw.get("guards") or {}).get("accept") or {},
        leaf_lock=raw.get("leaf_lock") or {},
        version=version,
    )


def for_connection(conn: psycopg.Connection) -> Decisions:
    """The decisions in force in this database (its latest recorded version; before any is
    recorded, its decisions file) and its recorded 1L answers (reorg/pending.py)."""
    database = conn.info.dbname
    found = stored(conn)
    if found:
        version, content = found
        text = content.encode()
        where = f"ple_ops.decision_version {version}"
        decided = _decisions(
            database, path_for(database), parse(text, where, database), hashlib.sha256(text).hexdigest(), version
        )
    else:
        decided = load(database)
    answers = pending.latest(conn)
    return dataclasses.replace(decided, answers=answers, answers_sha256=pending.sha256(answers))


def record(
    conn: psycopg.Connection,
    raw: dict,
    decided_by: str,
    *,
    via: str,
    note: str | None = None,
    answers: dict | None = None,
) -> tuple[int, Path]:
    """A new version of the database's decisions (in force from now: it voids approvals of the
    earlier one), exported to the decisions file. `answers`: who decided which entry, how."""
    database = conn.info.dbname
    if raw.get("database") != database:
        raise DecisionsRejected(f"decisions for database {raw.get('database')!r} cannot be recorded in {database!r}")
    validate(raw, "the decisions to record")
    if not decided_by or not decided_by.strip():
        raise DecisionsRejected("a decision needs the name of who decided")
    text = render(raw)
    ensure_schema(conn)
    version = conn.execute(
        "INSERT INTO ple_ops.decision_version (content, sha256, decided_by, decided_via, note, answers) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING version",
        (text, hashlib.sha256(text.encode()).hexdigest(), decided_by.strip(), via, note, Jsonb(answers or {})),
    ).fetchone()[0]
    return version, write(raw, path_for(database))


def history(conn: psycopg.Connection) -> list[dict]:
    """Every recorded version, newest first (console)."""
    if not conn.execute("SELECT to_regclass('ple_ops.decision_version') IS NOT NULL").fetchone()[0]:
        return []
    rows = conn.execute(
        "SELECT version, sha256, decided_by, decided_via, decided_at, note, answers "
        "FROM ple_ops.decision_version ORDER BY version DESC"
    ).fetchall()
    keys = ("version", "sha256", "decided_by", "decided_via", "decided_at", "note", "answers")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def fingerprint(plan: Plan, decisions: Decisions) -> approval.Fingerprint:
    """What `make approve` approves and every apply transaction re-checks: plan + decisions
    (+ the 1L answers) + code."""
    return approval.reorganization(plan.sha256, decisions.approved_as, decisions.answers_sha256)


# ---------------------------------------------------------------------- the plan, as decided
def effective_plan(plan: Plan, decisions: Decisions) -> Plan:
    """The plan with the decisions carried in: skipped and adopted actions left out, merges
    retargeted, folds in their generic form, merge targets with their decided discriminator and
    fill. Step ids stay those of the declared plan (a fold step keeps its id with fewer sides)."""
    if not decisions.exists:
        return plan
    phases, merge_targets = [], dict(plan.merge_targets)
    for phase in plan.phases:
        actions = []
        for declared in phase.actions:
            entry = decisions.for_action(declared.source)
            if "skip" in entry or entry.get("adopt"):
                continue
            action = declared
            if "retarget" in entry:
                old = plan.merge_targets.get(action.target)
                if old is None:
                    raise DecisionsRejected(f"retarget of {action.source}: {action.target} is not a merge target")
                merge_targets.setdefault(entry["retarget"], dataclasses.replace(old, table=entry["retarget"]))
                action = dataclasses.replace(action, target=entry["retarget"])
            if "fold_as_jsonb" in entry:
                if action.kind not in ("MERGE_JSONB", "MERGE_COLS"):
                    raise DecisionsRejected(f"fold_as_jsonb of {action.source}: it is a {action.kind}, not a fold")
                action = dataclasses.replace(
                    action,
                    kind="MERGE_JSONB",
                    column=entry["fold_as_jsonb"],
                    shape="array",
                    order_by=None,
                    pivot=None,
                    columns=(),
                )
            actions.append(action)
        phases.append(dataclasses.replace(phase, actions=tuple(actions)))
    for name, entry in decisions.targets.items():
        spec: MergeTarget | None = merge_targets.get(name)
        if spec is None:
            continue
        changes = {}
        if "discriminator" in entry:
            changes["discriminator_column"] = entry["discriminator"]["column"]
            changes["discriminator_type"] = entry["discriminator"].get("type", "text")
        if "fill" in entry:
            changes["fill"] = {**spec.fill, **entry["fill"]}
        merge_targets[name] = dataclasses.replace(spec, **changes)
    return dataclasses.replace(plan, phases=tuple(phases), merge_targets=merge_targets)


@dataclass(frozen=True)
class LeftOut:
    """An action of a declared step that the decisions leave out: skipped (with its reason) or
    adopted (its end state reached by other means; the evidence is re-read when it is recorded)."""

    action: Action
    how: str  # "skip" | "adopt"
    entry: dict = field(hash=False, compare=False)
    ledger_key: str  # the step id, or <step id>.<source slug> when the step has several actions

    def line(self) -> str:
        if self.how == "skip":
            return f"{self.action.source}: skipped (decided): {self.entry['skip']}"
        return f"{self.action.source}: adopted (decided): {self.entry.get('evidence', '')}"


@dataclass(frozen=True)
class ResolvedStep:
    """One step as the decisions in force leave it, resolved once when its task starts and handed
    down to the SQL: what the plan declares, what runs (None when every action is left out), the
    actions left out, and the name each action's set-aside decision gives the occupant of its
    destination."""

    declared: Step
    step: Step | None
    left_out: tuple[LeftOut, ...]
    set_aside: dict[str, str] = field(hash=False, compare=False)  # action source -> set-aside name

    @property
    def step_id(self) -> str:
        return self.declared.step_id

    def declared_action(self, action: Action) -> Action:
        """The plan's own action behind an effective one (a retarget or fold_as_jsonb changes it)."""
        return next((a for a in self.declared.actions if a.source == action.source), action)


def resolve(declared: Plan, effective: Plan, decisions: Decisions, step_id: str) -> ResolvedStep:
    """`declared`: the plan with the 1L answers; `effective`: it as the decisions shape it. An
    unknown step id is refused (PlanRejected)."""
    step = declared.step(step_id)
    left_out, set_aside = [], {}
    for action in step.actions:
        entry = decisions.for_action(action.source)
        how = "skip" if "skip" in entry else "adopt" if entry.get("adopt") else None
        if how:
            key = step_id if len(step.actions) == 1 else f"{step_id}.{action.slug}"
            left_out.append(LeftOut(action, how, entry, key))
        if entry.get("set_aside"):
            set_aside[action.source] = entry["set_aside"]
    return ResolvedStep(
        declared=step,
        step=next((s for s in effective.steps if s.step_id == step_id), None),
        left_out=tuple(left_out),
        set_aside=set_aside,
    )


# ---------------------------------------------------------------------- proposals
def from_raw(current: Decisions, raw: dict) -> Decisions:
    return Decisions(
        current.database,
        current.path,
        "proposed",
        raw.get("actions") or {},
        raw.get("targets") or {},
        (raw.get("guards") or {}).get("accept") or {},
        leaf_lock=raw.get("leaf_lock") or {},
    )


HEADER = """\
# Decisions for the database {database}: how the CTB plan meets it as it really is.
# The decisions in force live in the database (ple_ops.decision_version); this file is an export
# of them, or decisions to import (`python -m ple.cli decide --import <this file>`: a new version,
# which voids earlier approvals). Validated by include/plan/decisions.schema.json.
"""


def render(raw: dict) -> str:
    return HEADER.format(database=raw["database"]) + yaml.safe_dump(raw, sort_keys=False, width=110, allow_unicode=True)


def write(raw: dict, path: Path) -> Path:
    """The decisions file: an export of a recorded version, or decisions to import."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(raw), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- deciding one question at a time
ACCEPT = "Accept the proposal"
SKIP = "Skip: do not carry the action out"
LATER = "Leave undecided"


def as_raw(current: Decisions, plan: Plan) -> dict:
    """The decisions in force as the YAML's data (what a new version starts from)."""
    raw = {
        "database": current.database,
        "plan_sha256": plan.sha256,
        "decided": "decided one question at a time (ctb_decide); review and edit freely",
        "actions": copy.deepcopy(current.actions),
    }
    if current.targets:
        raw["targets"] = copy.deepcopy(current.targets)
    if current.accepted:
        raw["guards"] = {"accept": dict(current.accepted)}
    if current.leaf_lock:
        raw["leaf_lock"] = copy.deepcopy(current.leaf_lock)
    return raw


def open_questions(current: Decisions, proposed: dict) -> list[dict]:
    """Each proposal not decided yet, as a question a person answers: its evidence, the proposed
    resolution, and the lossless options (an action may also be skipped: left as it stands)."""
    questions = []
    for source, entry in sorted(proposed.get("actions", {}).items()):
        if resolution(entry) and not resolution(current.for_action(source)):
            questions.append(
                {
                    "section": "actions",
                    "key": source,
                    "state": entry.get("state"),
                    "evidence": entry.get("evidence", ""),
                    "proposal": resolution(entry),
                    "entry": entry,
                    "options": [ACCEPT, SKIP, LATER],
                }
            )
    for name, entry in sorted(proposed.get("targets", {}).items()):
        if entry != current.targets.get(name):
            proposal = {k: v for k, v in entry.items() if k != "evidence"}
            questions.append(
                {
                    "section": "targets",
                    "key": name,
                    "state": "target",
                    "evidence": entry.get("evidence", ""),
                    "proposal": proposal,
                    "entry": entry,
                    "options": [ACCEPT, LATER],
                }
            )
    for table, entry in sorted(proposed.get("leaf_lock", {}).items()):
        if resolution(entry) and not resolution(current.leaf_lock.get(table) or {}):
            questions.append(
                {
                    "section": "leaf_lock",
                    "key": table,
                    "state": entry.get("state", "leaf_lock"),
                    "evidence": entry.get("evidence", ""),
                    "proposal": resolution(entry),
                    "entry": entry,
                    "options": [ACCEPT, LATER],
                }
            )
    for key, reason in sorted((proposed.get("guards") or {}).get("accept", {}).items()):
        if key not in current.accepted:
            questions.append(
                {
                    "section": "guards",
                    "key": key,
                    "state": "guard",
                    "evidence": reason,
                    "proposal": {"accept": reason},
                    "entry": reason,
                    "options": [ACCEPT, LATER],
                }
            )
    return questions


def answered(current: Decisions, plan: Plan, answers: list[dict]) -> dict:
    """The next version: the decisions in force with each answer carried in (`answers`: the
    question, `answer` one of its options, `by`)."""
    raw = as_raw(current, plan)
    for a in answers:
        question, choice = a["question"], a["answer"]
        if choice == ACCEPT:
            if question["section"] == "actions":
                raw["actions"][question["key"]] = question["entry"]
            elif question["section"] in ("targets", "leaf_lock"):
                raw.setdefault(question["section"], {})[question["key"]] = question["entry"]
            else:
                raw.setdefault("guards", {"accept": {}})["accept"][question["key"]] = question["entry"]
        elif choice == SKIP:
            raw["actions"][question["key"]] = {
                "state": question["state"],
                "evidence": question["evidence"],
                "skip": f"left as it stands, decided by {a['by']} in the UI",
            }
    validate(raw, "the decisions as answered")
    return raw
