"""A small DDPM: an MLP noise predictor with a sinusoidal time embedding and a VP schedule.

Ho et al. 2020 (DDPM): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, linear betas 1e-4 .. 0.02,
T = 1000; the network predicts eps and is trained with || eps - eps_theta(x_t, t) ||^2.

Example::

    model = NoisePredictor(NoisePredictorConfig(data_dim=2))
    losses = train_ddpm(model, sample_toy("moons", 10_000), steps=200)
    save_checkpoint(model, "moons.pt"); model = load_checkpoint("moons.pt")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02  # DDPM's linear schedule (diffusers beta_schedule="linear")


def vp_alphas_cumprod(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s) for the linear VP schedule.  # (T,) float64"""
    betas = torch.linspace(BETA_START, BETA_END, num_train_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer position embedding of (possibly fractional) timesteps t (B,).  # (B, dim)"""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


@dataclass
class NoisePredictorConfig:
    data_dim: int = 2  # dimension of one sample (2 for the toys, 64 for digits)
    hidden: int = 128  # width of every hidden layer
    depth: int = 3  # number of residual MLP blocks
    time_dim: int = 64  # size of the sinusoidal time embedding
    num_classes: int = 0  # > 0 adds a learned class embedding (digits: 10)

    def __post_init__(self) -> None:
        for name in ("data_dim", "hidden", "depth", "time_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 but got {getattr(self, name)=}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 but got {self.num_classes=}")

    @classmethod
    def from_dict(cls, d: dict) -> NoisePredictorConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown NoisePredictorConfig keys: {sorted(unknown)}")
        return cls(**d)


class _Block(nn.Module):
    """h + W2 silu(W1 silu(h) + emb): a residual MLP block conditioned on the embedding."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1, self.emb = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(nn.functional.silu(h)) + self.emb(emb)))


class NoisePredictor(nn.Module):
    """eps_theta(x_t, t[, y]) for x_t (B, D), t (B,) or scalar timesteps in [0, T), y (B,) labels."""

    def __init__(self, config: NoisePredictorConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.class_emb = nn.Embedding(config.num_classes, h) if config.num_classes else None
        self.inp = nn.Linear(config.data_dim, h)
        self.blocks = nn.ModuleList(_Block(h) for _ in range(config.depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(h, config.data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x.shape[0])  # (B,)
        emb = self.time_mlp(sinusoidal_embedding(t, self.config.time_dim))  # (B, H)
        if self.class_emb is not None:
            if y is None:
                raise ValueError("this model is class-conditional: pass labels y")
            emb = emb + self.class_emb(y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


class ClassConditioned(nn.Module):
    """Binds labels y to a class-conditional model so samplers can call ``model(x, t)``."""

    def __init__(self, model: NoisePredictor, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y = model, y

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t, self.y)


def train_ddpm(
    model: NoisePredictor,
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    steps: int = 6000,
    batch_size: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train with the DDPM simple loss, AdamW and a cosine LR decay; returns the loss per step.

    ``progress(step, loss)`` is called after every step (the CLI drives a rich bar with it).
    """
    if steps <= 0:
        raise ValueError(f"steps must be > 0 but got {steps=}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0 but got {batch_size=}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0 but got {lr=}")
    if data.ndim != 2 or data.shape[1] != model.config.data_dim:
        raise ValueError(f"data must be (N, {model.config.data_dim}) but got {tuple(data.shape)=}")
    g = torch.Generator().manual_seed(seed)
    abar = vp_alphas_cumprod().float()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.01)
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        x0 = data[idx]
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t][:, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        y = labels[idx] if labels is not None else None
        loss = nn.functional.mse_loss(model(xt, t, y), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    return losses


def save_checkpoint(model: NoisePredictor, path: str | Path, **meta) -> None:
    """Save ``{"config", "state_dict", "meta"}``: plain types and tensors only (weights_only-safe)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict(), "meta": meta}, path)


def load_checkpoint(path: str | Path) -> tuple[NoisePredictor, dict]:
    """Load a checkpoint written by ``save_checkpoint`` with ``weights_only=True``; returns (model, meta)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = NoisePredictor(NoisePredictorConfig.from_dict(blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, blob.get("meta", {})
