"""What plan mode (and so every approval request) shows is what apply does: a step that sets a
hand copy aside first shows the set-aside and then the step's own SQL as it will run after it,
never "then as the plan says"; a step with nothing to set aside says nothing about setting aside."""

from ple.reorg import decisions
from tests.reconcile_helpers import decide
from tests.reorg_helpers import executor


def test_a_set_aside_is_followed_by_the_sql_the_step_runs_after_it(twin):
    proposed = decide(twin)
    aside = proposed["actions"]["company.company_master"]["set_aside"]
    ex = executor(twin, mode="plan")
    step = next(s for s in ex.declared.steps if any(a.source == "company.company_master" for a in s.actions))
    text = ex.run_step(step.step_id).text
    assert "set aside (decided)" in text and aside.split(".")[1] in text
    assert "then as the plan says" not in text
    after = text.split("set aside (decided):", 1)[1]
    assert "would run" in after and "archive" in after.split("would run", 1)[1], text
    assert "set_aside_first" in text  # the live counts are the occupant's: the step's names exist only after it

    quiet = [
        ex.run_step(s.step_id).text
        for s in ex.declared.steps
        if not any(decisions.for_connection(twin).for_action(a.source).get("set_aside") for a in s.actions)
    ]
    assert quiet and not any("set aside" in t for t in quiet)
