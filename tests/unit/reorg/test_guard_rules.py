"""The guards' pure rules (reorg/guards.py), without a database: the values a CHECK of the
`= ANY (ARRAY[...])` / `IN (...)` shape allows, and the constants a merge writes into every row."""

from __future__ import annotations

import pytest

from ple.reorg.guards import _constants, allowed_values
from ple.reorg.plan import load


@pytest.mark.parametrize(
    ("definition", "allowed"),
    [
        ("CHECK ((status = ANY (ARRAY['open'::text, 'closed'::text])))", ["open", "closed"]),
        (
            "CHECK (((kind)::text = ANY ((ARRAY['a'::character varying, 'b''s'::character varying])::text[])))",
            ["a", "b's"],
        ),
        ("CHECK ((status IN ('new', 'done'))) NOT VALID", ["new", "done"]),
        ("CHECK ((amount > 0))", None),
        ("CHECK (((status = ANY (ARRAY['a'::text])) OR (status IS NULL)))", None),
        ("CHECK ((status <> ALL (ARRAY['x'::text])))", None),
        ("CHECK ((name ~ '^[a-z]+$'::text))", None),
    ],
)
def test_the_values_a_check_allows_or_none_for_another_shape(definition, allowed):
    assert allowed_values(definition) == allowed


def test_a_fill_rule_that_reads_a_source_column_is_not_a_constant():
    """Issue 19, case 1: `status` is filled from `resolution_status` first; its fallback 'open'
    is not what every row gets, so it is judged on the mapped rows, not as a constant."""
    plan = load()
    step = next(s for s in plan.phase("1b").steps if s.kind == "MERGE" and plan.merge_targets[s.action.target].fill)
    spec = plan.merge_targets[step.action.target]
    reading = {c for rule in spec.fill.values() for c in rule.get("from", [])}
    with_columns = _constants(plan, step, reading)
    without = _constants(plan, step, set())
    assert with_columns[spec.discriminator_column] == step.action.value
    for column, rule in spec.fill.items():
        if rule.get("from") and "value" in rule:
            assert column not in with_columns and without.get(column) == rule["value"]
