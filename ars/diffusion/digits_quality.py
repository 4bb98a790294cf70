"""Quality of 64-D digit samples: Fréchet distance in a small classifier's features (FID-style,
Heusel et al. 2017) and the class agreement of class-conditional samples.

    FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})

The classifier is an MLP trained on the digits training split (test accuracy ~0.97); its
penultimate layer (32 units) gives the features.

Example::

    clf = train_digits_classifier()
    x, y = load_digits_data("test")
    frechet_distance(clf.features(x), clf.features(x))  # ~ 0
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn

from .data import load_digits_data


class DigitsClassifier(nn.Module):
    """64 -> 128 -> 32 -> 10 MLP; ``features`` is the 32-unit penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, 32), nn.SiLU())
        self.head = nn.Linear(32, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self(x).argmax(dim=1)


def train_digits_classifier(epochs: int = 60, seed: int = 0) -> DigitsClassifier:
    """Adam, lr 1e-3, batch 64, on the training split, with light Gaussian input noise (0.1)."""
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0 but got {epochs=}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_digits_data("train")
    clf = DigitsClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            xb = x[idx] + 0.1 * torch.randn(len(idx), 64, generator=g)
            loss = nn.functional.cross_entropy(clf(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    return clf


def frechet_distance(feat_a: torch.Tensor, feat_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F)."""
    a, b = feat_a.double().numpy(), feat_b.double().numpy()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, F) feature sets but got {a.shape=}, {b.shape=}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def class_agreement(clf: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples x (N, 64) that the classifier assigns to their conditioning label y (N,)."""
    return float((clf.predict(x) == y).float().mean())
