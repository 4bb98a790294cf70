
import numpy as np
import pytest
import torch
from torch import nn

from trainopt.errors import ConvergenceError
from trainopt.tools.gradients import GradientAnalyzer
from trainopt.tools.workloads import Workload
from trainopt.tools.workloads.digits import classification_loss, digits_split


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def digits_workload(make_model) -> Workload:
    train, val = digits_split()
    return Workload.from_callables(make_model, train, val, classification_loss, name="digits-custom",
                                   default_config={"lr": 1e-3, "batch_size": 64})



def test_a_layer_scaled_by_1e_6_is_flagged_as_vanishing():
    workload = digits_workload(lambda: nn.Sequential(nn.Linear(64, 32), Scale(1e-6), nn.ReLU(),
                                                     nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)))
    out = GradientAnalyzer(workload)(steps=30)
    # The first layer's gradient is scaled by 1e-6: it is vanishing, and a warning names it.
    status = {layer.name: layer.status for layer in out.layers}
    assert status["0.weight"] == "vanishing" and status["5.weight"] == "ok"
    assert any(f.layer == "0.weight" and f.severity == "warning" for f in out.findings)


def test_a_healthy_mlp_has_no_vanishing_or_exploding_layer():
    out = GradientAnalyzer("digits-mlp")(steps=30)
    # The default MLP trains well at its default LR: every layer is ok, no warning or worse.
    assert {layer.status for layer in out.layers} == {"ok"}
    assert all(f.severity == "info" for f in out.findings)


class SpikeOnce(nn.Module):
    """Multiplies its input by 1e4 on the 10th training forward pass only: one exploding step."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        return x * 1e4 if self.training and self.calls == 10 else x


def test_a_gradient_spike_is_flagged_as_exploding():
    workload = digits_workload(lambda: nn.Sequential(nn.Linear(64, 32), SpikeOnce(), nn.ReLU(), nn.Linear(32, 10)))
    out = GradientAnalyzer(workload)(steps=20, sample_every=50)
    # One step's gradient is ~1e4 x the others: the first layer is exploding, a critical finding names it.
    assert {layer.name: layer.status for layer in out.layers}["0.weight"] == "exploding"
    assert any(f.layer == "0.weight" and f.severity == "critical" for f in out.findings)


def test_dead_relus_are_found_with_forward_hooks():
    def make_model():
        model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        with torch.no_grad():
            model[0].bias[:15].fill_(-1e3)  # 15 of 16 units can never fire
        return model

    out = GradientAnalyzer(digits_workload(make_model))(steps=5)
    # 15/16 dead units is above 90%: a critical finding on the ReLU module "1".
    assert out.dead_relu[0].dead_fraction == pytest.approx(15 / 16)
    assert any(f.layer == "1" and f.severity == "critical" for f in out.findings)


def test_clip_threshold_is_the_percentile_of_global_norms():
    out = GradientAnalyzer("digits-mlp")(steps=20, clip_percentile=75)
    assert out.clip_threshold == pytest.approx(np.percentile(out.global_norms, 75))
    assert len(out.layer_norms["0.weight"]) == out.steps_run == 20


def test_nan_workload_is_a_convergence_error(nan_workload):
    with pytest.raises(ConvergenceError, match="first step"):
        GradientAnalyzer(nan_workload)(steps=5)
