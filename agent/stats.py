"""Paired comparisons over seeds: the numbers every selection and confirmation decision rests on.

For paired differences d_i (one per seed, i = 1..n) with mean m and sample standard deviation s,
the two-sided interval at ``level`` is the Student t interval

    m +- t_{(1 + level) / 2, n - 1} * s / sqrt(n)

and the interval for the mean over ``k`` fresh seeds (what a user who re-runs the configuration sees)
widens the standard error to s * sqrt(1/n + 1/k). scipy.stats supplies the t quantile.

A few held-out seeds can agree by chance while other seeds of the same configurations scatter widely (a
default at the edge of divergence: most seeds land close, a few far). ``min_sd`` lets a caller put a
floor under s from that other evidence. ``gain_sd`` gives the spread the rest of a run implies for the
per-seed relative gain r = 1 - c/b, by the delta method on the log losses:

    sd(r) ~= (c/b) * sqrt(s_b^2 + s_c^2)

with s_b, s_c the pooled within-group standard deviations of log(loss) of each configuration over the
groups of seeds the run trained it on (``pooled_log_sd``); b and c are taken as independent on a seed
(a seed that favours both runs, the usual case, would make the true spread smaller). ``pooled_sd``
combines it with the held-out seeds' own s, each weighted by its degrees of freedom.

``fresh_mean_gain`` is the interval for a user's mean over ``k`` fresh seeds under a log-normal model of
the per-seed loss ratio rho = c/b (its docstring has the math): a mean of ratios is skewed, and it never
reaches a gain of +100%, which a t interval on the gains r_i = 1 - rho_i can pass.

Examples:
    >>> c = paired([0.10, 0.12, 0.08])
    >>> round(c.mean, 3), c.wins, c.losses, c.interval[0] > 0
    (0.1, 3, 0, True)
"""

from __future__ import annotations

import math
import statistics

from pydantic import BaseModel
from scipy import stats

LEVEL = 0.9  # every interval in a response and a benchmark


class Paired(BaseModel):
    """Per-seed differences (positive: the challenger is better) and their interval."""

    diffs: list[float]
    mean: float
    interval: tuple[float, float]
    level: float
    wins: int
    losses: int

    def above(self, threshold: float) -> bool:
        """The whole interval lies above ``threshold``: a significant improvement."""
        return self.interval[0] > threshold

    def below(self, threshold: float) -> bool:
        return self.interval[1] < threshold


def t_half_width(diffs: list[float], level: float = LEVEL, new_seeds: int | None = None,
                 min_sd: float = 0.0) -> float:
    """Half width of the t interval of mean(diffs), with s at least ``min_sd``; infinite with fewer than
    two finite values."""
    n = len(diffs)
    if n < 2 or not all(math.isfinite(d) for d in diffs):
        return math.inf
    s = max(statistics.stdev(diffs), min_sd)
    scale = math.sqrt(1 / n + (1 / new_seeds if new_seeds else 0.0))
    return float(stats.t.ppf((1 + level) / 2, n - 1)) * s * scale


def paired(diffs: list[float], level: float = LEVEL, new_seeds: int | None = None, min_sd: float = 0.0) -> Paired:
    """The mean of ``diffs`` with its t interval (for the mean over ``new_seeds`` fresh seeds when given;
    s at least ``min_sd``).

    A non-finite difference (a diverged run) makes the mean infinite in its direction and the interval
    unbounded on that side."""
    finite = [d for d in diffs if math.isfinite(d)]
    mean = math.fsum(diffs) / len(diffs) if len(finite) == len(diffs) else (-math.inf if any(
        d == -math.inf for d in diffs) else math.inf)
    half = t_half_width(diffs, level, new_seeds, min_sd)
    low, high = (mean - half, mean + half) if math.isfinite(mean) else (mean, mean)
    if not math.isfinite(half) and math.isfinite(mean):
        low, high = -math.inf, math.inf
    return Paired(diffs=list(diffs), mean=mean, interval=(low, high), level=level,
                  wins=sum(d > 0 for d in diffs), losses=sum(d < 0 for d in diffs))


def relative_gains(baseline: list[float], challenger: list[float]) -> list[float]:
    """(b_i - c_i) / b_i per seed; a diverged challenger is -inf, a diverged baseline +inf."""
    gains = []
    for b, c in zip(baseline, challenger, strict=True):
        if not math.isfinite(c):
            gains.append(-math.inf)
        elif not math.isfinite(b) or b <= 0:
            gains.append(math.inf if not math.isfinite(b) else 0.0)
        else:
            gains.append((b - c) / b)
    return gains


