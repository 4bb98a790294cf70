"""The search's batch choices follow the budget's unit, and its start is finite when nothing was raced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainopt.agent.budget import LEGACY_POLICY, RunPolicy
from trainopt.agent.phases.search import search_batches
from trainopt.agent.schemas import OptimizationRequest


def _state(policy: RunPolicy, constraints: dict) -> SimpleNamespace:
    digest = SimpleNamespace(batch_range=(16, 256), batch_recommended=32)
    return SimpleNamespace(digest=digest, policy=policy, request=OptimizationRequest(constraints=constraints))


@pytest.mark.parametrize(("policy", "constraints", "expected"), [
    (RunPolicy(), {"step_budget": 3000}, [16, 32, 64, 128, 256]),  # a larger batch costs no steps
    (RunPolicy(), {"time_budget_s": 60}, [16, 32, 64]),  # it costs seconds: the probe's pick, half, double
    (LEGACY_POLICY, {"step_budget": 3000}, [16, 32, 64]),  # an older recording's rule
])
def test_search_batches(policy, constraints, expected):
    assert search_batches(_state(policy, constraints)) == expected
