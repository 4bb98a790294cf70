"""AdvancedPlateauMetaOptimizer: linear warmup, then plateau detection by patience or a flat trend."""

from __future__ import annotations

import math
from typing import Any

from ._validate import require_int, require_non_negative, require_open_unit, require_positive
from .base import MetaOptimizer


class AdvancedPlateauMetaOptimizer(MetaOptimizer):
    """Warmup, plateau cuts and weight-decay control from loss, gradient norm and weight norm.

    Needs ``loss`` and ``lr``; reads ``base_lr`` (default: the first ``lr`` seen), ``weight_decay``,
    ``grad_norm`` and ``weight_norm`` when given. Without ``weight_decay`` (called alone, not through
    ``OptimizerWrapper``) the weight-decay rule is skipped and only ``{"lr"}`` is returned.

    * Warmup: for ``step < warmup_steps``, ``lr = base_lr * (step + 1) / warmup_steps``
      (``step`` counts wrapper calls, so warmup covers ``warmup_steps`` calls).
    * After warmup a plateau is either ``patience`` updates without a new best loss, or a relative
      improvement ``(L[t-w+1] - L[t]) / |L[t-w+1]| < min_relative_improvement`` across the last
      ``w = trend_window`` losses. On a plateau ``lr <- max(lr * lr_factor, min_lr)`` and both
      counters restart.
    * ``weight_decay <- min(weight_decay + weight_decay_step, max_weight_decay)`` when
      ``grad_norm > grad_norm_threshold``, when the weight norm grew by more than
      ``weight_norm_growth`` (relative) since the last update, or when the loss rose while
      ``grad_norm > grad_norm_threshold / 2``.

    Returns ``{"lr", "weight_decay"}``.

    Examples:
        >>> meta = AdvancedPlateauMetaOptimizer(warmup_steps=4)
        >>> meta.update_hparams({"loss": 2.0, "lr": 0.0, "base_lr": 0.1, "weight_decay": 0.0}, step=1)["lr"]
        0.05
        >>> AdvancedPlateauMetaOptimizer(warmup_steps=2).update_hparams({"loss": 2.0, "lr": 0.1}, step=0)
        {'lr': 0.05}
    """

    name = "advanced_plateau"
    _state_keys = ("best_loss", "bad_updates", "recent_losses", "last_loss", "last_weight_norm")

    def __init__(self, patience: int = 3, lr_factor: float = 0.5, min_lr: float = 1e-7,
                 warmup_steps: int = 50, grad_norm_threshold: float = 10.0, trend_window: int = 5,
                 min_relative_improvement: float = 1e-3,
                 weight_norm_growth: float = 0.05, weight_decay_step: float = 1e-4,
                 max_weight_decay: float = 1e-2, update_frequency: int = 1):
        require_int(1, patience=patience)
        require_int(0, warmup_steps=warmup_steps)
        require_int(2, trend_window=trend_window)
        require_open_unit(lr_factor=lr_factor)
        require_positive(min_lr=min_lr, grad_norm_threshold=grad_norm_threshold)
        require_non_negative(min_relative_improvement=min_relative_improvement,
                             weight_norm_growth=weight_norm_growth, weight_decay_step=weight_decay_step,
                             max_weight_decay=max_weight_decay)
        self.patience, self.lr_factor, self.min_lr = patience, lr_factor, min_lr
        self.warmup_steps, self.grad_norm_threshold = warmup_steps, grad_norm_threshold
        self.trend_window, self.min_relative_improvement = trend_window, min_relative_improvement
        self.weight_norm_growth = weight_norm_growth
        self.weight_decay_step, self.max_weight_decay = weight_decay_step, max_weight_decay
        super().__init__(update_frequency)

    def _fresh_state(self) -> dict[str, Any]:
        return {"best_loss": math.inf, "bad_updates": 0, "recent_losses": [], "last_loss": None,
                "last_weight_norm": None}

    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        loss, lr = self.require(metrics, "loss", "lr")
        base_lr = self.base_lr(metrics)
        weight_decay = self._weight_decay(metrics, loss)
        decay = {} if weight_decay is None else {"weight_decay": weight_decay}
        self.last_loss = loss
        if step < self.warmup_steps:
            self.best_loss = min(self.best_loss, loss)
            return {"lr": base_lr * (step + 1) / self.warmup_steps, **decay}
        if loss < self.best_loss:
            self.best_loss, self.bad_updates = loss, 0
        else:
            self.bad_updates += 1
        self.recent_losses = (self.recent_losses + [loss])[-self.trend_window:]
        if self.bad_updates >= self.patience or self._flat_trend():
            lr = lr * self.lr_factor
            self.bad_updates, self.recent_losses = 0, []
        return {"lr": max(lr, self.min_lr), **decay}

    def _flat_trend(self) -> bool:
        if len(self.recent_losses) < self.trend_window:
            return False
        first, last = self.recent_losses[0], self.recent_losses[-1]
        return (first - last) / max(abs(first), 1e-12) < self.min_relative_improvement

    def _weight_decay(self, metrics: dict[str, Any], loss: float) -> float | None:
        """The next weight decay, or None without a ``weight_decay`` metric (the weight norm is tracked anyway)."""
        grad_norm = float(metrics.get("grad_norm") or 0.0)
        weight_norm = metrics.get("weight_norm")
        grew = (weight_norm is not None and self.last_weight_norm is not None
                and float(weight_norm) > self.last_weight_norm * (1 + self.weight_norm_growth))
        rising = (self.last_loss is not None and loss > self.last_loss
                  and grad_norm > self.grad_norm_threshold / 2)
        if weight_norm is not None:
            self.last_weight_norm = float(weight_norm)
        if metrics.get("weight_decay") is None:
            return None
        weight_decay = float(metrics["weight_decay"])
        if grad_norm > self.grad_norm_threshold or grew or rising:
            weight_decay = min(weight_decay + self.weight_decay_step, self.max_weight_decay)
        return weight_decay