def pooled_log_sd(groups: list[list[float]]) -> tuple[float, int]:
    """Pooled within-group standard deviation of log(x) and its degrees of freedom, over the groups with at
    least two finite positive values: sqrt(sum_g sum_i (log x_gi - mean_g)^2 / sum_g (n_g - 1)).

    Examples:
        >>> sd, df = pooled_log_sd([[1.0, math.e], [2.0], [5.0, 5.0]])
        >>> round(sd, 3), df
        (0.5, 2)
    """
    squares, df = 0.0, 0
    for group in groups:
        logs = [math.log(x) for x in group if math.isfinite(x) and x > 0]
        if len(logs) >= 2:
            mean = math.fsum(logs) / len(logs)
            squares += math.fsum((v - mean) ** 2 for v in logs)
            df += len(logs) - 1
    return (math.sqrt(squares / df), df) if df else (0.0, 0)


def gain_sd(ratio: float, baseline_groups: list[list[float]], challenger_groups: list[list[float]]
            ) -> tuple[float, int]:
    """The spread of the per-seed gain 1 - c/b that each side's seed-to-seed spread of log loss implies,
    ratio * sqrt(s_b^2 + s_c^2) with ``ratio`` the mean c/b (delta method; module docstring), and its
    degrees of freedom (the smaller side's); (0, 0) when either side has no group of two seeds."""
    s_b, df_b = pooled_log_sd(baseline_groups)
    s_c, df_c = pooled_log_sd(challenger_groups)
    if not (df_b and df_c and math.isfinite(ratio)):
        return 0.0, 0
    return ratio * math.sqrt(s_b**2 + s_c**2), min(df_b, df_c)


def fresh_mean_gain(baseline: list[float], challenger: list[float], new_seeds: int, level: float = LEVEL,
                    min_log_sd: float = 0.0) -> tuple[float, float] | None:
    """Where a user's mean gain over ``new_seeds`` (k) fresh seeds lands, from n paired held-out seeds, under a
    log-normal model of the per-seed ratio rho_i = c_i / b_i; None when a loss is not finite and positive.

    With log rho ~ N(mu, sigma^2), a mean of m ratios is about log-normal with the same mean (Fenton 1960,
    moments matched): log rhobar_m ~ N(log E[rho] - sigma_m^2 / 2, sigma_m^2), sigma_m^2 = log(1 + (e^sigma^2
    - 1) / m). The held-out mean rhobar_n and a user's rhobar_k are independent, so

        log rhobar_k - log rhobar_n ~ N((sigma_n^2 - sigma_k^2) / 2, sigma_n^2 + sigma_k^2)

    and, with sigma estimated by the sample sd of log rho_i (at least ``min_log_sd``) and the t quantile on
    n - 1 degrees of freedom, the gain 1 - rhobar_k lies in

        1 - rhobar_n exp((sigma_n^2 - sigma_k^2) / 2 +- t sqrt(sigma_n^2 + sigma_k^2)).

    For a small sigma this is the t interval on the gains, mean(r) +- t s sqrt(1/n + 1/k).

    Examples:
        >>> lo, hi = fresh_mean_gain([0.24, 0.38, 0.11, 0.27, 0.30], [0.064, 0.079, 0.076, 0.081, 0.065], 5)
        >>> round(lo, 3), round(hi, 3)
        (0.33, 0.831)
    """
    n = len(baseline)
    if n < 2 or not all(math.isfinite(x) and x > 0 for x in [*baseline, *challenger]):
        return None
    logs = [math.log(c / b) for b, c in zip(baseline, challenger, strict=True)]
    var = max(statistics.stdev(logs), min_log_sd) ** 2
    var_n, var_k = (math.log1p(math.expm1(var) / m) for m in (n, new_seeds))
    mean_ratio = math.fsum(c / b for b, c in zip(baseline, challenger, strict=True)) / n
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * math.sqrt(var_n + var_k)
    center = (var_n - var_k) / 2
    return 1 - mean_ratio * math.exp(center + half), 1 - mean_ratio * math.exp(center - half)


def log_ratio_sd(baseline_groups: list[list[float]], challenger_groups: list[list[float]]) -> tuple[float, int]:
    """sqrt(s_b^2 + s_c^2), the spread of log(c / b) that each side's seed-to-seed spread of log loss implies
    (b and c independent on a seed; module docstring), with its degrees of freedom (the smaller side's). A
    side the run trained on no two seeds alike (the finals' horizon twin) counts as 0 with the other's degrees
    of freedom: a floor, not an estimate; (0, 0) when neither side has a group of two seeds."""
    (s_b, df_b), (s_c, df_c) = pooled_log_sd(baseline_groups), pooled_log_sd(challenger_groups)
    dfs = [df for df in (df_b, df_c) if df]
    return (math.hypot(s_b, s_c), min(dfs)) if dfs else (0.0, 0)


def pooled_sd(s1: float, df1: int, s2: float, df2: int) -> float:
    """sqrt((df1 s1^2 + df2 s2^2) / (df1 + df2)): two estimates of one spread, weighted by their degrees of
    freedom.

    Examples:
        >>> round(pooled_sd(0.1, 4, 0.3, 2), 4), pooled_sd(0.1, 4, 0.3, 0)
        (0.1915, 0.1)
    """
    return math.sqrt((df1 * s1**2 + df2 * s2**2) / (df1 + df2)) if df1 + df2 else 0.0
