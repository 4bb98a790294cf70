"""A bug in the user's workload stops the run with a typed error; it never becomes a note."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.errors import WorkloadError
from trainopt.tools.workloads import Workload


def _workload_whose_loss_breaks_after(calls: int) -> Workload:
    x, y = torch.randn(256, 4), torch.randint(0, 2, (256,))
    seen = [0]

    def loss(model, batch):
        seen[0] += 1
        if seen[0] > calls:
            raise KeyError("label_smoothing")  # a bug in the user's code, not a measurement
        return F.cross_entropy(model(batch[0]), batch[1])

    return Workload.from_callables(lambda: torch.nn.Linear(4, 2), (x, y), (x[:64], y[:64]), loss, name="buggy")


@pytest.mark.parametrize("calls", [0, 200])
def test_a_workload_bug_is_a_workload_error_wherever_it_strikes(tmp_path, calls):
    # 0: at the first step of the calibration; 200: later, inside the probes
    request = OptimizationRequest(workload=_workload_whose_loss_breaks_after(calls), constraints={"step_budget": 400})
    with pytest.raises(WorkloadError, match="buggy") as caught:
        TrainingOptimizationAgent(out_dir=tmp_path).optimize_training(request)
    assert isinstance(caught.value.__cause__, KeyError)
