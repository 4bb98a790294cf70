"""bench/held_out_workloads.py: each workload trains and is what its docstring says."""

from __future__ import annotations

import math

import pytest

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial


@pytest.fixture(scope="module")
def held_out(bench_script):
    return bench_script("held_out_workloads")


def test_every_workload_trains_at_its_default_and_has_a_test_split(held_out):
    for name, make in sorted(held_out.HELD_OUT_WORKLOADS.items()):
        workload = make()
        config = TrialConfig(**{**workload.default_config, "steps": 5})
        result = run_trial(workload, config, device="cpu")
        # five steps of the default give finite validation and test losses; H is stated
        assert workload.name == name and workload.default_config["steps"] > 0
        assert math.isfinite(result.final_val_loss) and math.isfinite(result.final_test_loss), name


def test_the_kinds_are_the_ones_named(held_out):
    import torch

    gru, friedman, iris = (held_out.HELD_OUT_WORKLOADS[n]() for n in ("gru-adding", "friedman-sgd", "iris-tiny"))
    # a recurrent model with a default LR too low, an SGD default, about 60 training examples
    assert any(isinstance(m, torch.nn.GRU) for m in gru.make_model().modules()) and gru.default_config["lr"] == 1e-4
    assert friedman.default_config["optimizer"] == "sgd"
    assert iris.num_train == 60 and iris.num_test == 45


def test_the_adding_problem_sums_the_two_marked_values(held_out):
    x, y = held_out.adding_problem(64, length=10)
    # (N, length, 2): two markers per sequence, one in each half; the target is the marked values' sum
    assert x.shape == (64, 10, 2) and y.shape == (64, 1)
    assert (x[:, :5, 1].sum(1) == 1).all() and (x[:, 5:, 1].sum(1) == 1).all()
    assert (y[:, 0] - (x[..., 0] * x[..., 1]).sum(1)).abs().max() < 1e-6
