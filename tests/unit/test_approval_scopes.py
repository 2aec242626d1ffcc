"""Approval fingerprints without a database (ple/approval.py, reorg/decision_store.py): a phase's
scope is covered by itself and the whole plan; a scope changes the fingerprint; the decisions'
part names their version, so recording earlier content again is a new version."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ple import approval
from ple.reorg.decision_store import approval_part

PARTS = {"plan": "a" * 64, "decisions": "none", "code": "c" * 64}


def test_a_phase_is_covered_by_itself_and_by_the_whole_plan_and_nothing_else():
    plan = approval.Fingerprint(approval.REORGANIZATION, PARTS, approval.WHOLE_PLAN)
    phase = plan.scoped(approval.phase_scope("1c"))
    assert [f.scope for f in phase.covering()] == ["phase 1c", approval.WHOLE_PLAN]
    assert phase.covering()[1].sha256 == plan.sha256
    assert [f.scope for f in plan.covering()] == [approval.WHOLE_PLAN]


@given(st.sampled_from(["1a", "1b", "1c", "1k", "1l"]), st.sampled_from(["1a", "1b", "1c", "1k", "1l"]))
def test_two_scopes_share_a_fingerprint_only_when_they_are_the_same(one, other):
    plan = approval.Fingerprint(approval.REORGANIZATION, PARTS, approval.WHOLE_PLAN)
    a, b = plan.scoped(approval.phase_scope(one)), plan.scoped(approval.phase_scope(other))
    assert (a.sha256 == b.sha256) == (one == other)


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_any_part_changed_changes_the_fingerprint(name, value):
    before = approval.Fingerprint(approval.REORGANIZATION, PARTS, approval.WHOLE_PLAN)
    after = approval.Fingerprint(approval.REORGANIZATION, {**PARTS, name: value}, approval.WHOLE_PLAN)
    assert (before.sha256 == after.sha256) == (PARTS.get(name) == value)


def test_the_decisions_part_names_the_version_with_its_content():
    assert approval_part(None, None) == "none"
    assert approval_part(None, "f" * 64) == "f" * 64  # a file, before any version is recorded
    assert approval_part(3, "f" * 64) != approval_part(5, "f" * 64)  # the same content recorded again
