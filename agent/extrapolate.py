"""A paired gain at the horizon H predicted from paired runs at two shorter horizons.

When the budget cannot pay for runs of H examples, the confirm trains the challenger and the baseline
to completion (each with its own schedule) at two horizons h1 < h2 < H on every held-out seed i, and
models the per-seed log loss ratio as linear in log horizon:

    log rho_i(h) = log(c_i(h) / b_i(h)) = a_i + s_i log h

through the two measured points, so at H

    log rho_i(H) = log rho_i(h2) + (log rho_i(h2) - log rho_i(h1)) * log(H / h2) / log(h2 / h1).

Each seed's predicted ratio enters the same paired statistics as a measured one (agent/stats.py): the
seed-to-seed spread of the extrapolated ratios carries the slope's noise, amplified by the distance to
H, into the interval. It is a model: bench/at_horizon.py measures how often its interval holds at H.
A power law in the horizon is what both losses follow in the regime far from their floor (Kaplan et al.
2020; Hoffmann et al. 2022); near a floor it overstates how far a trend carries.

Examples:
    >>> [round(x, 3) for x in log_ratios_at([0.0, -0.2], [-0.1, -0.2], 50, 100, 400)]
    [-0.3, -0.2]
"""

from __future__ import annotations

import math


def log_ratios_at(short: list[float], long: list[float], h_short: float, h_long: float, h_target: float
                  ) -> list[float]:
    """Per-seed log ratios at ``h_target`` from those at ``h_short`` and ``h_long`` (module docstring)."""
    if not 0 < h_short < h_long <= h_target:
        raise ValueError(f"need 0 < h_short < h_long <= h_target but got {h_short=}, {h_long=}, {h_target=}")
    k = math.log(h_target / h_long) / math.log(h_long / h_short)
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
