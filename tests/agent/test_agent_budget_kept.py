"""A small step budget is kept: the race takes fewer proposals rather than spend beyond it, and a budget
below the run's smallest form says what it spent."""

from __future__ import annotations

import pytest

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.agent.budget import PROBE_SHARE
from trainopt.agent.phases.race import race_runs


def test_race_runs_bound_successive_halving():
    assert race_runs(4, 3, 3) == 4 + 2 + 1 + 3  # ceil(4 / 2^k) on seed k, and the baseline on each seed
    assert race_runs(1, 3, 0) == 3


def _spent(response, budget: int) -> int:
    """Compute in steps at the baseline batch (64): a trial at batch B costs steps x B / 64."""
    trials = round(sum(t["steps_run"] * t["config"]["batch_size"] / 64 for t in response.evidence["trials"]
                       if t["purpose"] != "calibration"))
    search = response.evidence["tools"].get("hyperparameter_suggester")
    return trials + (search["steps_spent_this_run"] if search else 0) + int(PROBE_SHARE * budget)


@pytest.mark.parametrize("budget", [600, 300])
def test_a_small_step_budget_is_kept_or_the_overrun_said(tmp_path, budget):
    request = OptimizationRequest(workload="digits-mlp", constraints={"step_budget": budget})
    response = TrainingOptimizationAgent(out_dir=tmp_path, device="cpu").optimize_training(request)
    spent = _spent(response, budget)
    assert any("races 1 of its" in n for n in response.notes)  # 4 proposals do not fit: one is raced
    overrun = [n for n in response.notes if n.startswith("the run spent")]
    if budget == 600:
        assert spent <= budget and not overrun
    else:  # below the smallest form: probes, one proposal over 3 seeds, 3 held-out pairs, 30 steps a run
        assert spent > budget and overrun == [f"the run spent {spent} of the {budget} steps budgeted: its smallest "
                                              "form (the probes, one proposal raced, 3 held-out seeds, 30 steps a "
                                              "run) needs that much"]
