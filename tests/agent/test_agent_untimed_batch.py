"""When compute is counted in examples the batch pick carries no timing: the critical batch B_noise."""

from __future__ import annotations

import pytest

from trainopt.agent.digest import ProbeDigest
from trainopt.agent.phases.probe import untimed_batch


@pytest.mark.parametrize(("noise", "baseline", "expected"), [
    (40.0, 64, 32),  # log2(40) = 5.3: the nearest power of two
    (100.0, 64, 128),  # log2(100) = 6.6
    (None, 64, 64),  # no usable noise scale: the baseline's batch
    (5000.0, 64, 256),  # above the probed range: its top
    (0.5, 64, 16),  # below it: its bottom
])
def test_untimed_batch(noise, baseline, expected):
    digest = ProbeDigest.model_construct(batch_noise_scale=noise, baseline={"batch_size": baseline},
                                         batch_range=(16, 256))
    assert untimed_batch(digest) == expected
