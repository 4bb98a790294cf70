"""run_trial: expected failures are measurements or typed errors; any other exception is a WorkloadError."""

import math

import pytest
import torch
from torch import nn

from trainopt.errors import HyperparameterError, OptimizationError, WorkloadError
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import Workload

CONFIG = TrialConfig(steps=12, batch_size=16, eval_every=4)


def regression(model_fn=lambda: nn.Linear(4, 1), loss_fn=None, n=64, metric_fn=None) -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(-1, keepdim=True)
    loss_fn = loss_fn or (lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    return Workload.from_callables(model_fn, (x, y), (x[:16], y[:16]), loss_fn, metric_fn, name="reg")


class RaisesAtStep(nn.Module):
    """A linear model whose forward raises on its ``fail_at``-th training call."""

    def __init__(self, fail_at: int = 7):
        super().__init__()
        self.linear, self.calls, self.fail_at = nn.Linear(4, 1), 0, fail_at

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at:
                raise IndexError("index 9 is out of bounds")
        return self.linear(x)


def test_a_loss_that_turns_nan_mid_run_is_a_measured_divergence():
    calls = []

    def loss(model, batch):
        calls.append(1)
        value = nn.functional.mse_loss(model(batch[0]), batch[1])
        return value * math.nan if len(calls) > 6 and model.training else value

    result = run_trial(regression(loss_fn=loss), CONFIG)
    # not an error: the trial ends where the loss stopped being finite
    assert result.diverged and result.divergence_reason == "non-finite loss"
    assert result.steps_run < CONFIG.steps and result.score == math.inf


def test_a_model_raising_at_step_7_names_the_workload_phase_and_cause():
    with pytest.raises(WorkloadError, match=r"'reg' raised IndexError during forward/loss") as error:
        run_trial(regression(model_fn=RaisesAtStep), CONFIG)
    # the original exception and its traceback travel with it
    assert isinstance(error.value.__cause__, IndexError)
    assert "index 9 is out of bounds" in error.value.details["traceback"]


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("label"), AttributeError("no .x")])
def test_a_bug_in_the_loss_is_a_workload_error_whatever_its_type(bug):
    def loss(model, batch):
        raise bug

    with pytest.raises(WorkloadError) as error:
        run_trial(regression(loss_fn=loss), CONFIG)
    assert error.value.phase == "forward/loss" and error.value.__cause__ is bug


def test_a_bug_in_the_metric_is_raised_in_the_validation_phase():
    def metric(model, batch):
        return batch["accuracy"]  # a tuple indexed like a dict: TypeError

    with pytest.raises(WorkloadError) as error:
        run_trial(regression(metric_fn=metric), CONFIG)
    assert error.value.phase == "validation"


@pytest.mark.parametrize("split", ["training", "validation"])
def test_a_workload_without_examples_is_refused_when_it_is_built(split):
    full, empty = (torch.zeros(4, 4), torch.zeros(4, 1)), (torch.zeros(0, 4), torch.zeros(0, 1))
    train, val = (empty, full) if split == "training" else (full, empty)
    # at the boundary, naming the split, not as an odd batch size deep inside a run
    with pytest.raises(WorkloadError, match=f"no {split} examples"):
        Workload.from_callables(lambda: nn.Linear(4, 1), train, val, lambda m, b: m(b[0]).sum(), name="empty")


def test_a_model_without_trainable_parameters_is_a_workload_error():
    def frozen():
        model = nn.Linear(4, 1)
        model.requires_grad_(False)
        return model

    with pytest.raises(WorkloadError, match="no trainable parameters"):
        run_trial(regression(model_fn=frozen), CONFIG)


def test_a_bad_setting_stays_a_hyperparameter_error():
    with pytest.raises(HyperparameterError, match="batch_size=128"):
        run_trial(regression(), TrialConfig(steps=5, batch_size=128))


@pytest.mark.parametrize("tool", ["lr", "gradients"])
def test_a_probe_tool_names_the_loss_phase_of_a_bug(tool):
    from trainopt.tools import GradientAnalyzer, LearningRateScheduler

    def loss(model, batch):
        raise KeyError("labels")

    workload = regression(loss_fn=loss)
    call = (lambda: LearningRateScheduler(workload, device="cpu")(range_steps=10, budget_steps=20, check_steps=10)) \
        if tool == "lr" else (lambda: GradientAnalyzer(workload, device="cpu")(steps=10))
    with pytest.raises(WorkloadError) as error:
        call()
    assert error.value.phase == "forward/loss" and error.value.workload == "reg"


@pytest.mark.parametrize("tool", ["lr", "gradients", "batch"])
def test_a_probe_tool_on_data_emptied_after_building_stops_with_an_error(tool):
    from trainopt.tools import BatchSizeOptimizer, GradientAnalyzer, LearningRateScheduler

    workload = regression()
    workload.train_data = (torch.zeros(0, 4), torch.zeros(0, 1))  # emptied after the checks at construction
    calls = {"lr": lambda: LearningRateScheduler(workload, device="cpu")(range_steps=10, budget_steps=20,
                                                                           check_steps=10),
             "gradients": lambda: GradientAnalyzer(workload, device="cpu")(steps=10),
             "batch": lambda: BatchSizeOptimizer(workload, device="cpu")(noise_draws=2)}
    # not an endless wait for a first batch that never comes
    with pytest.raises(OptimizationError, match="no training examples|0 training examples"):
        calls[tool]()


@pytest.mark.parametrize("tool", ["lr", "gradients"])
def test_a_probe_tool_on_a_frozen_model_names_the_problem(tool):
    from trainopt.tools import GradientAnalyzer, LearningRateScheduler

    def frozen():
        model = nn.Linear(4, 1)
        model.requires_grad_(False)
        return model

    workload = regression(model_fn=frozen)
    call = (lambda: LearningRateScheduler(workload, device="cpu")(range_steps=10, budget_steps=20, check_steps=10)) \
        if tool == "lr" else (lambda: GradientAnalyzer(workload, device="cpu")(steps=10))
    with pytest.raises(WorkloadError, match="no trainable parameters"):
        call()


@pytest.mark.parametrize("message", ["[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory",
                                     "MPS backend out of memory (MPS allocated: 1.2 GB)"], ids=["cpu", "mps"])
def test_an_allocator_running_out_of_memory_is_a_resource_error(message):
    from trainopt.errors import ResourceError

    def loss(model, batch):
        raise RuntimeError(message)

    # out of memory is an expected outcome of a setting, not a bug in the workload
    with pytest.raises(ResourceError, match="out of memory"):
        run_trial(regression(loss_fn=loss), CONFIG)
