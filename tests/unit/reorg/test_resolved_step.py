"""A step is resolved once (plan entry + decisions) into one object that travels down to the SQL
(reorg/decisions.resolve): what runs, what is left out with its ledger key, what is set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from ple.errors import PlanRejected
from ple.reorg import decisions
from ple.reorg.plan import load

FOLD = "1g__fold__people_people_master"
MERGE = "1b__merge__marketing_failed_company_match"


def _decided(actions: dict) -> tuple:
    plan = load()
    made = decisions.Decisions("ple", Path("ple.yaml"), "0" * 64, actions=actions)
    return plan, decisions.effective_plan(plan, made), made


def test_an_undecided_step_runs_as_declared():
    plan, effective, made = _decided({})
    resolved = decisions.resolve(plan, effective, made, MERGE)
    assert resolved.step == resolved.declared == plan.step(MERGE)
    assert resolved.left_out == () and resolved.set_aside == {}


def test_a_fold_side_skipped_runs_the_other_side_and_records_the_skip_under_its_own_key():
    plan, effective, made = _decided({"people.person_scores": {"skip": "gone since"}})
    resolved = decisions.resolve(plan, effective, made, FOLD)
    assert [a.source for a in resolved.declared.actions] == ["people.people_sidecar", "people.person_scores"]
    assert [a.source for a in resolved.step.actions] == ["people.people_sidecar"]
    (left,) = resolved.left_out
    assert (left.action.source, left.how, left.ledger_key) == (
        "people.person_scores",
        "skip",
        f"{FOLD}.people_person_scores",
    )
    assert left.line() == "people.person_scores: skipped (decided): gone since"


def test_a_step_left_out_whole_runs_nothing_and_keys_the_ledger_by_its_step_id():
    plan, effective, made = _decided({"marketing.failed_company_match": {"adopt": True, "evidence": "done by hand"}})
    resolved = decisions.resolve(plan, effective, made, MERGE)
    assert resolved.step is None
    (left,) = resolved.left_out
    assert (left.how, left.ledger_key, left.line()) == (
        "adopt",
        MERGE,
        "marketing.failed_company_match: adopted (decided): done by hand",
    )


def test_a_retarget_and_a_set_aside_travel_with_the_plan_action_behind_them():
    plan, effective, made = _decided(
        {"marketing.failed_company_match": {"retarget": "outreach.company_errors_copy", "set_aside": "old_name"}}
    )
    resolved = decisions.resolve(plan, effective, made, MERGE)
    (action,) = resolved.step.actions
    assert action.target == "outreach.company_errors_copy"
    assert resolved.declared_action(action).target == "outreach.company_target_errors"
    assert resolved.set_aside == {"marketing.failed_company_match": "old_name"}


def test_an_unknown_step_is_refused():
    plan, effective, made = _decided({})
    with pytest.raises(PlanRejected):
        decisions.resolve(plan, effective, made, "1z__nothing")
