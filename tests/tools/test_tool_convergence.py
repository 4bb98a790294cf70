"""ConvergencePredictor and fit_loss_curve on synthetic curves with known parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainopt.errors import ConvergenceError, HyperparameterError
from trainopt.tools.convergence import ConvergencePredictor, early_stopping_verdict
from trainopt.tools.curve_fit import GATE, ensemble_weights, fit_loss_curve, smooth_losses

STEPS = np.arange(1, 121, dtype=float)


def test_fit_recovers_a_noisy_power_law():
    rng = np.random.default_rng(0)
    losses = (2.0 * STEPS**-0.5 + 0.1) * (1 + 0.01 * rng.standard_normal(len(STEPS)))
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=10)
    # the power law wins on held-out error and its parameters come back within a few percent
    assert fit.model == "power_law"
    assert fit.holdout_errors["power_law"] < fit.holdout_errors["exponential"]
    assert fit.a == pytest.approx(2.0, rel=0.1)
    assert fit.b == pytest.approx(0.5, rel=0.1)
    assert fit.c == pytest.approx(0.1, abs=0.02)


def test_fit_recovers_an_exponential():
    losses = 1.5 * np.exp(-0.02 * STEPS) + 0.3
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0)
    # exact data: the exponential wins and its parameters come back almost exactly
    assert fit.model == "exponential"
    assert (fit.a, fit.b, fit.c) == pytest.approx((1.5, 0.02, 0.3), rel=1e-3)


def test_fit_recovers_a_log_logistic_curve():
    losses = 0.1 + (2.3 - 0.1) / (1 + (STEPS / 40.0) ** 2)
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0)
    # flat start, drop around step 40, offset 0.1: the log-logistic family wins and comes back exactly
    assert fit.model == "log_logistic"
    assert (fit.a, fit.b, fit.c, fit.tau) == pytest.approx((2.3, 2.0, 0.1, 40.0), rel=1e-3)
    # 0.1 + 2.2 / (1 + (t/40)^2) = 0.32  <=>  t = 40 * sqrt(9) = 120
    assert fit.steps_to_reach(0.32) == pytest.approx(120, rel=1e-3)


def test_ensemble_weights_follow_held_out_error():
    losses = 1.5 * np.exp(-0.02 * STEPS) + 0.3
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0)
    weights = {m.model: m.weight for m in fit.members}
    # weights sum to 1 and the exact family (held-out error ~0) carries almost all of it
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["exponential"] > 0.99
    assert fit.predict(300) == pytest.approx(1.5 * math.exp(-6) + 0.3, rel=1e-3)


def test_equal_weighting_averages_families_with_similar_held_out_error():
    rng = np.random.default_rng(4)
    losses = (2.0 * STEPS**-0.5 + 0.1) * (1 + 0.02 * rng.standard_normal(len(STEPS)))
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0)
    errors = [fit.holdout_errors[m.model] for m in fit.members]
    # noisy data: no family fails by GATE x, so every member gets the same weight
    assert max(errors) < GATE * min(errors)
    assert [m.weight for m in fit.members] == pytest.approx([1 / len(fit.members)] * len(fit.members))


def test_inverse_square_weighting_follows_held_out_error():
    rng = np.random.default_rng(4)
    losses = (2.0 * STEPS**-0.5 + 0.1) * (1 + 0.02 * rng.standard_normal(len(STEPS)))
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0, weighting="inverse_square")
    weights = {m.model: m.weight for m in fit.members}
    # w_m = e_m^-2 / sum_k e_k^-2
    total = sum(fit.holdout_errors[m] ** -2 for m in weights)
    assert weights == pytest.approx({m: fit.holdout_errors[m] ** -2 / total for m in weights})


@pytest.mark.parametrize(
    ("errors", "weighting", "expected"),
    [
        ({"a": 0.01, "b": 0.02, "c": 0.5}, "equal", {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),  # c is 50x a: in
        ({"a": 0.001, "b": 0.2}, "equal", {"a": 1.0, "b": 0.0}),  # b is 200x a: out
        ({"a": 0.01, "b": math.inf}, "equal", {"a": 1.0, "b": 0.0}),  # a failed fit gets nothing
        ({"a": 0.01, "b": 0.02}, "inverse_square", {"a": 0.8, "b": 0.2}),  # 1e4 : 2.5e3
        ({"a": math.inf, "b": math.inf}, "equal", {"a": 0.5, "b": 0.5}),  # nothing to go on: equal
    ],
)
def test_ensemble_weights_rules(errors, weighting, expected):
    assert ensemble_weights(errors, weighting) == pytest.approx(expected)


def test_ensemble_off_predicts_with_the_chosen_family():
    rng = np.random.default_rng(3)
    losses = (2.0 * STEPS**-0.5 + 0.1) * (1 + 0.02 * rng.standard_normal(len(STEPS)))
    fit = fit_loss_curve(STEPS, losses, n_bootstrap=0, ensemble=False)
    # no members: predict is the chosen family's curve
    assert fit.members == [] and fit.predict(500) == fit.predict_family(500)


def test_interval_widens_with_the_forecast_horizon():
    rng = np.random.default_rng(2)
    fit = fit_loss_curve(STEPS, (2.0 * STEPS**-0.5 + 0.1) * (1 + 0.02 * rng.standard_normal(len(STEPS))),
                         n_bootstrap=10)
    near, far = fit.predict_interval(250), fit.predict_interval(2000)
    # the further from the data, the larger the held-out-error widening
    assert far[1] / far[0] > near[1] / near[0] > 1


def test_steps_to_target_inverts_the_curve():
    fit = fit_loss_curve(STEPS, 2.0 * STEPS**-0.5 + 0.1, n_bootstrap=0)
    # 2 t^-0.5 + 0.1 = 0.2  <=>  t = (2 / 0.1)^2 = 400
    assert fit.steps_to_reach(0.2) == pytest.approx(400, rel=1e-3)
    # a target under the asymptote is never reached
    assert fit.steps_to_reach(0.05) is None


def test_interval_contains_the_truth_for_a_noisy_curve():
    rng = np.random.default_rng(1)
    truth = 1.5 * np.exp(-0.02 * STEPS) + 0.3
    fit = fit_loss_curve(STEPS, truth * (1 + 0.02 * rng.standard_normal(len(STEPS))), n_bootstrap=20)
    low, high = fit.predict_interval(300, level=0.95)
    # the bootstrap interval at a future step brackets the noiseless value and has width
    assert low < 1.5 * math.exp(-0.02 * 300) + 0.3 < high
    assert high > low


@pytest.mark.parametrize(
    ("losses", "target", "expected"),
    [
        (2.0 * STEPS**-0.5 + 0.1, None, "continue"),  # still falling: half the loss left to lose by step 2000
        (1.5 * np.exp(-0.1 * STEPS) + 0.3, None, "stop: plateaued"),  # flat since step ~60
        (2.0 * STEPS**-0.5 + 0.5, 0.3, "stop: will not reach target"),  # asymptote 0.5 > 0.3
        (np.r_[np.linspace(2.0, 0.5, 90), np.linspace(0.6, 3.0, 30)], None, "stop: diverging"),
    ],
)
def test_early_stopping_verdict(losses, target, expected):
    verdict = early_stopping_verdict(STEPS, losses, max_steps=2000, target=target, n_bootstrap=10)
    assert verdict.verdict == expected, verdict.reason


def test_nan_loss_is_diverging_and_cannot_be_fitted():
    losses = np.r_[np.linspace(2, 1, 10), [math.nan]]
    assert early_stopping_verdict(np.arange(1, 12), losses, max_steps=100).verdict == "stop: diverging"
    with pytest.raises(ConvergenceError, match="non-finite"):
        fit_loss_curve(np.arange(1, 12), losses)


def test_too_few_points_is_a_convergence_error():
    with pytest.raises(ConvergenceError, match="at least 6 points"):
        fit_loss_curve([1, 2, 3], [3.0, 2.0, 1.5])


def test_tool_predicts_a_given_curve():
    tool = ConvergencePredictor(device="cpu")
    out = tool(steps=STEPS.tolist(), losses=(2.0 * STEPS**-0.5 + 0.1).tolist(), predict_step=400,
               target_loss=0.2, n_bootstrap=5)
    # 2 * 400^-0.5 + 0.1 = 0.2, reached at step 400
    assert out.predicted_loss == pytest.approx(0.2, rel=1e-3)
    assert out.steps_to_target == pytest.approx(400, rel=1e-3)
    assert out.interval[0] <= out.predicted_loss <= out.interval[1]


def test_tool_output_draws_the_chosen_family():
    losses = 0.1 + (2.3 - 0.1) / (1 + (STEPS / 40.0) ** 2)
    out = ConvergencePredictor(device="cpu")(steps=STEPS.tolist(), losses=losses.tolist(), n_bootstrap=0)
    # a log-logistic fit says so in its formula and redraws the data through fitted_curve
    assert out.model == "log_logistic" and out.tau == pytest.approx(40, rel=1e-3)
    assert "/ (1 + (t / 40)^2)" in out.formula
    assert out.fitted_curve([40.0]) == pytest.approx([1.2], rel=1e-3)


def test_tool_rejects_half_a_curve():
    with pytest.raises(HyperparameterError, match="give both steps and losses"):
        ConvergencePredictor(device="cpu")(steps=[1.0, 2.0])


def test_tool_observes_a_running_trial():
    tool = ConvergencePredictor(device="cpu")
    out = tool(config={"steps": 24, "lr": 3e-3}, observe_steps=12, curve="train", n_bootstrap=5)
    # only the first 12 steps are run; the prediction is for the trial's 24 steps
    assert out.observed_points == 12 and out.predict_step == 24
    assert out.curve.startswith("training loss")


def test_tool_observing_a_validation_curve_uses_the_training_curve():
    tool = ConvergencePredictor(device="cpu", workload="digits-mlp")
    out = tool(config={"steps": 80, "lr": 3e-3, "eval_every": 4}, observe_steps=40, curve="val", n_bootstrap=0)
    # 10 validation points and 40 training steps: the training-curve members are scored beside the families
    assert out.observed_points == 10 and "train_shift" in out.holdout_errors and "train_link" in out.holdout_errors
    assert out.interval[0] <= out.predicted_loss <= out.interval[1]


def test_smooth_losses_is_bias_corrected():
    # a constant sequence stays constant from the first value on
    assert smooth_losses([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
