"""Fixtures shared by the probe-tool tests."""

import math

import pytest
import torch

from trainopt.tools.workloads import Workload


@pytest.fixture
def nan_workload() -> Workload:
    """A tiny regression whose loss is NaN from the first step."""
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    return Workload.from_callables(lambda: torch.nn.Linear(4, 1), (x, y), (x, y),
                                   lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]) * math.nan,
                                   name="nan-loss", default_config={"batch_size": 16})
