
import pytest

from trainopt.errors import ConvergenceError, HyperparameterError
from trainopt.tools.lr_range import LRRangeResult, lr_range_test
from trainopt.tools.lr_scheduler import LearningRateScheduler
from trainopt.tools.lr_suggest import RULES, safe_lr_range, suggest_lr, valley_lr
from trainopt.tools.workloads import workload_names


@pytest.fixture(scope="module")
def sweep():
    return lr_range_test("digits-mlp", min_lr=1e-5, max_lr=10.0, steps=60)


def test_sweep_is_exponential_and_stops_at_divergence(sweep):
    # max_lr=10 is far too high for AdamW: the sweep must stop before reaching it.
    assert sweep.diverged and sweep.lrs[-1] < 10.0
    ratios = [b / a for a, b in zip(sweep.lrs, sweep.lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_lands_inside_the_sweep_below_divergence(sweep, rule):
    # A suggested peak LR is one the sweep visited and below where the loss blew up.
    lr = suggest_lr(sweep, rule)
    assert sweep.lrs[0] <= lr <= sweep.lrs[-1]
    assert lr < sweep.divergence_lr


def test_safe_range_ends_at_the_smoothed_minimum(sweep):
    low, high = safe_lr_range(sweep)
    assert low < high == sweep.min_loss_lr


def test_valley_on_a_synthetic_curve_picks_the_descent():
    # A loss that is flat, falls between indices 20 and 50, then rises: valley picks inside the fall.
    lrs = [10 ** (-6 + i / 10) for i in range(70)]
    smoothed = [2.0] * 20 + [2.0 - 0.05 * k for k in range(1, 31)] + [0.5 + 0.2 * k for k in range(20)]
    result = LRRangeResult(workload="toy", optimizer="adamw", batch_size=1, min_lr=lrs[0], max_lr=lrs[-1],
                           lrs=lrs, losses=smoothed, smoothed=smoothed, beta=0.0, diverged=False,
                           stop_reason="", min_loss_lr=lrs[49], min_loss=0.5)
    assert lrs[20] <= valley_lr(result) <= lrs[49]


def test_empty_range_is_a_hyperparameter_error():
    with pytest.raises(HyperparameterError, match="max_lr"):
        lr_range_test("digits-mlp", min_lr=1e-2, max_lr=1e-3)


def test_tool_with_empty_range_is_a_hyperparameter_error():
    with pytest.raises(HyperparameterError):
        LearningRateScheduler("digits-mlp")(min_lr=1.0, max_lr=1.0)


def test_nan_workload_is_a_convergence_error(nan_workload):
    with pytest.raises(ConvergenceError, match="first step"):
        LearningRateScheduler(nan_workload)(range_steps=10, check_steps=5, budget_steps=10)


def test_tool_recommends_a_schedule_measured_by_trials():
    out = LearningRateScheduler("digits-mlp")(range_steps=40, check_steps=20, budget_steps=60,
                                              schedules=["constant", "cosine"])
    # The pick is the checked candidate with the lowest validation loss, and the LR curve spans the budget.
    assert out.schedule == min(out.checks, key=lambda c: c.final_val_loss).schedule
    assert len(out.lr_curve) == 60 and max(out.lr_curve) == pytest.approx(out.peak_lr)
    assert out.sweep.lrs[0] <= out.suggested_lr <= out.sweep.lrs[-1]


@pytest.mark.parametrize("workload", workload_names())
def test_the_suggestion_lies_inside_the_safe_range_it_reports(workload):
    out = LearningRateScheduler(workload)(range_steps=20, check_steps=2, budget_steps=2, schedules=["constant"])
    low, high = out.safe_range
    # the suggested LR is one of the safe LRs the same output reports, on every built-in workload
    assert low <= out.suggested_lr <= high, (out.suggested_lr, out.safe_range)
