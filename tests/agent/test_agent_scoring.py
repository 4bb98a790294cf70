"""Objective scores, constraint checks and the step budget, on real tiny trials."""

from __future__ import annotations

import math

import pytest

from trainopt.agent.budget import marginal_step_seconds, plan_budget, plan_steps
from trainopt.agent.schemas import Constraints, OptimizationRequest
from trainopt.agent.scoring import constraint_violation, objective_score
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial


@pytest.fixture(scope="module")
def trials():
    """A baseline and a better configuration on digits-mlp, 30 steps each (about a second)."""
    base = run_trial("digits-mlp", TrialConfig(lr=1e-3, steps=30), device="cpu")
    better = run_trial("digits-mlp", TrialConfig(lr=4e-3, steps=30), device="cpu")
    return base, better


def test_baseline_scores_one_and_a_better_run_below(trials):
    base, better = trials
    assert objective_score(base, base, {"loss": 1.0}) == pytest.approx(1.0)
    # lower validation loss than the baseline -> a score below 1
    assert better.final_val_loss < base.final_val_loss
    assert objective_score(better, base, {"loss": 1.0}) < 1.0


def test_multi_objective_weights_mix_the_ratios(trials):
    base, better = trials
    loss_ratio = better.final_val_loss / base.final_val_loss
    error_ratio = (1 - better.final_val_metric) / (1 - base.final_val_metric)
    # 0.5 loss + 0.5 (1 - accuracy), each relative to the baseline; latency equal for both
    score = objective_score(better, base, {"loss": 0.5, "accuracy": 0.25, "latency_ms": 0.25}, latency_ms=0.2)
    assert score == pytest.approx(0.5 * loss_ratio + 0.25 * error_ratio + 0.25)


def test_memory_constraint_rejects_with_the_measured_number(trials):
    _, better = trials
    limit = better.peak_memory_mb / 2
    reason = constraint_violation(better, Constraints(max_memory=limit), latency_ms=None)
    # the reason quotes the measured peak and the limit
    assert reason is not None and f"{better.peak_memory_mb:.1f} MiB > max_memory" in reason


def test_accuracy_and_latency_constraints(trials):
    base, _ = trials
    too_high = Constraints(min_accuracy=min(1.0, base.final_val_metric + 0.01))
    assert "< min_accuracy" in constraint_violation(base, too_high, None)
    assert "latency 2.000 ms > max_latency_ms 1" in constraint_violation(base, Constraints(max_latency_ms=1), 2.0)
    # within every limit: accepted
    assert constraint_violation(base, Constraints(max_memory=1e6, min_accuracy=0.0), None) is None


def test_diverged_run_scores_infinite():
    wild = run_trial("digits-mlp", TrialConfig(lr=50.0, optimizer="sgd", steps=20), device="cpu")
    assert wild.diverged
    assert math.isinf(objective_score(wild, wild, {"loss": 1.0}))
    assert constraint_violation(wild, Constraints(), None).startswith("diverged")


def test_budget_splits_measured_steps():
    budget = plan_budget(60, 0.002, num_candidates=4, refine_rounds=1, num_seeds=3, horizon_steps=10_000)
    # 70% of 60 s at 2 ms a step; 40% for the finals (two finalists and the baseline on two selection
    # seeds) and the confirm: L is below H, so each of the five held-out pairs also trains at L / 2 to predict
    # the gain at H (3 runs of L a pair): 6 + 15 runs of L
    assert budget.total_steps == 21_000 and budget.final_seeds == 2 and budget.confirm_seeds == 5
    assert budget.predicted and budget.confirm_steps == 400 and budget.candidate_steps <= budget.confirm_steps // 2
    # a budget that pays for the finals and the confirm at H measures there: L = H, each pair two runs
    measured = plan_steps(12_000, 4, 1, 3, 300)
    assert not measured.predicted and measured.confirm_steps == measured.horizon_steps == 300
    # a budget too small for finals of 150 steps on two seeds holds them on one: 3 runs and the confirm's 15
    small = plan_budget(6, 0.002, num_candidates=4, refine_rounds=1, num_seeds=3, horizon_steps=10_000)
    assert small.final_seeds == 1 and small.confirm_steps == 50  # 0.4 x 2099 / 18 = 46, floored at 50
    # one that affords fewer held-out seeds than a gain is claimed on (5) spends nothing on finals
    tiny = plan_steps(1200, 4, 1, 3, 10_000)
    assert (tiny.confirm_seeds, tiny.final_seeds, tiny.confirm_steps) == (4, 0, 50)  # 0.4 x 1200 / 12, floored
    # a budget too small for 5 held-out seeds of 50 steps plans fewer, never below 3
    assert [(plan_steps(t, 4, 1, 3, 10_000).confirm_seeds) for t in (500, 1000, 1500)] == [3, 4, 5]
    assert marginal_step_seconds(10, 0.05, 50, 0.02) == pytest.approx((50 * 0.02 - 10 * 0.05) / 40)


def test_request_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="weights"):
        OptimizationRequest(objective={"metrics": ["loss", "accuracy"], "weights": [1.0]})
    with pytest.raises(ValueError, match="seeds"):
        OptimizationRequest(seeds=[])
    assert OptimizationRequest(constraints={"max_latency_ms": 5}).wants_latency
