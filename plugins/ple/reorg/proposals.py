"""What `decide --accept proposed` and the ctb_decide DAG offer: every open question of the
decisions answered by its lossless proposal, from reconcile (conflicts, moot actions, plan/catalog
mismatches), the guards (blocking findings) and the leaf lock (Phase 2 tables gone or
unregistered). Above the checks it asks, so the decisions themselves (reorg/decisions.py) stay
data that every check can read.
"""

from __future__ import annotations

import copy
import dataclasses

import psycopg

from ple.catalog import read_catalog
from ple.reorg import decisions, guards, leaf_lock, reconcile
from ple.reorg.plan import Plan


def propose(conn: psycopg.Connection, plan: Plan, current: decisions.Decisions) -> dict:
    """The decisions file with every open question answered by its proposal. What a person
    decided already (an entry in the current file) is kept as it is."""
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
        decided = decisions.from_raw(current, raw)
        effective = decisions.effective_plan(plan, decided)
        verdicts = reconcile.Reconciler(conn, plan, catalog, effective).verdicts()
        changed = False
        for v in verdicts:
            entry = raw["actions"].get(v.action.source) or {}
            if v.proposal and not decisions.resolution(entry):
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
                if section == "actions" and not decisions.resolution(raw["actions"].get(name) or {}):
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
    as_decided = dataclasses.replace(decisions.from_raw(current, raw), answers=current.answers)
    for table, entry in leaf_lock.proposals(conn, plan, catalog, as_decided).items():
        raw["leaf_lock"][table] = entry  # only tables without a decision are proposed
    if not raw["leaf_lock"]:
        del raw["leaf_lock"]
    if not raw["targets"]:
        del raw["targets"]
    if not raw["guards"]["accept"]:
        del raw["guards"]
    decisions.validate(raw, "the proposed decisions")
    return raw
