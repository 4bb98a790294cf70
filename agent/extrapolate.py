"""A paired gain at the horizon H predicted from paired runs at two shorter horizons.

When the budget cannot pay for runs of H examples, the confirm trains the challenger and the baseline
to completion (each with its own schedule) at two horizons h1 < h2 < H on every held-out seed i, and
measures the per-seed log loss ratio there, r_i(h) = log(c_i(h) / b_i(h)). Its trend in log horizon
carries on to H by an unknown share theta of its slope:

    r_i(H) = r_i(h2) + theta * (r_i(h2) - r_i(h1)) * log(H / h2) / log(h2 / h1),   0 <= theta <= 1.

theta = 1 is a power law in the horizon (what both losses follow far from their floors; Kaplan et al.
2020), theta = 0 a ratio that no longer moves (both near their floors). The claim's point is theta = 1/2
and its interval the union of the paired intervals at theta = 0 and theta = 1 (linear in theta, so its
ends lie there): wide when the ratio still moves, narrow when it has settled. The seed-to-seed spread of
the extrapolated ratios carries the slope's noise, amplified by the distance to H. It is a model:
bench/at_horizon.py measures how often its interval holds at H.

Examples:
    >>> [round(x, 3) for x in log_ratios_at([0.0, -0.2], [-0.1, -0.2], 50, 100, 400)]
    [-0.3, -0.2]
    >>> [round(x, 3) for x in log_ratios_at([0.0, -0.2], [-0.1, -0.2], 50, 100, 400, persistence=0.5)]
    [-0.2, -0.2]
"""

from __future__ import annotations

import math

PERSISTENCE = (0.0, 0.5, 1.0)  # theta: the interval's two ends and the point between them


def log_ratios_at(short: list[float], long: list[float], h_short: float, h_long: float, h_target: float,
                  persistence: float = 1.0) -> list[float]:
    """Per-seed log ratios at ``h_target`` from those at ``h_short`` and ``h_long``, the trend carried on by
    ``persistence`` (theta, module docstring)."""
    if not 0 < h_short < h_long <= h_target:
        raise ValueError(f"need 0 < h_short < h_long <= h_target but got {h_short=}, {h_long=}, {h_target=}")
    k = persistence * math.log(h_target / h_long) / math.log(h_long / h_short)
    return [r2 + (r2 - r1) * k for r1, r2 in zip(short, long, strict=True)]


def log_ratios(baseline: list[float], challenger: list[float]) -> list[float]:
    """log(c_i / b_i) per seed; +inf for a diverged challenger, -inf for a diverged baseline."""
    out = []
    for b, c in zip(baseline, challenger, strict=True):
        if not (math.isfinite(c) and c > 0):
            out.append(math.inf if not math.isfinite(c) else -math.inf)
        elif not (math.isfinite(b) and b > 0):
            out.append(-math.inf)
        else:
            out.append(math.log(c / b))
    return out
