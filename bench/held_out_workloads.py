"""Held-out workloads for bench/at_horizon.py: kinds the eight benchmark workloads lack, built only
through trainopt's public API (``Workload.from_callables``), on which no rule of the agent was developed.

Each is one function returning a workload with fixed train / validation / test splits (data generated
here with fixed seeds, or shipped with scikit-learn; nothing downloaded) and its horizon H in
``default_config["steps"]`` (optimizer steps at the default batch):

    gru-adding     a GRU on the adding problem (a recurrent model), default AdamW lr 1e-4: too low.
    friedman-sgd   an MLP regression on Friedman #1 with an SGD default (lr 0.01, momentum 0.9).
    iris-tiny      a small classifier on 60 training examples of iris.

How each H was chosen (the default configuration, 3 seeds, validation loss against steps, on this
2-core machine): see each function's docstring.

    >>> HELD_OUT_WORKLOADS["iris-tiny"]().num_train
    60
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainopt.tools.workloads import Workload


def _mse(model: nn.Module, batch) -> torch.Tensor:
    return F.mse_loss(model(batch[0]), batch[1])


def adding_problem(n: int, length: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): the adding problem (Hochreiter & Schmidhuber 1997): x (n, length, 2) holds uniform values
    and a marker channel with two ones, one in each half; y (n, 1) is the sum of the two marked values.

    Predicting the mean (1.0) scores an MSE of 1/6; the answer needs memory of both marked steps.
    """
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    marker = torch.zeros(n, length)
    marker[torch.arange(n), first] = 1.0
    marker[torch.arange(n), second] = 1.0
    x = torch.stack([values, marker], dim=-1)  # (n, length, 2)
    y = (values * marker).sum(1, keepdim=True)  # (n, 1)
    return x, y


class GRURegressor(nn.Module):
    """A one-layer GRU read out from its last hidden state."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.gru = nn.GRU(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)  # (B, T, hidden)
        return self.head(out[:, -1])  # (B, 1)


def gru_adding() -> Workload:
    """A recurrent model: a GRU (32 units) on the adding problem, sequences of 30 steps; 2,000 train /
    500 val / 500 test sequences, each split generated with its own seed. Default AdamW lr 1e-4, batch 32,
    too low: H = 600 steps (19,200 examples, 9.6 epochs). Measured (mean of 3 seeds, validation MSE):
    the default falls from 1.2 to 0.150 by step 420 and stays there through 1,200 steps (the mean
    predictor's 1/6: it never finds the marked values), lr 1e-3 leaves that plateau at about 800
    steps, lr 3e-3 at about 400 and is at 0.004 by 600. The default has stopped moving at H.
    """
    x, y = adding_problem(2000, seed=0)
    x_val, y_val = adding_problem(500, seed=1)
    x_test, y_test = adding_problem(500, seed=2)
    return Workload.from_callables(
        GRURegressor, (x, y), (x_val, y_val), _mse, name="gru-adding",
        default_config={"optimizer": "adamw", "lr": 1e-4, "batch_size": 32, "steps": 600},
        test_data=(x_test, y_test),
    )


def friedman_sgd() -> Workload:
    """Regression with an SGD default: an MLP on scikit-learn's Friedman #1 (10 features, 5 of them
    informative, noise 1.0), the target standardised; 600 train / 200 val / 200 test. Default SGD
    (momentum 0.9) lr 0.01, batch 32: H = 750 steps (24,000 examples, 40 epochs). Measured (mean of 3
    seeds, validation MSE): the default 0.193 at 300 steps, 0.082 at 750, 0.062 at 1,500; lr 0.03 is at
    0.060 by 750. At H the default has made most of its way down.
    """
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]
    mean, sd = y[:600].mean(), y[:600].std()
    y = (y - mean) / sd  # (N, 1); x is uniform on [0, 1] already

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    return Workload.from_callables(
        model, (x[:600], y[:600]), (x[600:800], y[600:800]), _mse, name="friedman-sgd",
        default_config={"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "steps": 750},
        test_data=(x[800:], y[800:]),
    )


def iris_tiny() -> Workload:
    """Tiny data: iris (4 features, 3 classes), 60 train / 45 val / 45 test flowers (a fixed random split),
    features standardised on the training rows; an MLP 4-16-3. Default AdamW lr 1e-3, batch 16: H = 600
    steps (9,600 examples, 160 epochs: 3 steps an epoch). Measured (mean of 3 seeds, validation loss):
    the default 0.95 at 50 steps, 0.37 at 300, 0.26 at 600, 0.16 at 1,000; lr 0.01 reaches 0.09 at
    200 and then overfits (0.28 at 600): the horizon decides which LR is right.
    """
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:60], order[60:105], order[105:]
    x = (x - x[train].mean(0)) / x[train].std(0)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def cross_entropy(model: nn.Module, batch) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def accuracy(model: nn.Module, batch) -> float:
        return (model(batch[0]).argmax(-1) == batch[1]).float().mean().item()

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), cross_entropy, accuracy, name="iris-tiny",
        metric_name="accuracy", default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 16, "steps": 600},
        test_data=(x[test], y[test]),
    )


# name -> factory; the names are the workloads' own
HELD_OUT_WORKLOADS: dict[str, Callable[[], Workload]] = {
    "gru-adding": gru_adding,
    "friedman-sgd": friedman_sgd,
    "iris-tiny": iris_tiny,
}
