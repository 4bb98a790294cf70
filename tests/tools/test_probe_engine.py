import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainopt.errors import ConvergenceError, HyperparameterError, WorkloadError
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import Workload


def regression(model_fn=lambda: nn.Linear(4, 1), loss_fn=None, n=64) -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    loss_fn = loss_fn or (lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    return Workload.from_callables(model_fn, (x, y), (x, y), loss_fn, name="regression")


def test_same_seed_gives_the_same_trial():
    config = TrialConfig(lr=3e-3, steps=30, batch_size=32)
    first, second = run_trial("digits-mlp", config), run_trial("digits-mlp", config)
    # CPU training is deterministic given the seed: identical curves, bit for bit.
    assert first.train_losses == second.train_losses
    assert first.val_losses == second.val_losses


def test_a_different_seed_gives_a_different_trial():
    a = run_trial("digits-mlp", TrialConfig(steps=10, seed=0))
    b = run_trial("digits-mlp", TrialConfig(steps=10, seed=1))
    assert a.train_losses != b.train_losses


def test_trial_records_curves_memory_and_grad_stats():
    result = run_trial("digits-mlp", TrialConfig(lr=3e-3, steps=40, eval_every=10))
    # One loss and one LR per step; validation every 10 steps; metric is accuracy.
    assert len(result.train_losses) == len(result.lrs) == 40
    assert result.val_steps == [10, 20, 30, 40]
    assert 0.0 <= result.final_val_metric <= 1.0 and result.metric_name == "accuracy"
    assert result.final_val_loss < result.train_losses[0]
    assert result.peak_memory_mb > 0 and "tensor accounting" in result.memory_method
    assert set(result.grad_stats) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert all(s.update_ratio > 0 for s in result.grad_stats.values())
    assert result.throughput > 0 and not result.diverged


def test_cpu_memory_grows_with_batch_size():
    small = run_trial("digits-mlp", TrialConfig(steps=1, batch_size=16))
    large = run_trial("digits-mlp", TrialConfig(steps=1, batch_size=512))
    # Saved activations scale with the batch; parameters and optimizer state do not.
    assert large.peak_memory_mb > small.peak_memory_mb


def test_exploding_loss_ends_the_trial_without_raising():
    result = run_trial("digits-mlp", TrialConfig(optimizer="sgd", lr=50.0, steps=100))
    # Divergence is a measurement: recorded with its step and reason, the score is +inf.
    assert result.diverged and result.steps_run < 100
    assert result.divergence_reason
    assert math.isinf(result.score) and result.final_val_metric is None


def test_report_returning_true_prunes_the_trial():
    seen = []
    result = run_trial("digits-mlp", TrialConfig(steps=50, eval_every=10),
                       report=lambda step, value: seen.append(step) or step >= 20)
    # The pruner saw the intermediate values and stopped the trial at its second report.
    assert seen == [10, 20]
    assert result.pruned and result.steps_run == 20


def test_progress_is_reported_every_step():
    calls = []
    run_trial("digits-mlp", TrialConfig(steps=5), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize("optimizer, lr", [
    ("adamw", 3e-3), ("adam", 3e-3), ("sgd", 0.05), ("ars", 3e-3), ("schedulefree", 3e-3), ("prodigy", 1.0),
])
def test_every_optimizer_trains(optimizer, lr):
    result = run_trial("digits-mlp", TrialConfig(optimizer=optimizer, lr=lr, steps=60))
    assert not result.diverged
    assert result.final_val_loss < 2.0  # below the 2.30 of a uniform guess over 10 classes


@pytest.mark.parametrize("schedule", ["cosine", "warmup_cosine", "one_cycle", "step"])
def test_schedules_end_below_the_peak(schedule):
    result = run_trial("digits-mlp", TrialConfig(lr=1e-2, schedule=schedule, steps=40))
    assert max(result.lrs) <= 1e-2 * (1 + 1e-9)
    assert result.lrs[-1] < 0.2e-2


def test_warmup_rises_linearly():
    result = run_trial("digits-mlp", TrialConfig(lr=1e-2, warmup_steps=4, steps=10))
    assert result.lrs[:5] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2])


def test_meta_optimizer_changes_the_lr():
    result = run_trial("digits-mlp", TrialConfig(
        lr=1e-2, steps=60, meta_optimizer="advanced_plateau", meta_kwargs={"warmup_steps": 20}))
    # advanced_plateau warms up linearly: the LR starts below its peak.
    assert result.lrs[0] < 1e-2


def test_user_workload_with_a_torch_dataset():
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    workload = Workload.from_callables(lambda: nn.Linear(4, 1), TensorDataset(x, y), TensorDataset(x, y),
                                       lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    result = run_trial(workload, TrialConfig(lr=1e-2, steps=20, batch_size=16))
    assert result.steps_run == 20 and result.final_val_metric is None


def test_non_scalar_loss_is_a_convergence_error():
    workload = regression(loss_fn=lambda m, b: (m(b[0]) - b[1]) ** 2)
    with pytest.raises(ConvergenceError, match=r"scalar tensor but got \(16, 1\)"):
        run_trial(workload, TrialConfig(steps=5, batch_size=16))


def test_model_that_raises_is_a_workload_error_not_a_measurement():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, x):
            raise RuntimeError("shape mismatch in layer 3")

    # a bug in the model: typed, naming the workload and the phase, the original exception chained
    with pytest.raises(WorkloadError, match="shape mismatch in layer 3") as error:
        run_trial(regression(model_fn=Broken), TrialConfig(steps=5, batch_size=16))
    assert error.value.workload == "regression" and error.value.phase == "forward/loss"
    assert isinstance(error.value.__cause__, RuntimeError)


def test_batch_larger_than_the_data_is_rejected():
    with pytest.raises(HyperparameterError, match="batch_size=128"):
        run_trial(regression(n=64), TrialConfig(steps=5, batch_size=128))


def test_unknown_workload_names_the_value():
    with pytest.raises(HyperparameterError, match="'cifar-resnet'"):
        run_trial("cifar-resnet", TrialConfig(steps=5))
