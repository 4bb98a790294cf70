"""fit_with_training_curve: the validation loss forecast from the dense training curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainopt.tools.curve_linked import binned_means, fit_with_training_curve, train_linked_members

STEPS = np.arange(1, 301, dtype=float)
# loss of every step: an exponential, whose bin means are the curve at the bin centres times a constant
# (equal bins over a steep power-law start would bias the training fit; see binned_means)
TRAIN = np.exp(-STEPS / 100) + 0.05
VAL_STEPS = STEPS[14::15]  # validated every 15 steps: 20 points


def test_binned_means_average_equal_bins():
    steps, means = binned_means([1.0, 3.0, 5.0, 7.0], n_bins=2)
    # bins [1, 3] and [5, 7], centred on steps 1.5 and 3.5
    assert steps.tolist() == [1.5, 3.5] and means.tolist() == [2.0, 6.0]


def test_train_shift_keeps_the_measured_gap():
    val = np.exp(-VAL_STEPS / 100) + 0.15  # the training curve plus a constant gap of 0.1
    shift, link = train_linked_members(VAL_STEPS, val, TRAIN)
    # the gap is measured at the end of the observed part and carried to step 1000
    assert shift.params[0] == pytest.approx(0.1, abs=0.005)
    assert shift.predict(1000) == pytest.approx(math.exp(-10) + 0.15, abs=0.005)
    # an exact affine relation: slope 1, intercept 0.1
    assert link.params == pytest.approx((0.1, 1.0), rel=1e-2)


def test_train_link_falls_back_to_the_mean_when_validation_rises():
    val = 0.2 + 0.001 * np.arange(len(VAL_STEPS))  # overfitting: the validation loss rises as training falls
    _, link = train_linked_members(VAL_STEPS, val, TRAIN)
    # k <= 0 is not a link: the recent mean stands
    assert link.params[1] == 0.0 and link.predict(3000) == pytest.approx(float(np.mean(val[10:])))


def test_members_are_scored_and_averaged():
    rng = np.random.default_rng(0)
    val = (np.exp(-VAL_STEPS / 100) + 0.15) * (1 + 0.01 * rng.standard_normal(len(VAL_STEPS)))
    fit = fit_with_training_curve(VAL_STEPS, val, TRAIN * (1 + 0.05 * rng.standard_normal(len(TRAIN))),
                                  n_bootstrap=0)
    names = {m.model for m in fit.members}
    # both training-curve members carry a held-out error and a weight; weights sum to 1
    assert {"train_shift", "train_link"} <= names and set(fit.holdout_errors) >= names
    assert sum(m.weight for m in fit.members) == pytest.approx(1.0)
    # the forecast is the weighted mean of the members' forecasts
    assert fit.predict(1000) == pytest.approx(sum(m.weight * m.predict(1000) for m in fit.members))


def test_a_training_curve_shorter_than_the_validation_steps_is_rejected():
    with pytest.raises(ValueError, match="must cover the validation steps"):
        fit_with_training_curve(VAL_STEPS, np.exp(-VAL_STEPS / 100) + 0.15, TRAIN[:100], n_bootstrap=0)


def test_a_non_finite_training_curve_leaves_the_validation_fit():
    train = TRAIN.copy()
    train[50] = math.nan
    fit = fit_with_training_curve(VAL_STEPS, np.exp(-VAL_STEPS / 100) + 0.15, train, n_bootstrap=0)
    # the training curve cannot be fitted: only the validation-curve families remain
    assert "train_shift" not in fit.holdout_errors and all(m.train_curve is None for m in fit.members)
