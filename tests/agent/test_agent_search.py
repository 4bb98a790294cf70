"""The search's batch choices are the same under every budget, and its start is finite when nothing was raced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainopt.agent.phases.search import search_batches
from trainopt.agent.schemas import OptimizationRequest


def _state(constraints: dict) -> SimpleNamespace:
    digest = SimpleNamespace(batch_range=(16, 256), batch_recommended=32)
    return SimpleNamespace(digest=digest, request=OptimizationRequest(constraints=constraints))


@pytest.mark.parametrize(("constraints", "expected"), [
    ({"step_budget": 3000}, [16, 32, 64]),  # a larger batch trains fewer steps of the same examples: no free batch
    ({"time_budget_s": 60}, [16, 32, 64]),  # the probe's pick, half, double
])
def test_search_batches(constraints, expected):
    assert search_batches(_state(constraints)) == expected
