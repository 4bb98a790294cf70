"""Under a step budget the batch pick carries no timing, and a recording keeps the rules it was made under."""

from __future__ import annotations

import pytest

from trainopt.agent.budget import ADDED_RULES, LEGACY_POLICY, RunPolicy, recorded_policy
from trainopt.agent.digest import ProbeDigest
from trainopt.agent.phases.probe import step_budget_batch


@pytest.mark.parametrize(("noise", "baseline", "expected"), [
    (6.0, 64, 32),  # 4 B_noise = 24: the next power of two
    (20.0, 64, 128),  # 80: steps S_min (1 + 20/128) are within 25% of S_min, at 64 they are not
    (None, 64, 64),  # no usable noise scale: the baseline's batch
    (5000.0, 64, 256),  # above the probed range: its top
    (0.5, 64, 16),  # below it: its bottom
])
def test_step_budget_batch(noise, baseline, expected):
    digest = ProbeDigest.model_construct(batch_noise_scale=noise, baseline={"batch_size": baseline},
                                         batch_range=(16, 256))
    assert step_budget_batch(digest) == expected


def test_a_recording_replays_under_its_own_rules():
    assert recorded_policy({}) == LEGACY_POLICY  # made before recordings named a policy
    named = {"planned_seeds": 5, "extend_by": 1, "reserve_seeds": 2, "min_adopt_seeds": 5, "step_batches": True}
    older = recorded_policy({"policy": named})  # made before the rules added since
    assert older == RunPolicy(**named, **ADDED_RULES) and not any(getattr(older, rule) for rule in ADDED_RULES)
    assert recorded_policy({"policy": RunPolicy().model_dump()}) == RunPolicy()
