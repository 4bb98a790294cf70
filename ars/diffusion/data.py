"""Training data for the diffusion models: seeded 2-D toy distributions and scikit-learn digits.

Every toy is centred near the origin with a spread of about 1-2 so one noise schedule fits all.
``distance_to_support`` gives the distance of a point to the noise-free shape of a toy (a mode
centre, a curve, a square), which is what "off the modes" is measured against.

Example::

    g = torch.Generator().manual_seed(0)
    x = sample_toy("moons", 1000, generator=g)   # (1000, 2)
"""

from __future__ import annotations

import math

import torch

TOY_NAMES = ("8gaussians", "moons", "swissroll", "checkerboard")

# Noise scale of each toy (std of the Gaussian jitter around its noise-free shape).
TOY_NOISE = {"8gaussians": 0.15, "moons": 0.08, "swissroll": 0.1, "checkerboard": 0.0}

_GAUSSIAN_RADIUS = 2.0  # 8 gaussians: centres on a circle of radius 2 (see docs/architecture.md, known pitfalls)


def _check_toy(name: str) -> None:
    if name not in TOY_NAMES:
        raise ValueError(f"name must be one of {TOY_NAMES} but got {name=}")


def eight_gaussian_centres() -> torch.Tensor:
    """The 8 mode centres, angles k*pi/4 on a circle of radius 2.  # (8, 2)"""
    angles = torch.arange(8, dtype=torch.float32) * (math.pi / 4)
    return _GAUSSIAN_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def _moons_curve(t: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """sklearn's two half circles, shifted and scaled by 1.5 to centre them.  t in [0, pi]."""
    upper_xy = torch.stack([t.cos(), t.sin()], dim=1)
    lower_xy = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=1)
    xy = torch.where(upper[:, None], upper_xy, lower_xy)
    return 1.5 * (xy - torch.tensor([0.5, 0.25]))


def _swissroll_curve(t: torch.Tensor) -> torch.Tensor:
    """Spiral (t cos t, t sin t) / 5 for t in [1.5 pi, 4.5 pi] (sklearn make_swiss_roll, 2-D)."""
    return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0


def sample_toy(name: str, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` points of the toy ``name`` (one of TOY_NAMES).  # (n, 2)"""
    _check_toy(name)
    if n <= 0:
        raise ValueError(f"n must be > 0 but got {n=}")
    g = generator
    noise = TOY_NOISE[name]
    if name == "8gaussians":
        idx = torch.randint(0, 8, (n,), generator=g)
        return eight_gaussian_centres()[idx] + noise * torch.randn(n, 2, generator=g)
    if name == "moons":
        t = math.pi * torch.rand(n, generator=g)
        upper = torch.rand(n, generator=g) < 0.5
        return _moons_curve(t, upper) + noise * torch.randn(n, 2, generator=g)
    if name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        return _swissroll_curve(t) + noise * torch.randn(n, 2, generator=g)
    # checkerboard (FFJORD): 8 unit squares of a 4x4 board on [-2, 2]^2
    x1 = 4 * torch.rand(n, generator=g) - 2
    x2 = torch.rand(n, generator=g) - 2 * torch.randint(0, 2, (n,), generator=g).float()
    x2 = x2 + torch.floor(x1).remainder(2)
    return torch.stack([x1, x2], dim=1)


def _distance_to_curve(x: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, curve).min(dim=1).values


def distance_to_support(name: str, x: torch.Tensor) -> torch.Tensor:
    """Distance of each point of ``x`` (N, 2) to the noise-free shape of toy ``name``.  # (N,)"""
    _check_toy(name)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2) but got {tuple(x.shape)=}")
    x = x.float()
    if name == "8gaussians":
        return _distance_to_curve(x, eight_gaussian_centres())
    if name == "moons":
        t = torch.linspace(0, math.pi, 2000)
        curve = torch.cat([_moons_curve(t, torch.ones(2000, dtype=torch.bool)),
                           _moons_curve(t, torch.zeros(2000, dtype=torch.bool))])
        return _distance_to_curve(x, curve)
    if name == "swissroll":
        return _distance_to_curve(x, _swissroll_curve(torch.linspace(1.5 * math.pi, 4.5 * math.pi, 6000)))
    # checkerboard: 0 inside a filled square; else the distance to the nearest filled square
    centres = torch.tensor([[i + 0.5, j + 0.5] for i in range(-2, 2) for j in range(-2, 2)
                            if (i + j) % 2 == 0], dtype=torch.float32)  # (8, 2)
    gap = ((x[:, None, :] - centres[None]).abs() - 0.5).clamp(min=0)  # (N, 8, 2)
    return gap.norm(dim=2).min(dim=1).values


def load_digits_data(split: str = "train", *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits scaled to [-1, 1] (pixel / 8 - 1) with labels; a fixed 80/20 split.

    Returns ``(x, y)``: x (N, 64) float32, y (N,) int64.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all' but got {split=}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 8.0 - 1.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    if split == "all":
        return x, y
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    idx = perm[:cut] if split == "train" else perm[cut:]
    return x[idx], y[idx]
