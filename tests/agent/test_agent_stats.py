"""The paired t interval behind every decision, checked against scipy's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trainopt.agent.stats import fresh_mean_gain, gain_sd, log_ratio_sd, paired, pooled_log_sd, relative_gains


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


def test_min_sd_puts_a_floor_under_the_spread_and_only_widens():
    diffs = [0.50, 0.52, 0.51, 0.49, 0.53]
    own = paired(diffs, new_seeds=5)
    assert paired(diffs, new_seeds=5, min_sd=0.001).interval == own.interval  # below s: no change
    lo, hi = paired(diffs, new_seeds=5, min_sd=0.2).interval
    half = stats.t.ppf(0.95, 4) * 0.2 * math.sqrt(1 / 5 + 1 / 5)
    assert (lo, hi) == pytest.approx((0.51 - half, 0.51 + half))


def test_pooled_log_sd_is_the_within_group_spread():
    rng = np.random.default_rng(0)
    groups = [list(np.exp(rng.normal(mu, 0.3, size=n))) for mu, n in ((0.0, 3), (2.0, 5), (-1.0, 4))]
    sd, df = pooled_log_sd([*groups, [1.0], [math.inf, 2.0]])  # one value, or one finite: no spread to pool
    logs = [np.log(g) for g in groups]
    expected = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in logs) / sum(len(x) - 1 for x in logs))
    assert df == 3 + 5 + 4 - 3 and sd == pytest.approx(expected)


def test_gain_sd_predicts_the_spread_of_relative_gains():
    # baselines scatter by 40% in log loss, challengers by 10%: the per-seed gains 1 - c/b scatter by about
    # (c/b) sqrt(0.4^2 + 0.1^2), which a few runs per side (here groups of 3, as in a race) already estimate
    rng = np.random.default_rng(1)
    b = np.exp(rng.normal(0.0, 0.4, size=4000))
    c = 0.5 * np.exp(rng.normal(0.0, 0.1, size=4000))
    predicted, df = gain_sd(float(np.mean(c / b)), [list(b[i:i + 3]) for i in range(0, 300, 3)],
                            [list(c[i:i + 3]) for i in range(0, 300, 3)])
    assert predicted == pytest.approx(float(np.std(1 - c / b, ddof=1)), rel=0.15) and df == 200
    assert gain_sd(0.5, [list(b[:3])], [[0.5]]) == (0.0, 0)  # one side never ran on two seeds: no evidence


def test_fresh_mean_gain_is_the_t_interval_when_the_spread_is_small():
    baseline = [1.0, 1.02, 0.98, 1.01, 0.99]
    challenger = [0.90, 0.93, 0.87, 0.92, 0.89]
    gains = relative_gains(baseline, challenger)
    assert fresh_mean_gain(baseline, challenger, 5) == pytest.approx(paired(gains, new_seeds=5).interval, abs=2e-4)


def test_fresh_mean_gain_is_skewed_below_a_large_gain_and_stays_under_100_percent():
    # a default that sometimes lands well: the gains scatter far more below the claim than above it
    baseline = [0.24, 0.38, 0.11, 0.27, 0.30]
    challenger = [0.064, 0.079, 0.076, 0.081, 0.065]
    claim = paired(relative_gains(baseline, challenger)).mean
    t_lo, t_hi = paired(relative_gains(baseline, challenger), new_seeds=5).interval
    lo, hi = fresh_mean_gain(baseline, challenger, 5)
    assert hi < 1.0 and hi - claim < claim - lo
    assert lo < t_lo and hi < t_hi
    # with as many fresh seeds as held-out ones the interval is centred on the claimed mean ratio, in logs
    assert math.sqrt((1 - lo) * (1 - hi)) == pytest.approx(1 - claim)


def test_fresh_mean_gain_floor_only_widens_and_bad_losses_have_none():
    baseline, challenger = [1.0, 1.1, 0.9], [0.8, 0.85, 0.75]
    own = fresh_mean_gain(baseline, challenger, 5)
    assert fresh_mean_gain(baseline, challenger, 5, min_log_sd=1e-4) == own
    lo, hi = fresh_mean_gain(baseline, challenger, 5, min_log_sd=0.5)
    assert lo < own[0] and own[1] < hi < 1.0
    assert fresh_mean_gain(baseline, [0.8, math.nan, 0.7], 5) is None
    assert fresh_mean_gain([1.0, 0.0], [0.5, 0.5], 5) is None and fresh_mean_gain([1.0], [0.5], 5) is None


def test_log_ratio_sd_takes_one_side_as_a_floor():
    spread = [[1.0, math.e]]  # log sd 1/sqrt(2)
    assert log_ratio_sd(spread, spread) == (pytest.approx(1.0), 1)
    assert log_ratio_sd(spread, [[2.0]]) == (pytest.approx(math.sqrt(0.5)), 1)
    assert log_ratio_sd([[2.0]], []) == (0.0, 0)


def test_the_fresh_seeds_interval_in_words_only_when_it_is_a_figure():
    from trainopt.agent.schemas import Gain

    words = Gain.model_construct(new_seeds_interval=(0.123, 0.456), new_seeds=5).new_seeds_text()
    assert words == "over 5 new seeds of yours its mean gain at H lands in +12.3% to +45.6% (90%)"
    # no challenger (the baseline against itself), or a diverged run: no figure to quote
    assert Gain.model_construct(new_seeds_interval=(0.0, 0.0), new_seeds=5).new_seeds_text() is None
    assert Gain.model_construct(new_seeds_interval=(-math.inf, 0.2), new_seeds=5).new_seeds_text() is None
