"""PlateauMetaOptimizer: cut the LR when the loss stops improving; raise weight decay on large gradients."""

from __future__ import annotations

import math
from typing import Any

from ._validate import require_int, require_non_negative, require_open_unit, require_positive
from .base import MetaOptimizer


class PlateauMetaOptimizer(MetaOptimizer):
    """Reduce-on-plateau as a meta-optimizer.

    Needs ``loss`` and ``lr``; reads ``weight_decay`` and ``grad_norm`` when given. Each update:
    a loss below ``best * (1 - threshold)`` becomes the new best; otherwise a bad update is counted.
    After ``patience`` bad updates ``lr <- max(lr * lr_factor, min_lr)`` and the count restarts.
    When ``grad_norm > grad_norm_threshold``, ``weight_decay <- min(weight_decay + weight_decay_step,
    max_weight_decay)``. Returns ``{"lr", "weight_decay"}``; without ``weight_decay`` in the metrics
    (called alone, not through ``OptimizerWrapper``) the weight-decay rule is skipped: ``{"lr"}``.

    Examples:
        >>> meta = PlateauMetaOptimizer(patience=2, lr_factor=0.5)
        >>> [meta.update_hparams({"loss": 1.0, "lr": 0.1, "weight_decay": 0.0}, s)["lr"] for s in range(3)]
        [0.1, 0.1, 0.05]
        >>> PlateauMetaOptimizer().update_hparams({"loss": 1.0, "lr": 1e-3}, 1)
        {'lr': 0.001}
    """

    name = "plateau"
    _state_keys = ("best_loss", "bad_updates")

    def __init__(self, patience: int = 3, lr_factor: float = 0.5, min_lr: float = 1e-6,
                 threshold: float = 1e-4, grad_norm_threshold: float = 10.0,
                 weight_decay_step: float = 1e-4, max_weight_decay: float = 1e-2, update_frequency: int = 1):
        require_int(1, patience=patience)
        require_open_unit(lr_factor=lr_factor)
        require_positive(min_lr=min_lr, grad_norm_threshold=grad_norm_threshold)
        require_non_negative(threshold=threshold, weight_decay_step=weight_decay_step,
                             max_weight_decay=max_weight_decay)
        self.patience, self.lr_factor, self.min_lr, self.threshold = patience, lr_factor, min_lr, threshold
        self.grad_norm_threshold = grad_norm_threshold
        self.weight_decay_step, self.max_weight_decay = weight_decay_step, max_weight_decay
        super().__init__(update_frequency)

    def _fresh_state(self) -> dict[str, Any]:
        return {"best_loss": math.inf, "bad_updates": 0}

    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        loss, lr = self.require(metrics, "loss", "lr")
        if loss < self.best_loss * (1 - self.threshold) or self.best_loss == math.inf:
            self.best_loss, self.bad_updates = loss, 0
        else:
            self.bad_updates += 1
        if self.bad_updates >= self.patience:
            lr, self.bad_updates = lr * self.lr_factor, 0
        lr = max(lr, self.min_lr)
        if metrics.get("weight_decay") is None:
            return {"lr": lr}
        weight_decay = float(metrics["weight_decay"])
        if float(metrics.get("grad_norm") or 0.0) > self.grad_norm_threshold:
            weight_decay = min(weight_decay + self.weight_decay_step, self.max_weight_decay)
        return {"lr": lr, "weight_decay": weight_decay}
