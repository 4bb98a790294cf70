"""The statistics of bench/at_horizon.py: ratios of mean losses over evaluation seeds, their paired bootstrap
intervals, the gain a claim is about, and the chance that a user's 5-seed mean lands inside an interval.

Every figure compares two configurations trained on the same seeds (paired). The level is 90% everywhere.

    ratio     mean_i c_i / mean_i b_i over the seeds i (c: a contender's test loss, b: the other's), with a
              percentile bootstrap interval: resample the seeds (pairs) with replacement BOOTSTRAP times.
              "better" when the interval lies below 1, "worse" when above, else "n.s." (no significant
              difference). A diverged run (loss inf) makes its side's mean inf.
    gain      r_i = (b_i - c_i) / b_i per seed, clipped to [-1, 1] (a diverged contender -1, a diverged
              baseline +1): the agent's claims are about the mean of r over 5 fresh seeds.
    coverage  the chance that the mean of r over k seeds drawn without replacement from K measured ones lies
              inside an interval, from DRAWS random k-subsets.

Examples:
    >>> ratio_interval([1.0, 1.0], [2.0, 2.0], draws=10)["ratio"]
    0.5
"""

from __future__ import annotations

import math
import statistics

import numpy as np

LEVEL = 0.9
BOOTSTRAP = 5_000
DRAWS = 20_000


def mean_loss(losses: list[float]) -> float:
    """The mean over seeds; inf when any run diverged (a user who hits that seed gets no model)."""
    return statistics.fmean(losses) if all(math.isfinite(x) for x in losses) else math.inf


def ratio_interval(losses: list[float], other: list[float], draws: int = BOOTSTRAP, level: float = LEVEL,
                   seed: int = 0) -> dict:
    """mean(losses) / mean(other) over paired seeds, its percentile-bootstrap interval and the verdict.

    Examples:
        >>> r = ratio_interval([0.9, 0.8, 0.85], [1.0, 1.0, 1.0], draws=200)
        >>> round(r["ratio"], 3), r["verdict"]
        (0.85, 'better')
    """
    a, b = np.asarray(losses, dtype=float), np.asarray(other, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"need paired, non-empty losses but got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):  # a diverged side: no interval, the sign is plain
        ratio = math.inf if not np.isfinite(a).all() and np.isfinite(b).all() else (
            0.0 if np.isfinite(a).all() else math.nan)
        return {"ratio": ratio, "interval": [ratio, ratio], "verdict": _verdict(ratio, ratio), "level": level}
    picks = np.random.default_rng(seed).integers(0, len(a), size=(draws, len(a)))
    boots = a[picks].mean(axis=1) / b[picks].mean(axis=1)
    low, high = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return {"ratio": float(a.mean() / b.mean()), "interval": [float(low), float(high)],
            "verdict": _verdict(float(low), float(high)), "level": level}


def _verdict(low: float, high: float) -> str:
    if high < 1:
        return "better"
    if low > 1:
        return "worse"
    return "n.s."


def relative_reduction(baseline: float, loss: float) -> float:
    """(b - c) / b, clipped to [-1, 1]: a diverged run (inf) is -1 against a finite baseline, +1 the other way.

    Examples:
        >>> relative_reduction(2.0, 1.0), relative_reduction(1.0, math.inf)
        (0.5, -1.0)
    """
    if not math.isfinite(baseline) and not math.isfinite(loss):
        return 0.0
    if not math.isfinite(loss):
        return -1.0
    if not math.isfinite(baseline):
        return 1.0
    return max(-1.0, min(1.0, (baseline - loss) / baseline))


def gains(baseline: list[float], losses: list[float]) -> list[float]:
    """r_i = (b_i - c_i) / b_i per paired seed (``relative_reduction``)."""
    return [relative_reduction(b, c) for b, c in zip(baseline, losses, strict=True)]


def inside(value: float, interval: list[float] | tuple[float, float]) -> bool:
    return interval[0] <= value <= interval[1]


def coverage(values: list[float], interval: list[float] | tuple[float, float], k: int, draws: int = DRAWS,
             seed: int = 0) -> float:
    """The fraction of ``draws`` random k-subsets of ``values`` (drawn without replacement) whose mean lies
    inside ``interval``.

    Examples:
        >>> coverage([0.5] * 10, (0.4, 0.6), 5, 100), coverage([0.5] * 10, (0.6, 0.7), 5, 100)
        (1.0, 0.0)
    """
    if k > len(values):
        raise ValueError(f"need at least k={k} values but got {len(values)}")
    array = np.asarray(values, dtype=float)
    picks = np.argsort(np.random.default_rng(seed).random((draws, len(array))), axis=1)[:, :k]
    means = array[picks].mean(axis=1)
    return float(np.mean((means >= interval[0]) & (means <= interval[1])))
