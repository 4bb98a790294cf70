"""scikit-learn digits (1,797 8x8 images, 10 classes): the default workloads.

The splits are fixed: stratified 80/20 into training (1,437) and held out (360, random_state=0),
the held-out images halved, stratified again, into validation (180) and test (180). Inputs are
standardised with the training set's mean and spread, so every trial sees the same data.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from trainopt.tools.workloads.base import Workload

Split = tuple[torch.Tensor, torch.Tensor]  # (x (N, 64) float32, standardised; y (N,) int64)


@lru_cache(maxsize=1)
def digits_splits() -> tuple[Split, Split, Split]:
    """(train, val, test): 1,437 / 180 / 180 images, each split stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_held, y_train, y_held = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_held, y_held, test_size=0.5, stratify=y_held,
                                                    random_state=0)
    mean, std = x_train.mean(0), x_train.std(0)
    std[std < 1e-3] = 1.0  # pixels that are always blank in training stay at their raw scale
    as_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return (as_x(x_train), as_y(y_train)), (as_x(x_val), as_y(y_val)), (as_x(x_test), as_y(y_test))


def digits_split() -> tuple[Split, Split]:
    """(train, val) of ``digits_splits``: the data a selection may read."""
    train, val, _ = digits_splits()
    return train, val


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def classification_accuracy(model: nn.Module, batch) -> float:
    x, y = batch
    return (model(x).argmax(-1) == y).float().mean().item()


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions on the 8x8 image, then a linear classifier."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.head = nn.Linear(2 * channels * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, 8, 8)  # (B, 1, 8, 8)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 2C, 4, 4)
        return self.head(x.flatten(1))


def digits_classification(name: str, make_model, exercises: str, **extra) -> Workload:
    """A classifier on the fixed digits split: cross-entropy loss, accuracy metric, shared defaults."""
    train, val, test = digits_splits()
    return Workload(
        name=name,
        make_model=make_model,
        train_data=train,
        val_data=val,
        test_data=test,
        loss_fn=classification_loss,
        metric_fn=classification_accuracy,
        metric_name="accuracy",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "steps": 300},
        exercises=exercises,
        **extra,
    )


def digits_mlp() -> Workload:
    return digits_classification(
        "digits-mlp",
        lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)),
        "classification, a 2-hidden-layer ReLU MLP (the default)",
    )


def digits_cnn() -> Workload:
    return digits_classification("digits-cnn", DigitsCNN, "classification, convolutions and pooling")
