"""ExpertGateMetaOptimizer: a slower gate, slowed further while the gate is confident (low entropy)."""

from __future__ import annotations

from typing import Any

from ._validate import require_open_unit, require_positive
from .base import MetaOptimizer


class ExpertGateMetaOptimizer(MetaOptimizer):
    """Gate LR = base LR x ``gate_lr_factor`` x ``scale``; ``scale`` shrinks while the gate is confident.

    Reads ``base_lr`` (default: the first ``lr`` seen; one of the two is needed) and ``gate_entropy``
    (mean normalised entropy of the gate's softmax, in [0, 1];
    ``ExpertGraph.routing_stats`` reports it). Each update with ``gate_entropy < entropy_threshold``
    multiplies ``scale`` by ``low_entropy_factor`` (floored at ``min_scale``); an update at or above
    the threshold divides it back (capped at 1). Without ``gate_entropy`` the scale is left alone.
    A confident gate that keeps learning fast tends to collapse onto few experts; slowing it keeps
    the routing it found. Returns ``{"gate_lr"}``, so the optimizer needs a ``role="gate"`` group.

    Examples:
        >>> meta = ExpertGateMetaOptimizer(gate_lr_factor=0.1, entropy_threshold=0.5, low_entropy_factor=0.5)
        >>> meta.update_hparams({"loss": 1.0, "base_lr": 1e-2, "gate_entropy": 0.2}, step=0)
        {'gate_lr': 0.0005}
        >>> ExpertGateMetaOptimizer(gate_lr_factor=0.1).update_hparams({"gate_entropy": 0.9, "lr": 1e-2}, step=0)
        {'gate_lr': 0.001}
    """

    name = "expert_gate"
    _state_keys = ("scale",)

    def __init__(self, gate_lr_factor: float = 0.1, entropy_threshold: float = 0.5,
                 low_entropy_factor: float = 0.5, min_scale: float = 0.01, update_frequency: int = 1):
        require_positive(gate_lr_factor=gate_lr_factor)
        require_open_unit(entropy_threshold=entropy_threshold, low_entropy_factor=low_entropy_factor)
        require_open_unit(min_scale=min_scale)
        self.gate_lr_factor, self.entropy_threshold = gate_lr_factor, entropy_threshold
        self.low_entropy_factor, self.min_scale = low_entropy_factor, min_scale
        super().__init__(update_frequency)

    def _fresh_state(self) -> dict[str, Any]:
        return {"scale": 1.0}

    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        entropy = metrics.get("gate_entropy")
        if entropy is not None:
            if float(entropy) < self.entropy_threshold:
                self.scale = max(self.scale * self.low_entropy_factor, self.min_scale)
            else:
                self.scale = min(self.scale / self.low_entropy_factor, 1.0)
        return {"gate_lr": self.base_lr(metrics) * self.gate_lr_factor * self.scale}
