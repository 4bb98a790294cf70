"""SmartExpertGateMetaOptimizer: separate gate and expert LR / weight decay from routing statistics."""

from __future__ import annotations

import math
from typing import Any

from ._validate import require_non_negative, require_open_unit, require_positive
from .base import MetaOptimizer


class SmartExpertGateMetaOptimizer(MetaOptimizer):
    """Gate LR held by entropy and sparsity; expert LR boosted while experts specialise.

    Reads ``base_lr`` (default: the first ``lr`` seen; one of the two is needed) and, when given,
    ``gate_entropy`` (in [0, 1]), ``routing_sparsity`` (in [0, 1])
    and ``expert_usage`` (fractions of routed slots per expert); ``ExpertGraph.routing_stats``
    reports all three. Each is smoothed, ``s <- ema_decay * s + (1 - ema_decay) * x``, then

    * ``gate_lr = base_lr * gate_lr_factor * e * c`` with
      ``c = clip(1 + sparsity_gain * (sparsity_target - s_sparsity), 0.5, 2)`` and
      ``e = low_entropy_factor`` if ``s_entropy < entropy_threshold`` else 1: a confident gate
      learns slower, and a gate that routes less sparsely than the target learns faster (sharpens);
    * ``expert_lr = base_lr * expert_lr_factor * b``, ``b = specialization_bonus`` if
      ``cv > specialization_threshold`` else 1, ``cv = std(usage) / mean(usage)`` of the smoothed
      usage: specialised (uneven) usage gets the bonus;
    * ``gate_weight_decay``, ``expert_weight_decay`` as given (separate decay for gates and experts).

    Examples:
        >>> meta = SmartExpertGateMetaOptimizer(ema_decay=0.0)
        >>> out = meta.update_hparams({"loss": 1.0, "base_lr": 1e-2, "gate_entropy": 0.9,
        ...                            "routing_sparsity": 0.7, "expert_usage": [0.5, 0.5]}, step=0)
        >>> round(out["gate_lr"], 6), out["expert_lr"]
        (0.001, 0.01)
    """

    name = "smart_expert_gate"
    _state_keys = ("entropy", "sparsity", "usage")

    def __init__(self, gate_lr_factor: float = 0.1, expert_lr_factor: float = 1.0,
                 entropy_threshold: float = 0.8, sparsity_target: float = 0.7,
                 specialization_bonus: float = 1.2, specialization_threshold: float = 0.5,
                 low_entropy_factor: float = 0.5,
                 sparsity_gain: float = 1.0, gate_weight_decay: float = 0.0,
                 expert_weight_decay: float = 1e-4,
                 ema_decay: float = 0.5, update_frequency: int = 1):
        require_positive(gate_lr_factor=gate_lr_factor, expert_lr_factor=expert_lr_factor,
                         specialization_bonus=specialization_bonus)
        require_open_unit(entropy_threshold=entropy_threshold, sparsity_target=sparsity_target,
                          low_entropy_factor=low_entropy_factor)
        require_non_negative(specialization_threshold=specialization_threshold, sparsity_gain=sparsity_gain,
                             gate_weight_decay=gate_weight_decay, expert_weight_decay=expert_weight_decay)
        if not isinstance(ema_decay, (int, float)) or isinstance(ema_decay, bool) or not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) but got {ema_decay=!r}")
        self.gate_lr_factor, self.expert_lr_factor = gate_lr_factor, expert_lr_factor
        self.entropy_threshold, self.sparsity_target = entropy_threshold, sparsity_target
        self.specialization_bonus = specialization_bonus
        self.specialization_threshold = specialization_threshold
        self.low_entropy_factor, self.sparsity_gain = low_entropy_factor, sparsity_gain
        self.gate_weight_decay, self.expert_weight_decay = gate_weight_decay, expert_weight_decay
        self.ema_decay = ema_decay
        super().__init__(update_frequency)

    def _fresh_state(self) -> dict[str, Any]:
        return {"entropy": None, "sparsity": None, "usage": None}

    def _smooth(self, old, new):
        if new is None:
            return old
        if isinstance(new, (int, float)):
            new = float(new)
            return new if old is None else self.ema_decay * old + (1 - self.ema_decay) * new
        new = [float(x) for x in new]
        if old is None or len(old) != len(new):
            return new
        return [self.ema_decay * o + (1 - self.ema_decay) * n for o, n in zip(old, new, strict=True)]

    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        self.entropy = self._smooth(self.entropy, metrics.get("gate_entropy"))
        self.sparsity = self._smooth(self.sparsity, metrics.get("routing_sparsity"))
        usage = metrics.get("expert_usage")
        self.usage = self._smooth(self.usage, None if usage is None else list(usage))
        base_lr = self.base_lr(metrics)
        gate_scale = 1.0
        if self.entropy is not None and self.entropy < self.entropy_threshold:
            gate_scale *= self.low_entropy_factor
        if self.sparsity is not None:
            gate_scale *= min(max(1 + self.sparsity_gain * (self.sparsity_target - self.sparsity), 0.5), 2.0)
        expert_scale = self.specialization_bonus if self._usage_cv() > self.specialization_threshold else 1.0
        return {"gate_lr": base_lr * self.gate_lr_factor * gate_scale,
                "expert_lr": base_lr * self.expert_lr_factor * expert_scale,
                "gate_weight_decay": self.gate_weight_decay, "expert_weight_decay": self.expert_weight_decay}

    def _usage_cv(self) -> float:
        if not self.usage:
            return 0.0
        mean = sum(self.usage) / len(self.usage)
        if mean <= 0:
            return 0.0
        return math.sqrt(sum((u - mean) ** 2 for u in self.usage) / len(self.usage)) / mean
