"""Rules that read a peak learning rate off an LR range test curve (``lr_range.LRRangeResult``).

- steepest:  the LR where the smoothed loss falls fastest, argmin d s / d log(lr), searched before
             the minimum (torch-lr-finder, PyTorch Lightning).
- valley:    fastai's ``valley``: the longest run of decreasing smoothed losses (longest decreasing
             subsequence), and the point about 1/2 of the way down it.
- minimum:   the LR of the lowest smoothed loss, divided by 10 (Smith 2017; fastai's ``minimum``).

The safe range and the suggestion agree (``suggest_lr_in_range``): the range ends at the LR of the
smoothed minimum (above it the loss rises towards divergence: a hard limit, so a suggestion above it is
lowered to it) and starts at the lower of the suggestion and the LR where the smoothed loss has made 10%
of its total drop (below both the model barely trains). The suggestion may lie below the 10% point:
fastai's valley sits partway down the loss's longest fall, and on bench/lr_rules.py's grid the best LR
of digits-mlp and moe-digits (0.0008) lay between the valley (0.00061, 0.00053) and the 10% point
(0.0019), outside a range that started there.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from trainopt.tools.lr_range import LRRangeResult

Rule = Literal["steepest", "valley", "minimum"]
RULES: tuple[Rule, ...] = ("steepest", "valley", "minimum")


def _finite_curve(result: LRRangeResult) -> tuple[np.ndarray, np.ndarray]:
    smoothed = np.asarray(result.smoothed, dtype=float)
    keep = np.isfinite(smoothed)
    return np.asarray(result.lrs, dtype=float)[keep], smoothed[keep]


def steepest_lr(result: LRRangeResult) -> float:
    """argmin of d(smoothed)/d(log lr), over the points up to the minimum."""
    lrs, smoothed = _finite_curve(result)
    end = int(np.argmin(smoothed)) + 1
    if end < 3:
        return float(lrs[0])
    slope = np.gradient(smoothed[:end], np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slope))])


def valley_lr(result: LRRangeResult) -> float:
    """fastai's valley rule: longest decreasing subsequence, then 1/3 + 1/6 of the way along it."""
    lrs, losses = _finite_curve(result)
    n = len(losses)
    lds = [1] * n  # length of the longest decreasing subsequence ending at i
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def minimum_lr(result: LRRangeResult) -> float:
    """The LR of the lowest smoothed loss, divided by 10."""
    return result.min_loss_lr / 10


def suggest_lr(result: LRRangeResult, rule: Rule) -> float:
    """The peak LR that ``rule`` reads off the sweep."""
    return {"steepest": steepest_lr, "valley": valley_lr, "minimum": minimum_lr}[rule](result)


def safe_lr_range(result: LRRangeResult, drop_fraction: float = 0.1) -> tuple[float, float]:
    """(first LR with ``drop_fraction`` of the total loss drop made, LR of the smoothed minimum)."""
    lrs, smoothed = _finite_curve(result)
    at_min = int(np.argmin(smoothed))
    drop = smoothed[0] - smoothed[at_min]
    if drop <= 0:
        return float(lrs[0]), float(lrs[at_min])
    started = np.nonzero(smoothed[: at_min + 1] <= smoothed[0] - drop_fraction * drop)[0]
    return float(lrs[int(started[0])]), float(lrs[at_min])


def suggest_lr_in_range(
    result: LRRangeResult, rule: Rule, drop_fraction: float = 0.1
) -> tuple[float, tuple[float, float]]:
    """``rule``'s peak LR and the safe range that holds it, ``low <= lr <= high``:

        high = LR of the smoothed minimum,  lr = min(suggest_lr(rule), high),
        low = min(lr, first LR with ``drop_fraction`` of the total loss drop made).

    Examples:
        >>> curve = [2.0, 1.95, 1.92, 1.5, 1.0]   # smoothed loss at LR 0.001, 0.002, ..., 0.016
        >>> sweep = LRRangeResult(workload="toy", optimizer="adamw", batch_size=1, min_lr=0.001, max_lr=0.016,
        ...                       lrs=[0.001, 0.002, 0.004, 0.008, 0.016], losses=curve, smoothed=curve,
        ...                       beta=0.0, diverged=False, stop_reason="", min_loss_lr=0.016, min_loss=1.0)
        >>> suggest_lr_in_range(sweep, "minimum")   # 0.016 / 10, below the 10% point of the drop (0.008)
        (0.0016, (0.0016, 0.016))
    """
    low, high = safe_lr_range(result, drop_fraction)
    lr = min(suggest_lr(result, rule), high)
    return lr, (min(low, lr), high)
