"""Progressive distillation: the time grid, the v-parameterisation, honest NFE, and a student that learns."""

import pytest
import torch
from torch import nn

from trainopt.ars.diffusion import NFECounter, NoisePredictor, NoisePredictorConfig, vp_alphas_cumprod
from trainopt.ars.diffusion.distill import (
    VPrediction,
    alpha_sigma,
    distill_round,
    progressive_distill,
    sample_distilled,
    time_grid,
)


def tiny_net() -> NoisePredictor:
    torch.manual_seed(0)
    return NoisePredictor(NoisePredictorConfig(data_dim=2, hidden=32, depth=1, time_dim=16))


class GaussianEps(nn.Module):
    """The exact eps-predictor for data N(0, s^2 I): E[eps | z_t] = s_t z / (a_t^2 s^2 + s_t^2)."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s2 = s * s

    def forward(self, x, t):
        a, sigma = alpha_sigma(torch.as_tensor(t, dtype=torch.float32).reshape(-1))
        return sigma[:, None] * x / (a[:, None] ** 2 * self.s2 + sigma[:, None] ** 2)


def test_time_grid_runs_from_clean_data_to_the_last_training_timestep():
    # N = 4 is diffusers' trailing spacing 999, 749, 499, 249 plus the clean end point -1.
    assert time_grid(4).tolist() == [-1.0, 249.0, 499.0, 749.0, 999.0]


def test_alpha_sigma_matches_the_training_schedule_and_is_clean_at_minus_one():
    abar = vp_alphas_cumprod()
    a, s = alpha_sigma(torch.tensor([-1.0, 0.0, 999.0]))
    # abar(-1) = 1 (no noise); integer t reproduce the DDPM schedule.
    assert torch.allclose(a, torch.stack([torch.tensor(1.0), abar[0].sqrt().float(), abar[-1].sqrt().float()]))
    assert float(s[0]) == 0.0


def test_v_prediction_is_a_consistent_eps_model():
    model = VPrediction(tiny_net())
    z, t = torch.randn(6, 2), torch.full((6,), 500.0)
    a, s = alpha_sigma(t)
    # x^ from v directly equals x^ recovered from the eps view: (z - s eps) / a.
    eps = model(z, t)
    assert torch.allclose(model.clean_estimate(z, t), (z - s[:, None] * eps) / a[:, None], atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_sample_distilled_costs_exactly_num_steps_model_calls(steps):
    counted = NFECounter(VPrediction(tiny_net()))
    x = sample_distilled(counted, torch.randn(5, 2), steps)
    # One call per step, same shape, finite.
    assert counted.calls == steps
    assert x.shape == (5, 2) and torch.isfinite(x).all()


def test_one_step_student_matches_the_many_step_teacher_on_gaussian_data():
    teacher = GaussianEps(0.5)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
    student = VPrediction(tiny_net())
    data = 0.5 * torch.randn(10_000, 2, generator=torch.Generator().manual_seed(2))
    distill_round(student, teacher, data, None, 1, iterations=100, batch_size=64, lr=3e-3, teacher_substeps=8,
                  generator=torch.Generator().manual_seed(0))
    # The teacher's own 1-step DDIM collapses to ~0 (std 0.002); the 1-step student reaches the
    # 16-step teacher's std (0.42; the exact answer is 0.5) within 0.1.
    assert float(sample_distilled(teacher, x_T, 1).std()) < 0.05
    teacher_16 = float(sample_distilled(teacher, x_T, 16).std())
    assert abs(float(sample_distilled(student, x_T, 1).std()) - teacher_16) < 0.1


def test_progressive_distill_halves_the_steps_each_round_and_reports_its_cost():
    data = torch.randn(200, 2)
    students, cost = progressive_distill(tiny_net(), data, start_steps=4, final_steps=1, iterations=2,
                                         batch_size=8, teacher_substeps=1)
    # Students for 4, 2 and 1 steps; three rounds of 2 iterations each; seconds measured.
    assert sorted(students) == [1, 2, 4]
    assert cost["rounds"] == 3 and cost["iterations"] == 6 and cost["seconds"] > 0
    assert all(isinstance(s, VPrediction) and not s.training for s in students.values())


@pytest.mark.parametrize("kwargs", [{"start_steps": 6}, {"start_steps": 2, "final_steps": 4}, {"iterations": 0}])
def test_progressive_distill_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        progressive_distill(tiny_net(), torch.randn(10, 2), **kwargs)
