"""Decisions: how the plan meets one real database, chosen by a person, reviewed as a file.

One YAML file per database (`include/plan/decisions/<database>.yaml`, directory overridable with
PLE_DECISIONS_DIR), validated by `include/plan/decisions.schema.json`. For every conflict, moot
action, plan/catalog mismatch and blocking guard, reconcile and the guards *propose* a lossless
resolution; `make decide ACCEPT=proposed` writes the proposals (a person can edit the file instead).
The file's SHA-256 is part of the reorganization's approval fingerprint, so `make approve` covers
plan + decisions, and editing either voids the approval.

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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import psycopg
import yaml

from ple import approval
from ple.config import INCLUDE_DIR
from ple.errors import PlanRejected
from ple.reorg.plan import MergeTarget, Plan

DECISIONS_DIR_ENV = "PLE_DECISIONS_DIR"
DEFAULT_DIR = INCLUDE_DIR / "plan" / "decisions"
SCHEMA_FILE = INCLUDE_DIR / "plan" / "decisions.schema.json"
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


class DecisionsRejected(PlanRejected):
    """The decisions file is not valid: nothing runs until it is fixed."""


def directory() -> Path:
    return Path(os.environ.get(DECISIONS_DIR_ENV) or DEFAULT_DIR)


def path_for(database: str) -> Path:
    if not DATABASE_NAME.match(database or ""):
        raise DecisionsRejected(f"database name {database!r} cannot name a decisions file")
    return directory() / f"{database}.yaml"


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

    @property
    def exists(self) -> bool:
        return self.sha256 is not None

    def for_action(self, source: str) -> dict:
        return self.actions.get(source) or {}

    def covered(self) -> dict:
        """What an approval of the plan also approves in this database, in words a person can check:
        the decisions file and each decision in force, the guards accepted, the 1L answers."""
        return {
            "decisions_file": str(self.path) if self.exists else None,
            "decisions_sha256": self.sha256,
            "decisions": {source: _resolution(entry) for source, entry in sorted(self.as_table().items())},
            "targets_decided": sorted(self.targets),
            "guards_accepted": dict(sorted(self.accepted.items())),
            "answers_1l": {table: a.answer for table, a in sorted(self.answers.items())},
            "leaf_lock": {table: _resolution(entry) for table, entry in sorted(self.leaf_lock.items())},
        }

    def as_table(self) -> dict[str, dict]:
        """Per action source, the decision in force (for the reconcile table)."""
        return {source: entry for source, entry in self.actions.items() if _resolution(entry)}


def _resolution(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("state", "evidence")}


def validate(raw: dict, where: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10])
        raise DecisionsRejected(f"{where} does not match {SCHEMA_FILE.name}: {details}")


def load(database: str) -> Decisions:
    path = path_for(database)
    if not path.exists():
        return Decisions(database, path, None)
    text = path.read_bytes()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DecisionsRejected(f"{path} is not valid YAML: {exc}") from exc
    validate(raw, str(path))
    if raw["database"] != database:
        raise DecisionsRejected(f"{path} is written for database {raw['database']!r}, not {database!r}")
    return Decisions(
        database,
        path,
        hashlib.sha256(text).hexdigest(),
        raw.get("actions") or {},
        raw.get("targets") or {},
        (raw.get("guards") or {}).get("accept") or {},
        leaf_lock=raw.get("leaf_lock") or {},
    )


def for_connection(conn: psycopg.Connection) -> Decisions:
    """This database's decisions file and its recorded 1L answers (reorg/pending.py)."""
    from ple.reorg import pending

    answers = pending.latest(conn)
    return dataclasses.replace(load(conn.info.dbname), answers=answers, answers_sha256=pending.sha256(answers))


def fingerprint(plan: Plan, decisions: Decisions) -> approval.Fingerprint:
    """What `make approve` approves and every apply transaction re-checks: plan + decisions
    (+ the 1L answers) + code."""
    return approval.reorganization(plan.sha256, decisions.sha256, decisions.answers_sha256)


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


