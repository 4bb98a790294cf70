"""Sampler experts: shape, seeded determinism, honest NFE counts, and the right distribution."""

import math

import pytest
import torch
from torch import nn

from trainopt.ars.diffusion import SAMPLERS, NFECounter, NoisePredictor, NoisePredictorConfig, vp_alphas_cumprod

# (sampler, steps) -> expected number of model calls
EXPECTED_NFE = {"ddpm": lambda n: n, "ddim": lambda n: n, "dpmpp_2m": lambda n: n, "heun": lambda n: 2 * n - 1}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return NoisePredictor(NoisePredictorConfig(data_dim=2, hidden=16, depth=1, time_dim=8)).eval()


class GaussianEps(nn.Module):
    """The exact eps-predictor for data N(0, s^2 I): E[eps | x_t] = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s2, self.abar = s * s, vp_alphas_cumprod()

    def forward(self, x, t):
        t = float(t)
        lo = min(int(math.floor(t)), 998)
        a = float(self.abar[lo] + (t - lo) * (self.abar[lo + 1] - self.abar[lo]))
        return math.sqrt(1 - a) * x / (a * self.s2 + 1 - a)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_returns_the_shape_of_x_T(name, tiny_model):
    x_T = torch.randn(7, 2)
    x = SAMPLERS[name](tiny_model, x_T, 3, generator=torch.Generator().manual_seed(0))
    # Same shape as the noise, finite values.
    assert x.shape == x_T.shape
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_is_deterministic_given_the_seed(name, tiny_model):
    x_T = torch.randn(5, 2)
    a = SAMPLERS[name](tiny_model, x_T, 4, generator=torch.Generator().manual_seed(3))
    b = SAMPLERS[name](tiny_model, x_T, 4, generator=torch.Generator().manual_seed(3))
    # Same noise and same generator seed: bit-identical samples.
    assert torch.equal(a, b)


def test_ddpm_ancestral_noise_follows_the_generator(tiny_model):
    x_T = torch.randn(5, 2)
    a = SAMPLERS["ddpm"](tiny_model, x_T, 4, generator=torch.Generator().manual_seed(1))
    b = SAMPLERS["ddpm"](tiny_model, x_T, 4, generator=torch.Generator().manual_seed(2))
    # DDPM is stochastic: another seed gives other samples.
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name,steps", [(k, n) for k in EXPECTED_NFE for n in (1, 4, 10)])
def test_nfe_counts_every_model_call(name, steps, tiny_model):
    counted = NFECounter(tiny_model)
    SAMPLERS[name](counted, torch.randn(3, 2), steps, generator=torch.Generator().manual_seed(0))
    # Heun with n steps calls the model 2n - 1 times; the others once per step.
    assert counted.calls == EXPECTED_NFE[name](steps)


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 20])
def test_adaptive_sampler_stays_within_its_nfe_budget(budget, tiny_model):
    counted = NFECounter(tiny_model)
    x = SAMPLERS["adaptive"](counted, torch.randn(3, 2), budget)
    # The budget is a hard cap on model calls, and the sample is finite.
    assert 1 <= counted.calls <= budget
    assert torch.isfinite(x).all()


def test_adaptive_sampler_stops_early_when_the_error_is_small():
    counted = NFECounter(GaussianEps(0.5))
    SAMPLERS["adaptive"](counted, torch.randn(200, 2), 1000)
    # The exact Gaussian model is smooth: error control needs far fewer than 1000 calls.
    assert counted.calls < 200


# Steps where each sampler's discretisation error is small (1st-order DDPM/DDIM converge slowest).
CONVERGED_STEPS = {"ddpm": 200, "ddim": 200, "dpmpp_2m": 50, "heun": 50, "adaptive": 200}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_reaches_the_data_distribution_with_the_exact_model(name):
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    x = SAMPLERS[name](GaussianEps(0.5), x_T, CONVERGED_STEPS[name], generator=torch.Generator().manual_seed(1))
    # Data is N(0, 0.25 I): with the exact eps the samples have std ~0.5 (clip_sample=False matters).
    assert abs(float(x.std()) - 0.5) < 0.03


def test_sampler_rejects_a_zero_step_budget(tiny_model):
    with pytest.raises(ValueError, match="num_steps"):
        SAMPLERS["heun"](tiny_model, torch.randn(2, 2), 0)
