"""OptimizerWrapper: a torch optimizer whose hyperparameters a meta-optimizer adjusts during training."""

from __future__ import annotations

from typing import Any

import torch

from .base import MetaOptimizer

#: keys written to the parameter groups tagged with a role: key -> (role, group key)
ROLE_KEYS = {
    "gate_lr": ("gate", "lr"),
    "expert_lr": ("expert", "lr"),
    "gate_weight_decay": ("gate", "weight_decay"),
    "expert_weight_decay": ("expert", "weight_decay"),
}


class OptimizerWrapper:
    """Pass-through to ``optimizer`` plus ``update_hyperparameters(metrics)``, which asks the meta-optimizer.

    ``update_hyperparameters`` counts its calls from 0 and asks the meta-optimizer on calls
    ``0, f, 2f, ...`` (``f = meta_optimizer.update_frequency``), passing that count as ``step``.
    Returned ``lr`` / ``weight_decay`` (or any key every group already has) go to every group;
    ``gate_lr``, ``expert_lr``, ``gate_weight_decay``, ``expert_weight_decay`` then go to the groups
    tagged ``role="gate"`` / ``role="expert"``. Before asking, it adds to a copy of the metrics
    ``lr``, ``weight_decay`` (current, of the reference group: the first not tagged ``role="gate"``)
    and ``base_lr``, ``base_weight_decay`` (their values at construction), unless given.

    Examples:
        >>> import torch
        >>> from trainopt.ars.meta import OptimizerWrapper, PlateauMetaOptimizer
        >>> params = [torch.nn.Parameter(torch.zeros(2))]
        >>> opt = OptimizerWrapper(torch.optim.AdamW(params, lr=1e-2), PlateauMetaOptimizer(patience=1))
        >>> for loss in (1.0, 1.0):
        ...     changed = opt.update_hyperparameters({"loss": loss})
        >>> opt.param_groups[0]["lr"]
        0.005
    """

    def __init__(self, optimizer: torch.optim.Optimizer, meta_optimizer: MetaOptimizer | None = None):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}")
        if meta_optimizer is not None and not isinstance(meta_optimizer, MetaOptimizer):
            raise ValueError(
                f"meta_optimizer must be a MetaOptimizer or None but got {type(meta_optimizer).__name__}")
        self.optimizer = optimizer
        self.meta_optimizer = meta_optimizer
        self.calls = 0  # update_hyperparameters calls so far
        reference = self._reference_group()
        self.base_lr = float(reference["lr"])
        self.base_weight_decay = float(reference.get("weight_decay", 0.0))

    # --- pass-through -------------------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def step(self, closure=None):
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    # --- meta-optimization --------------------------------------------------------------------
    def update_hyperparameters(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Ask the meta-optimizer (on calls 0, f, 2f, ...) and write what it returns; return that."""
        if "loss" not in metrics:
            raise ValueError(f"metrics must contain 'loss' but got keys {sorted(metrics)}")
        step, self.calls = self.calls, self.calls + 1
        meta = self.meta_optimizer
        if meta is None or step % meta.update_frequency != 0:
            return {}
        reference = self._reference_group()
        full = {"lr": float(reference["lr"]), "weight_decay": float(reference.get("weight_decay", 0.0)),
                "base_lr": self.base_lr, "base_weight_decay": self.base_weight_decay, **metrics}
        changes = dict(meta.update_hparams(full, step))
        self._apply(changes)
        return changes

    def _apply(self, changes: dict[str, float]) -> None:
        groups = self.optimizer.param_groups
        for key, value in changes.items():  # global keys first, role keys override below
            if key in ROLE_KEYS:
                continue
            if not all(key in group for group in groups):
                raise ValueError(f"meta-optimizer returned {key}={value!r}, a key the parameter groups lack")
            for group in groups:
                group[key] = value
        for key, value in changes.items():
            if key not in ROLE_KEYS:
                continue
            role, group_key = ROLE_KEYS[key]
            tagged = [group for group in groups if group.get("role") == role]
            if not tagged:
                raise ValueError(f"meta-optimizer returned {key}={value!r} but no parameter group has "
                                 f"role={role!r}; build the optimizer from ExpertGraph.param_groups()")
            for group in tagged:
                group[group_key] = value

    def _reference_group(self) -> dict[str, Any]:
        groups = self.optimizer.param_groups
        return next((group for group in groups if group.get("role") != "gate"), groups[0])

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        meta = self.meta_optimizer
        return {"optimizer": self.optimizer.state_dict(), "calls": self.calls, "base_lr": self.base_lr,
                "base_weight_decay": self.base_weight_decay,
                "meta_optimizer": None if meta is None else meta.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        meta_state = state_dict["meta_optimizer"]
        if (meta_state is None) != (self.meta_optimizer is None):
            raise ValueError("state_dict and wrapper disagree on having a meta-optimizer: "
                             f"saved {meta_state is not None}, here {self.meta_optimizer is not None}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.calls = int(state_dict["calls"])
        self.base_lr = float(state_dict["base_lr"])
        self.base_weight_decay = float(state_dict["base_weight_decay"])
        if meta_state is not None:
            self.meta_optimizer.load_state_dict(meta_state)

    def __repr__(self) -> str:
        return f"OptimizerWrapper({type(self.optimizer).__name__}, {self.meta_optimizer!r})"
