"""Build the optimizer, LR schedule and meta-optimizer a TrialConfig names."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.workloads.base import Workload


def build_optimizer(model: nn.Module, workload: Workload, config: TrialConfig) -> torch.optim.Optimizer:
    """The base optimizer over the workload's parameter groups (role-tagged groups kept)."""
    if workload.param_groups is not None:
        params = workload.param_groups(model, config.lr, config.weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    kwargs = {"lr": config.lr, "weight_decay": config.weight_decay, **config.optimizer_kwargs}
    name = config.optimizer
    if name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    if name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(params, **{"momentum": 0.9, **kwargs})
    if name == "ars":
        from trainopt.ars import ARSOptimizer

        return ARSOptimizer(params, **kwargs)
    if name == "schedulefree":
        from schedulefree import AdamWScheduleFree

        return AdamWScheduleFree(params, warmup_steps=config.warmup_steps, **kwargs)
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, **kwargs)
    raise AssertionError(f"TrialConfig admitted an unknown optimizer {name!r}")


def lr_multiplier(config: TrialConfig) -> Callable[[int], float]:
    """LR as a fraction of the peak at step t (0-based), for torch's LambdaLR.

    constant:      w(t)                               w(t) = min(1, (t+1)/warmup) (1 without warmup)
    cosine, warmup_cosine: w(t) * 0.5 (1 + cos(pi p)),  p = (t - warmup) / (steps - warmup), floor 0
    step:          0.1 ** (number of passed milestones at 50% and 75% of steps)
    one_cycle is torch's OneCycleLR (see build_scheduler).
    """
    steps, warmup = config.steps, config.warmup_steps
    if config.schedule == "warmup_cosine" and warmup == 0:
        warmup = max(1, steps // 20)  # the schedule's name promises a warmup: 5% by default

    def warm(t: int) -> float:
        return min(1.0, (t + 1) / warmup) if warmup else 1.0

    if config.schedule == "constant":
        return warm
    if config.schedule in ("cosine", "warmup_cosine"):

        def cosine(t: int) -> float:
            progress = min(1.0, max(0.0, (t - warmup) / max(1, steps - warmup)))
            return warm(t) * 0.5 * (1.0 + math.cos(math.pi * progress))

        return cosine
    if config.schedule == "step":
        return lambda t: 0.1 ** ((t >= steps // 2) + (t >= 3 * steps // 4))
    raise AssertionError(f"no multiplier for schedule {config.schedule!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrialConfig):
    """A torch LR scheduler stepped once per optimizer step, or None (schedule-free, meta-optimizer)."""
    if config.optimizer == "schedulefree" or config.meta_optimizer is not None:
        return None
    if config.schedule == "constant" and config.warmup_steps == 0:
        return None  # nothing to schedule: skip LambdaLR's per-step Python cost
    if config.schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=config.steps,
            cycle_momentum=False,
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config))


def build_meta_optimizer(optimizer: torch.optim.Optimizer, config: TrialConfig):
    """Wrap ``optimizer`` with the named meta-optimizer, or return None."""
    if config.meta_optimizer is None:
        return None
    from trainopt.ars.meta import META_OPTIMIZERS, OptimizerWrapper

    return OptimizerWrapper(optimizer, META_OPTIMIZERS[config.meta_optimizer](**config.meta_kwargs))
