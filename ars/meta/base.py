"""The meta-optimizer interface: read training metrics, return hyperparameters to change."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from trainopt.errors import HyperparameterError

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

    Called directly, without the wrapper, a meta-optimizer needs only the metrics its decision
    reads (each class's docstring lists them). What the wrapper would add has a stated default:
    ``base_lr`` is the first ``lr`` this meta-optimizer saw (``self.first_lr``, kept in the state
    dict, cleared by ``reset``); without ``weight_decay`` the weight-decay rule is skipped and no
    ``weight_decay`` is returned. A metric the decision truly needs and that is missing is a
    ``HyperparameterError`` naming it (``require``).

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
        self.first_lr: float | None = None
        for key, value in self._fresh_state().items():
            setattr(self, key, value)

    # --- reading metrics ------------------------------------------------------------------------
    def require(self, metrics: dict[str, Any], *keys: str) -> list[float]:
        """The values of ``keys`` as floats; a missing one is a HyperparameterError naming it."""
        missing = [key for key in keys if metrics.get(key) is None]
        if missing:
            raise HyperparameterError(
                f"{type(self).__name__}.update_hparams needs metrics {missing} for its decision but got only "
                f"{sorted(metrics)}",
                {"meta_optimizer": self.name, "missing": missing},
            )
        return [float(metrics[key]) for key in keys]

    def base_lr(self, metrics: dict[str, Any]) -> float:
        """``metrics["base_lr"]`` (the wrapper adds it), else the first ``lr`` this meta-optimizer saw."""
        if metrics.get("base_lr") is not None:
            return float(metrics["base_lr"])
        if self.first_lr is None:
            if metrics.get("lr") is None:
                raise HyperparameterError(
                    f"{type(self).__name__}.update_hparams needs metrics 'base_lr' or 'lr' (the first lr seen "
                    f"stands for base_lr) but got only {sorted(metrics)}",
                    {"meta_optimizer": self.name, "missing": ["base_lr", "lr"]},
                )
            self.first_lr = float(metrics["lr"])
        return self.first_lr

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "update_frequency": self.update_frequency, "first_lr": self.first_lr,
                "state": {key: copy.deepcopy(getattr(self, key)) for key in self._state_keys}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("name") != self.name:
            raise ValueError(f"state_dict is for {state_dict.get('name')!r}, not {self.name!r}")
        missing = set(self._state_keys) - set(state_dict["state"])
        if missing:
            raise ValueError(f"state_dict lacks keys {sorted(missing)} for {self.name!r}")
        self.update_frequency = state_dict["update_frequency"]
        self.first_lr = state_dict.get("first_lr")  # absent in state dicts saved before it existed
        for key in self._state_keys:
            setattr(self, key, copy.deepcopy(state_dict["state"][key]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(update_frequency={self.update_frequency})"

