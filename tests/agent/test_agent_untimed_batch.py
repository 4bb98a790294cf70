"""Under a step budget the batch pick carries no timing, and a recording keeps the rules it was made under."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainopt.agent.budget import LEGACY_POLICY, RunPolicy, recorded_policy
from trainopt.agent.phases.probe import critical_batch


@pytest.mark.parametrize(("noise", "baseline", "expected"), [
    (100.0, 64, 128),  # log2(100) = 6.64: the nearest power of two is 2^7
    (45.0, 64, 32),  # log2(45) = 5.49: 2^5
    (None, 64, 64),  # no usable noise scale: the baseline's batch
    (5000.0, 64, 256),  # above the probed range: its top
    (0.5, 64, 16),  # below it: its bottom
])
def test_critical_batch(noise, baseline, expected):
    digest = SimpleNamespace(batch_noise_scale=noise, baseline={"batch_size": baseline}, batch_range=(16, 256))
    assert critical_batch(digest) == expected


def test_a_recording_replays_under_its_own_rules():
    assert recorded_policy({}) == LEGACY_POLICY  # made before recordings named a policy
    named = {"planned_seeds": 5, "extend_by": 1, "reserve_seeds": 2, "min_adopt_seeds": 5, "step_batches": True}
    assert recorded_policy({"policy": named}) == RunPolicy(untimed_batch=False)  # before untimed_batch existed
    assert recorded_policy({"policy": RunPolicy().model_dump()}) == RunPolicy()
