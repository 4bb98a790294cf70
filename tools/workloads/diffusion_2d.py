"""``diffusion-2d``: the DDPM noise predictor of ``trainopt.ars.diffusion`` on the two-moons toy.

Loss: the DDPM simple loss || eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) ||^2.
Training batches draw t and eps from torch's global RNG (the probe engine seeds it); validation
and test batches carry a fixed (x0, t, eps) so the losses of two trials are comparable. Data:
20,000 training points, 4,000 validation and 4,000 test, drawn in that order from one generator
seeded 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainopt.tools.workloads.base import Workload

NUM_TRAIN, NUM_VAL, NUM_TEST = 20_000, 4_000, 4_000


def ddpm_loss(model: nn.Module, batch) -> torch.Tensor:
    """batch = (x0,) draws t, eps; batch = (x0, t, eps) uses them."""
    from trainopt.ars.diffusion.model import NUM_TRAIN_TIMESTEPS, vp_alphas_cumprod

    x0 = batch[0]
    if len(batch) == 3:
        t, eps = batch[1], batch[2]
    else:
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (len(x0),), device=x0.device)
        eps = torch.randn_like(x0)
    abar = vp_alphas_cumprod().float().to(x0.device)[t][:, None]
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    return F.mse_loss(model(xt, t), eps)


def diffusion_2d() -> Workload:
    from trainopt.ars.diffusion import NoisePredictor, NoisePredictorConfig, sample_toy
    from trainopt.ars.diffusion.model import NUM_TRAIN_TIMESTEPS

    g = torch.Generator().manual_seed(0)
    train = (sample_toy("moons", NUM_TRAIN, generator=g),)
    val, test = ((sample_toy("moons", n, generator=g),  # (x0 (n, 2), t (n,), eps (n, 2))
                  torch.randint(0, NUM_TRAIN_TIMESTEPS, (n,), generator=g),
                  torch.randn(n, 2, generator=g)) for n in (NUM_VAL, NUM_TEST))
    return Workload(
        name="diffusion-2d",
        make_model=lambda: NoisePredictor(NoisePredictorConfig(data_dim=2)),
        train_data=train,
        val_data=val,
        test_data=test,
        loss_fn=ddpm_loss,
        higher_is_better=False,
        default_config={"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "steps": 300,
                        "schedule": "cosine"},
        exercises="diffusion: DDPM noise prediction on two moons (MLP, sinusoidal time embedding)",
    )
