"""Under a step budget the batch pick carries no timing."""

from __future__ import annotations

import pytest

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

