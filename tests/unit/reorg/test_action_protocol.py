"""Every action module has the declared shape (reorg/actions/protocol.py): each function of the
protocol, taking the same parameters; and an Outcome's status is one of the declared ones."""

from __future__ import annotations

import inspect

import pytest

from ple.reorg.actions import MODULES
from ple.reorg.actions.protocol import ActionModule
from ple.reorg.context import Outcome, OutcomeStatus

MEMBERS = [n for n, v in vars(ActionModule).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_each_action_module_has_every_function_of_the_protocol(kind):
    module = MODULES[kind]
    assert isinstance(module, ActionModule)
    for name in MEMBERS:
        declared = list(inspect.signature(getattr(ActionModule, name)).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(module, name)).parameters) == declared, (kind, name)


def test_an_outcome_status_is_a_declared_one():
    assert Outcome(None, "applied").status is OutcomeStatus.APPLIED
    with pytest.raises(ValueError, match="planned"):
        Outcome(None, "planned")
    outcome = Outcome(None, "already_done")
    outcome.status = "reverted"
    assert outcome.status is OutcomeStatus.REVERTED and outcome.status == "reverted"
