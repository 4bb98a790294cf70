"""Two wrappers every sampler uses: an NFE counter and the VP eps-model seen as a VE denoiser.

VP -> VE (Karras et al. 2022, "EDM", Table 1; k-diffusion DiscreteEpsDDPMDenoiser):
    sigma_t = sqrt((1 - abar_t) / abar_t),  x_ve = x_vp * sqrt(1 + sigma^2),
    D(x_ve, sigma) = x_ve - sigma * eps_theta(x_ve / sqrt(1 + sigma^2), t(sigma)),
where t(sigma) interpolates log sigma linearly between the T discrete training timesteps.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import vp_alphas_cumprod


class NFECounter(nn.Module):
    """Counts the calls of ``model`` (number of function evaluations; one call per batch)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x, t)


class VPDenoiser:
    """D(x, sigma) in VE coordinates for an eps-predicting VP model called as ``model(x, t)``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        abar = vp_alphas_cumprod()
        self.log_sigmas = (((1 - abar) / abar).sqrt()).log().float()  # (T,) increasing in t
        self.sigma_min = float(self.log_sigmas[0].exp())
        self.sigma_max = float(self.log_sigmas[-1].exp())

    def sigma_to_t(self, sigma: float) -> float:
        """Fractional timestep with log sigma_t = log sigma (linear interpolation)."""
        log_sigma = torch.tensor(sigma).log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        hi = int(torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.log_sigmas) - 1))
        lo_val, hi_val = self.log_sigmas[hi - 1], self.log_sigmas[hi]
        w = float((log_sigma - lo_val) / (hi_val - lo_val))
        return hi - 1 + w

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        scale = (1 + sigma**2) ** 0.5
        eps = self.model(x / scale, torch.tensor(self.sigma_to_t(sigma)))
        return x - sigma * eps
