"""Sample-quality distances between two point clouds, and the off-mode fraction of 2-D toys.

Sliced Wasserstein has a floor near 0.12 on 8 gaussians at N = 2000 and hardly separates samplers
(docs/architecture.md, known pitfalls); multi-bandwidth RBF MMD and the energy distance do. Always report the
data-vs-data floor (``quality_floor``) beside a figure.

Example::

    a, b = sample_toy("moons", 2000), sample_toy("moons", 2000)
    energy_distance(a, b)  # ~ the floor, about 1e-3
"""

from __future__ import annotations

import torch

from .data import TOY_NOISE, distance_to_support, sample_toy

DEFAULT_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) tensors with the same D but got {tuple(a.shape)=}, {tuple(b.shape)=}")


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int = 256,
                       *, generator: torch.Generator | None = None) -> float:
    """SW_1: mean over random unit directions of the 1-D W_1 between the projections (equal N)."""
    _check_pair(a, b)
    if len(a) != len(b):
        raise ValueError(f"sliced_wasserstein needs equal sizes but got {len(a)=}, {len(b)=}")
    dirs = torch.randn(a.shape[1], num_projections, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, P)
    pa, _ = (a.double() @ dirs).sort(dim=0)
    pb, _ = (b.double() @ dirs).sort(dim=0)
    return float((pa - pb).abs().mean())


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidths: tuple[float, ...] = DEFAULT_BANDWIDTHS) -> float:
    """Biased MMD^2 with the kernel sum_s exp(-|x - y|^2 / (2 s^2)) over several bandwidths s."""
    _check_pair(a, b)
    a, b = a.double(), b.double()

    def k(x, y):
        d2 = torch.cdist(x, y).pow(2)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths).mean()

    return float(k(a, a) + k(b, b) - 2 * k(a, b))


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013), V-statistic."""
    _check_pair(a, b)
    a, b = a.double(), b.double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def off_mode_fraction(name: str, x: torch.Tensor, k: float = 4.0) -> float:
    """Fraction of points farther than k * noise (checkerboard: 0.05) from the toy's noise-free shape."""
    threshold = k * TOY_NOISE[name] if TOY_NOISE[name] > 0 else 0.05
    return float((distance_to_support(name, x) > threshold).float().mean())


def toy_quality(name: str, x: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """All 2-D figures of samples ``x`` against fresh ``reference`` data of the same size."""
    g = torch.Generator().manual_seed(0)
    return {
        "energy": energy_distance(x, reference),
        "mmd": mmd_rbf(x, reference),
        "swd": sliced_wasserstein(x, reference, generator=g),
        "off_mode": off_mode_fraction(name, x),
    }


def quality_floor(name: str, n: int, seed: int = 12345) -> dict[str, float]:
    """The same figures for two independent data samples: the best a sampler can expect."""
    g = torch.Generator().manual_seed(seed)
    return toy_quality(name, sample_toy(name, n, generator=g), sample_toy(name, n, generator=g))
