"""The plan file, loaded and validated into frozen data: phases, actions and executable steps.

No database and no Airflow here. A *step* is what one task executes: one action, except that the
side-table folds (MERGE_JSONB, MERGE_COLS) into the same canonical table in one phase form a single
step, because each extra UPDATE pass over a table doubles its heap.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from ple.config import PLAN_FILE, PLAN_SCHEMA_FILE
from ple.errors import PlanRejected

# libyaml's safe loader where PyYAML was built with it (the wheels are): the same documents, 7x faster
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The document's execution order. Stage names are also the task groups of each phase DAG.
STAGES = ("archive", "merge", "move", "add_pk", "reclassify")
STAGE_OF = {
    "ARCHIVE": "archive",
    "MERGE": "merge",
    "MERGE_JSONB": "merge",
    "MERGE_COLS": "merge",
    "MOVE": "move",
    "ADD_PK": "add_pk",
    "KEEP_AS_MV": "reclassify",
    "PENDING": None,
}


@dataclass(frozen=True)
class Join:
    source: str
    target: str
    via_table: str | None = None
    via_source: str | None = None
    via_target: str | None = None


@dataclass(frozen=True)
class Action:
    phase: str
    kind: str
    source: str
    target: str | None = None
    value: str | None = None
    column: str | None = None
    join: Join | None = None
    shape: str | None = None
    order_by: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    pivot: dict | None = None
    sub_hub: str | None = None
    question: str | None = None
    document_rows: int | None = None
    decision: str | None = None

    @property
    def slug(self) -> str:
        return self.source.replace(".", "_")


@dataclass(frozen=True)
class MergeTarget:
    table: str
    discriminator_column: str
    discriminator_type: str
    relax_not_null: tuple[str, ...] = ()
    on_key_conflict: str = "fail"
    accept_lossy_casts: dict = field(default_factory=dict, hash=False, compare=False)  # column -> why
    fill: dict = field(default_factory=dict, hash=False, compare=False)
    decision: str | None = None


@dataclass(frozen=True)
class Step:
    step_id: str  # <phase>__<task_id>, unique in the plan; ledger rows carry it
    task_id: str  # <stage>__<table>, unique in a phase
    phase: str
    stage: str
    kind: str  # ARCHIVE, MERGE, MOVE, FOLD, ADD_PK, KEEP_AS_MV
    actions: tuple[Action, ...]

    @property
    def action(self) -> Action:
        return self.actions[0]

    @property
    def target(self) -> str:
        return self.actions[0].target or self.actions[0].source


@dataclass(frozen=True)
class Phase:
    phase: str
    title: str
    actions: tuple[Action, ...]
    decision: str | None = None

    @property
    def steps(self) -> tuple[Step, ...]:
        return _steps(self)

    @property
    def pending(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == "PENDING")


@dataclass(frozen=True)
class Plan:
    path: Path
    sha256: str
    document_summary: dict
    archive_schema: str
    merge_targets: dict[str, MergeTarget] = field(hash=False)
    phases: tuple[Phase, ...] = ()
    leaf_lock: dict = field(default_factory=dict, hash=False)

    def phase(self, phase_id: str) -> Phase:
        for phase in self.phases:
            if phase.phase == phase_id:
                return phase
        raise KeyError(phase_id)

    @property
    def actions(self) -> list[Action]:
        return [a for p in self.phases for a in p.actions]

    @property
    def steps(self) -> list[Step]:
        return [s for p in self.phases for s in p.steps]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise PlanRejected(f"no step {step_id!r} in the plan {self.path.name} (sha256 {self.sha256[:12]})")

    def archive_name(self, table: str) -> str:
        """Where a merged (or folded) source table is archived: archive.<schema>_<table>_ctb."""
        return f"{self.archive_schema}.{table.replace('.', '_')}_ctb"


def _steps(phase: Phase) -> tuple[Step, ...]:
    steps: list[Step] = []
    folds: dict[str, list[Action]] = {}
    for action in phase.actions:
        stage = STAGE_OF[action.kind]
        if stage is None:
            continue
        if action.kind in ("MERGE_JSONB", "MERGE_COLS"):
            folds.setdefault(action.target, []).append(action)
            continue
        task_id = f"{stage}__{action.slug}"
        steps.append(Step(f"{phase.phase}__{task_id}", task_id, phase.phase, stage, action.kind, (action,)))
    for target, actions in folds.items():
        task_id = f"fold__{target.replace('.', '_')}"
        steps.append(Step(f"{phase.phase}__{task_id}", task_id, phase.phase, "merge", "FOLD", tuple(actions)))
    order = {stage: i for i, stage in enumerate(STAGES)}
    return tuple(sorted(steps, key=lambda s: order[s.stage]))


def plan_sha256(path: Path = PLAN_FILE) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _action(phase: str, raw: dict) -> Action:
    join = None
    if "join" in raw:
        via = raw["join"].get("via", {})
        join = Join(
            raw["join"]["source"], raw["join"]["target"], via.get("table"), via.get("source"), via.get("target")
        )
    return Action(
        phase=phase,
        kind=raw["action"],
        source=raw["source"],
        target=raw.get("target"),
        value=raw.get("value"),
        column=raw.get("column"),
        join=join,
        shape=raw.get("shape"),
        order_by=raw.get("order_by"),
        columns=tuple(raw.get("columns", {}).items()),
        pivot=raw.get("pivot"),
        sub_hub=raw.get("sub_hub"),
        question=raw.get("question"),
        document_rows=raw.get("document_rows"),
        decision=raw.get("decision"),
    )


def parse(raw: dict, path: Path = PLAN_FILE, sha256: str = "") -> Plan:
    """Validate raw plan data against the JSON schema and build the Plan; PlanRejected otherwise."""
    schema = json.loads(PLAN_SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10])
        raise PlanRejected(f"{path.name} does not match its schema: {details}")
    merge_targets = {
        name: MergeTarget(
            table=name,
            discriminator_column=entry["discriminator"]["column"],
            discriminator_type=entry["discriminator"]["type"],
            relax_not_null=tuple(entry.get("relax_not_null", [])),
            on_key_conflict=entry.get("on_key_conflict", "fail"),
            accept_lossy_casts=entry.get("accept_lossy_casts", {}),
            fill=entry.get("fill", {}),
            decision=entry.get("decision"),
        )
        for name, entry in raw["merge_targets"].items()
    }
    phases = tuple(
        Phase(p["phase"], p["title"], tuple(_action(p["phase"], a) for a in p["actions"]), p.get("decision"))
        for p in raw["phases"]
    )
    return Plan(
        path, sha256, raw["document_summary"], raw["archive_schema"], merge_targets, phases, raw.get("leaf_lock", {})
    )


def load(path: Path = PLAN_FILE) -> Plan:
    path = Path(path)
    text = path.read_bytes()
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise PlanRejected(f"{path.name} is not valid YAML: {exc}") from exc
    return parse(raw, path, hashlib.sha256(text).hexdigest())


def new_column_names(action: Action) -> list[str]:
    """The columns a FOLD adds to its target for this action (MERGE_JSONB: one; a pivot: one per key)."""
    if action.kind == "MERGE_JSONB":
        return [action.column]
    if action.pivot:
        return [f"{key}{action.pivot['suffix']}" for key in action.pivot["keys"]]
    return [name for name, _ in action.columns]
