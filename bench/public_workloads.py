"""Workloads for bench/at_horizon.py defined only through trainopt's public API.

Each is one function returning ``Workload.from_callables(...)``, the way a user brings a model
(examples/optimize_own_model.py): data that ships with scikit-learn or is generated here, nothing
downloaded. Together they cover what the four built-ins do not: a regression, a classification
small enough that seed noise dominates, a 1-D convolution over sequences, and a default learning
rate far too high. Splits are fixed (``torch.Generator().manual_seed(0)``) so every trial sees the
same data. Each has a test split that no selection reads: the examples not in training, halved
into validation and test (the waveforms keep 500 for validation and generate 500 more, with
another seed, for test).

Each names its horizon H in ``default_config["steps"]`` (optimizer steps at its default batch): a
length at which its default configuration is reasonably trained, measured as the default's validation
loss against steps (mean of 3 seeds, one torch thread, on the 2-core development machine):

    diabetes-mlp     300 steps (9,600 examples, 27 epochs): 0.420 at 100, 0.407 at 200, 0.409 at 300, then
                     it overfits (0.48 at 1,000); the default is at its best around H.
    wine-small       500 steps (8,000 examples, 62 epochs): 0.36 at 100, 0.18 at 300, 0.176 at 500,
                     0.156 at 1,000; most of the way from 1.1 down, slowly improving after.
    waveform-conv1d  600 steps (19,200 examples, 9.6 epochs): 1.17 at 75, 1.03 at 300, 0.95 at 600, 0.87
                     at 1,500; 5 to 7 ms a step, so 10 H stays affordable on 2 cores.
    cancer-high-lr   400 steps (12,800 examples, 32 epochs): at lr 1e-3 the loss is 0.048 at 400 and 0.037
                     at 1,000, so 400 steps train this model; the default lr 0.3 scatters between 0.04
                     and 0.2 at any length (it is the bad default the workload is for).

    >>> PUBLIC_WORKLOADS["diabetes-mlp"]().num_train
    350
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainopt.tools.workloads import Workload


def _split(n: int, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random permutation of range(n), cut into (train, held-out) indices."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return order[:n_train], order[n_train:]


def _halve(held: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out indices cut into (val, test) halves, in their (random) order; val takes an odd one."""
    cut = (len(held) + 1) // 2
    return held[:cut], held[cut:]


def _standardise(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """(x - mean) / sd with the training rows' statistics (columns that never vary keep sd 1)."""
    mean, sd = x[train].mean(0), x[train].std(0)
    return (x - mean) / torch.where(sd > 1e-6, sd, torch.ones_like(sd))


def _cross_entropy(model: nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


def _accuracy(model: nn.Module, batch) -> float:
    return (model(batch[0]).argmax(-1) == batch[1]).float().mean().item()


def diabetes_mlp() -> Workload:
    """Regression: scikit-learn's diabetes table (442 patients, 10 features -> disease progression).

    Why: the built-ins are all classifiers; here the loss is the MSE of a standardised target (a
    constant prediction scores 1.0) and there is no metric, so only the loss can decide.
    350 train / 46 val / 46 test patients.
    """
    from sklearn.datasets import load_diabetes

    x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
    train, held = _split(len(x), 350)
    val, test = _halve(held)
    x, y = _standardise(x, train), _standardise(y[:, None], train)  # (N, 10), (N, 1)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def mse(model: nn.Module, batch) -> torch.Tensor:
        return F.mse_loss(model(batch[0]), batch[1])

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), mse, name="diabetes-mlp",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "steps": 300},
        test_data=(x[test], y[test]),
    )


def wine_small() -> Workload:
    """Small-data classification: scikit-learn's wine table, 128 train / 25 val / 25 test (13 features, 3 classes).

    Why: with 128 examples a training run's outcome depends on its seed (initialisation and batch
    order) about as much as on its settings; a configuration chosen on one seed is a coin toss.
    """
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    train, held = _split(len(x), 128)
    val, test = _halve(held)
    x = _standardise(x, train)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), _cross_entropy, _accuracy, name="wine-small",
        metric_name="accuracy", default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 16, "steps": 500},
        test_data=(x[test], y[test]),
    )


def waveform_sequences(
    n: int, length: int = 64, noise: float = 0.8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): n noisy periodic signals (n, 1, length) and their shape (n,) in {sine, square, triangle, sawtooth}.

    Frequency (1 to 4 periods), phase and amplitude (0.5 to 1.5) are random; Gaussian noise of
    standard deviation ``noise`` is added, so the shape is visible only across many samples.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    periods = 1 + 3 * torch.rand(n, 1, generator=g)
    phase = torch.rand(n, 1, generator=g)
    amplitude = 0.5 + torch.rand(n, 1, generator=g)
    t = periods * torch.linspace(0, 1, length)[None, :] + phase  # (n, length), in periods
    frac = t - torch.floor(t)
    shapes = torch.stack([
        torch.sin(2 * math.pi * t),  # sine
        torch.sign(torch.sin(2 * math.pi * t)),  # square
        4 * torch.abs(frac - 0.5) - 1,  # triangle
        2 * frac - 1,  # sawtooth
    ])  # (4, n, length)
    signal = shapes[y, torch.arange(n)] * amplitude + noise * torch.randn(n, length, generator=g)
    return signal[:, None, :], y


def waveform_conv1d() -> Workload:
    """Sequence model: a 1-D CNN classifying noisy generated waveforms (2,000 train / 500 val / 500 test, length 64).

    Why: a convolution over time with batch norm (its statistics follow the batch size), on data
    generated here; nothing like the image and text built-ins.
    """
    x, y = waveform_sequences(2500)
    train, val = _split(len(x), 2000)
    x_test, y_test = waveform_sequences(500, seed=1)  # test: 500 more signals, drawn apart from the rest

    def model() -> nn.Module:
        return nn.Sequential(
            nn.Conv1d(1, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),  # (B, 16, 32)
            nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(),  # (B, 32, 32)
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 4),  # (B, 4)
        )

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), _cross_entropy, _accuracy, name="waveform-conv1d",
        metric_name="accuracy", default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "steps": 600},
        test_data=(x_test, y_test),
    )


def cancer_high_lr() -> Workload:
    """A default far too high: a tanh MLP on scikit-learn's breast-cancer table, default AdamW lr 0.3.

    Why: a user's default can be badly wrong. At lr 0.3 this model trains but lands about 3x above
    the validation loss lr 3e-3 reaches (tanh keeps it from diverging outright), so every sensible
    contender should beat the default clearly, and a tool that keeps the default when in doubt
    must still see that it is bad. 400 train / 85 val / 84 test tumours, 30 features.
    """
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    train, held = _split(len(x), 400)
    val, test = _halve(held)
    x = _standardise(x, train)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(30, 32), nn.Tanh(), nn.Linear(32, 2))

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), _cross_entropy, _accuracy, name="cancer-high-lr",
        metric_name="accuracy", default_config={"optimizer": "adamw", "lr": 0.3, "batch_size": 32, "steps": 400},
        test_data=(x[test], y[test]),
    )


# name -> factory; the names are the workloads' own
PUBLIC_WORKLOADS: dict[str, Callable[[], Workload]] = {
    "diabetes-mlp": diabetes_mlp,
    "wine-small": wine_small,
    "waveform-conv1d": waveform_conv1d,
    "cancer-high-lr": cancer_high_lr,
}
