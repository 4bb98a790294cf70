"""The meta-optimizer interface: read training metrics, return hyperparameters to change."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ._validate import require_int


class MetaOptimizer(ABC):
    """Adjusts an optimizer's hyperparameters from training metrics, every ``update_frequency`` calls.

    A subclass implements one method, ``update_hparams(metrics, step) -> dict``, returning the
    hyperparameters to change: ``lr`` / ``weight_decay`` (written to every parameter group) or
    ``gate_lr``, ``expert_lr``, ``gate_weight_decay``, ``expert_weight_decay`` (written to the groups
    tagged ``role="gate"`` / ``role="expert"``). ``OptimizerWrapper`` calls it and writes the values.

    The metrics dict always holds ``loss``; the wrapper adds ``lr``, ``weight_decay`` (current values
    of the reference group: the first group not tagged ``role="gate"``) and ``base_lr``,
    ``base_weight_decay`` (their values when the wrapper was built). Optional keys a caller may
    pass: ``grad_norm``, ``weight_norm``, ``gate_entropy``, ``routing_sparsity``, ``expert_usage``,
    ``cost``, ``progress`` (fraction of the budget done, in [0, 1]).

    State that decisions depend on lives in the attributes named by ``_state_keys``; the default
    ``state_dict`` / ``load_state_dict`` / ``reset`` cover them, so a fresh instance with the same
    arguments that loads a state dict makes the same next decisions.

    Examples:
        >>> class Halve(MetaOptimizer):
        ...     name = "halve"
        ...     def update_hparams(self, metrics, step):
        ...         return {"lr": metrics["lr"] / 2}
        >>> Halve(update_frequency=10).update_hparams({"loss": 1.0, "lr": 0.1}, step=0)
        {'lr': 0.05}
    """

    name: ClassVar[str] = "meta"
    #: attributes that hold the decision state (saved by state_dict, cleared by reset)
    _state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, update_frequency: int = 1):
        require_int(1, update_frequency=update_frequency)
        self.update_frequency = update_frequency
        self.reset()

    @abstractmethod
    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        """Return the hyperparameters to change, e.g. ``{"lr": 1e-3}``; ``step`` counts wrapper calls."""

    def _fresh_state(self) -> dict[str, Any]:
        """The decision state at the start of training; subclasses override."""
        return {}

    def reset(self) -> None:
        """Forget everything learned from metrics (start of a new training run)."""
        for key, value in self._fresh_state().items():
            setattr(self, key, value)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "update_frequency": self.update_frequency,
                "state": {key: copy.deepcopy(getattr(self, key)) for key in self._state_keys}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("name") != self.name:
            raise ValueError(f"state_dict is for {state_dict.get('name')!r}, not {self.name!r}")
        missing = set(self._state_keys) - set(state_dict["state"])
        if missing:
            raise ValueError(f"state_dict lacks keys {sorted(missing)} for {self.name!r}")
        self.update_frequency = state_dict["update_frequency"]
        for key in self._state_keys:
            setattr(self, key, copy.deepcopy(state_dict["state"][key]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(update_frequency={self.update_frequency})"

