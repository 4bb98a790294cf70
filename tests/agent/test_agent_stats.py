"""The paired t interval behind every decision, checked against scipy's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trainopt.agent.stats import paired, relative_gains


def test_interval_matches_scipy_t_interval():
    diffs = [0.05, 0.12, -0.02, 0.08, 0.03]
    expected = stats.t.interval(0.9, len(diffs) - 1, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert paired(diffs).interval == pytest.approx(expected)


def test_new_seeds_interval_is_wider_than_the_mean_interval():
    diffs = [0.05, 0.12, -0.02, 0.08, 0.03]
    mean_lo, mean_hi = paired(diffs).interval
    lo, hi = paired(diffs, new_seeds=5).interval
    # the mean over 5 fresh seeds carries their noise too: s * sqrt(1/n + 1/5)
    assert lo < mean_lo and hi > mean_hi
    assert (hi - lo) / (mean_hi - mean_lo) == pytest.approx(math.sqrt(2))


def test_one_seed_has_no_interval():
    assert paired([0.1]).interval == (-math.inf, math.inf)


def test_a_straddling_interval_is_neither_above_nor_below_zero():
    c = paired([0.1, -0.1, 0.05, -0.04])
    assert not c.above(0.0) and not c.below(0.0) and (c.wins, c.losses) == (2, 2)


def test_relative_gains_sign_and_divergence():
    # positive: the challenger's loss is lower; a diverged challenger is an unbounded loss
    assert relative_gains([1.0, 2.0], [0.5, 3.0]) == [0.5, -0.5]
    assert relative_gains([1.0], [math.nan]) == [-math.inf]
    assert paired([0.2, -math.inf]).interval == (-math.inf, -math.inf)
