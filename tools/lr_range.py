"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates", sec. 3.3; fastai ``lr_find``).

Train from a fresh model while the LR grows exponentially from ``min_lr`` to ``max_lr``, one step
per LR: lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1)). The loss is smoothed with a
bias-corrected EMA, s_i = m_i / (1 - beta^(i+1)), m_i = beta m_(i-1) + (1 - beta) loss_i, and the
sweep stops at divergence: a smoothed loss above ``diverge_factor`` x the best smoothed loss so far,
or a non-finite loss. The rules that read a peak LR off the curve are in ``lr_suggest``.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, Field

from trainopt.errors import HyperparameterError
from trainopt.tools.probe_setup import (
    build_training,
    probe_config,
    require_finite_first_loss,
    scalar_loss,
    training_errors,
)
from trainopt.tools.trials import ProgressFn, resolve_device
from trainopt.tools.workloads import Workload, get_workload

MAX_SWEEP_STEPS = 100


class LRRangeResult(BaseModel):
    """The sweep, aligned lists (one entry per step run), and where it stopped."""

    workload: str
    optimizer: str
    batch_size: int
    min_lr: float
    max_lr: float
    lrs: list[float] = Field(description="learning rate of each step")
    losses: list[float] = Field(description="raw training loss of each step")
    smoothed: list[float] = Field(description="bias-corrected EMA of the loss")
    beta: float = Field(description="EMA factor of the smoothing")
    diverged: bool = Field(description="the sweep stopped early at divergence")
    stop_reason: str = Field(description="why the sweep ended")
    divergence_lr: float | None = Field(None, description="LR at which divergence was detected")
    min_loss_lr: float = Field(description="LR of the lowest smoothed loss")
    min_loss: float = Field(description="the lowest smoothed loss")


def lr_range_test(
    workload: Workload | str,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = MAX_SWEEP_STEPS,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    optimizer: str | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: ProgressFn | None = None,
) -> LRRangeResult:
    """Sweep the LR exponentially over at most 100 steps; stop at divergence.

    Examples:
        >>> sweep = lr_range_test("digits-mlp", steps=40)
        >>> sweep.lrs[0] == 1e-6 and len(sweep.lrs) <= 40
        True
    """
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise HyperparameterError(f"min_lr must be a finite value > 0 but got {min_lr=}", {"min_lr": min_lr})
    if not (math.isfinite(max_lr) and max_lr > min_lr):
        raise HyperparameterError(
            f"the LR range is empty: max_lr must be > min_lr but got {min_lr=}, {max_lr=}",
            {"min_lr": min_lr, "max_lr": max_lr},
        )
    if not 2 <= steps <= MAX_SWEEP_STEPS:
        raise HyperparameterError(f"steps must be in [2, {MAX_SWEEP_STEPS}] but got {steps=}",
                                  {"steps": steps})
    if not 0 <= beta < 1:
        raise HyperparameterError(f"beta must be in [0, 1) but got {beta=}", {"beta": beta})
    if diverge_factor <= 1:
        raise HyperparameterError(f"diverge_factor must be > 1 but got {diverge_factor=}",
                                  {"diverge_factor": diverge_factor})
    workload = get_workload(workload)
    device = resolve_device(device)
    config = probe_config(workload, optimizer=optimizer, batch_size=batch_size, weight_decay=weight_decay,
                          seed=seed, lr=min_lr, schedule="constant", warmup_steps=0, steps=steps)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            training_errors(workload, device, min_lr=min_lr, max_lr=max_lr):
        return _sweep(workload, config, device, min_lr, max_lr, steps, beta, diverge_factor, progress)


def _sweep(workload, config, device, min_lr, max_lr, steps, beta, diverge_factor, progress) -> LRRangeResult:
    model, optimizer, batches = build_training(workload, config, device)
    # keep the workload's per-group LR ratios (e.g. a smaller LR for embeddings)
    ratios = [group["lr"] / config.lr for group in optimizer.param_groups]
    lrs, losses, smoothed = [], [], []
    mean = 0.0
    best = math.inf
    reason, divergence_lr = f"reached max_lr={max_lr:g}", None
    for i in range(steps):
        lr = min_lr * (max_lr / min_lr) ** (i / (steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        optimizer.zero_grad(set_to_none=True)
        loss = scalar_loss(workload, model, next(batches))
        value = loss.item()
        if i == 0:
            require_finite_first_loss(workload, value, lr=lr)
        lrs.append(lr)
        losses.append(value)
        if progress is not None:
            progress(i + 1, steps)
        if not math.isfinite(value):
            reason, divergence_lr = f"non-finite loss at lr={lr:.3g}", lr
            smoothed.append(math.inf)
            break
        mean = beta * mean + (1 - beta) * value
        smooth = mean / (1 - beta ** (i + 1))
        smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > diverge_factor * best:
            reason = f"smoothed loss {smooth:.4g} > {diverge_factor:g} x best {best:.4g} at lr={lr:.3g}"
            divergence_lr = lr
            break
        loss.backward()
        optimizer.step()
    finite = [s if math.isfinite(s) else math.inf for s in smoothed]
    at_min = min(range(len(finite)), key=finite.__getitem__)
    return LRRangeResult(
        workload=workload.name, optimizer=config.optimizer, batch_size=config.batch_size,
        min_lr=min_lr, max_lr=max_lr, lrs=lrs, losses=losses, smoothed=smoothed, beta=beta,
        diverged=divergence_lr is not None, stop_reason=reason, divergence_lr=divergence_lr,
        min_loss_lr=lrs[at_min], min_loss=finite[at_min],
    )