def skipped_in(plan: Plan, step_id: str, decisions: Decisions) -> list[tuple]:
    """(action, 'skip'|'adopt', decision) for each action of a declared step the decisions leave out."""
    try:
        step = plan.step(step_id)
    except PlanRejected:
        return []
    result = []
    for action in step.actions:
        entry = decisions.for_action(action.source)
        if "skip" in entry:
            result.append((action, "skip", entry))
        elif entry.get("adopt"):
            result.append((action, "adopt", entry))
    return result


# ---------------------------------------------------------------------- proposals
def propose(conn: psycopg.Connection, plan: Plan, current: Decisions) -> dict:
    """The decisions file with every open question answered by its proposal. What a person
    decided already (an entry in the current file) is kept as it is."""
    from ple.catalog import read_catalog
    from ple.reorg import guards, reconcile

    raw = {
        "database": current.database,
        "plan_sha256": plan.sha256,
        "decided": "proposals accepted (`decide --accept proposed`); review and edit freely",
        "actions": copy.deepcopy(current.actions),
        "targets": copy.deepcopy(current.targets),
        "guards": {"accept": dict(current.accepted)},
        "leaf_lock": copy.deepcopy(current.leaf_lock),
    }
    catalog = read_catalog(conn)
    for _round in range(3):  # a resolution can reveal the next question (a retarget's columns)
        decided = _from_raw(current, raw)
        effective = effective_plan(plan, decided)
        verdicts = reconcile.Reconciler(conn, plan, catalog, effective).verdicts()
        changed = False
        for v in verdicts:
            entry = raw["actions"].get(v.action.source) or {}
            if v.proposal and not _resolution(entry):
                raw["actions"][v.action.source] = {"state": v.status.value, "evidence": v.evidence, **v.proposal}
                changed = True
            if v.target_proposal:
                target = raw["targets"].setdefault(v.proposal_target, {})
                for key, value in v.target_proposal.items():
                    if key not in target:
                        target[key] = value
                        target.setdefault("evidence", v.evidence)
                        changed = True
                    elif key == "fill":
                        for column, rule in value.items():
                            if column not in target["fill"]:
                                target["fill"][column] = rule
                                changed = True
        for finding in guards.inspect(conn, effective, catalog, decided):
            if finding.blocks and finding.proposal:
                section, name, entry = finding.proposal
                if section == "actions" and not _resolution(raw["actions"].get(name) or {}):
                    raw["actions"][name] = {"state": "conflict", "evidence": finding.message, **entry}
                    changed = True
                elif section == "accept" and name not in raw["guards"]["accept"]:
                    raw["guards"]["accept"][name] = entry
                    changed = True
                elif section == "targets":
                    target = raw["targets"].setdefault(name, {})
                    for key, value in entry.items():
                        if key == "fill":
                            target.setdefault("fill", {}).update(
                                {c: r for c, r in value.items() if c not in target.get("fill", {})}
                            )
                            changed = True
                        elif key not in target:
                            target[key] = value
                            changed = True
        if not changed:
            break
    from ple.reorg import leaf_lock

    as_decided = dataclasses.replace(_from_raw(current, raw), answers=current.answers)
    for table, entry in leaf_lock.proposals(conn, plan, catalog, as_decided).items():
        raw["leaf_lock"][table] = entry  # only tables without a decision are proposed
    if not raw["leaf_lock"]:
        del raw["leaf_lock"]
    if not raw["targets"]:
        del raw["targets"]
    if not raw["guards"]["accept"]:
        del raw["guards"]
    validate(raw, "the proposed decisions")
    return raw


def _from_raw(current: Decisions, raw: dict) -> Decisions:
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
# Written by `make decide ACCEPT=proposed` from reconcile's and the guards' proposals; edit freely.
# Validated by include/plan/decisions.schema.json; covered by the approval together with the plan:
# editing this file voids it (`make approve APPROVER=<name>` again).
"""


def write(raw: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = HEADER.format(database=raw["database"]) + yaml.safe_dump(raw, sort_keys=False, width=110, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path
