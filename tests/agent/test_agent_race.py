"""Racing over selection seeds: halving by mean score, statistical elimination, no lucky-seed winners."""

from __future__ import annotations

import math

import torch

from trainopt.agent import OptimizationRequest
from trainopt.agent.phases.race import promotions, ranking, rung
from trainopt.agent.phases.state import RunState
from trainopt.agent.schemas import CandidateOutcome
from trainopt.tools.trial_config import TrialConfig


def _state(tmp_path, scores: dict[float, dict[int, float]]) -> RunState:
    """A run whose race already measured candidates (lr -> {seed: score}); the baseline scores 1."""
    state = RunState(request=OptimizationRequest(seeds=[0, 1, 2]), space=None, workload=None, store=None,
                     cache=None, device=torch.device("cpu"), device_type="cpu", planner=None, budget_s=None,
                     out_dir=tmp_path)
    base = CandidateOutcome(config=TrialConfig(steps=30), source="baseline", round=-1, steps=30, val_loss=1.0,
                            val_metric=None, peak_memory_mb=1.0, diverged=False, score=1.0,
                            seed_scores={0: 1.0, 1: 1.0, 2: 1.0})
    state.outcomes = [base] + [
        CandidateOutcome(config=TrialConfig(lr=lr, steps=30), source="offline", round=0, steps=30, val_loss=1.0,
                         val_metric=None, peak_memory_mb=1.0, diverged=False,
                         score=math.fsum(s.values()) / len(s), seed_scores=s)
        for lr, s in scores.items()
    ]
    return state


def test_the_better_half_of_a_rung_moves_on(tmp_path):
    state = _state(tmp_path, {1e-3: {0: 0.9}, 2e-3: {0: 0.5}, 3e-3: {0: 0.7}, 4e-3: {0: 1.3}})
    # four on seed 0: the two best by score run on seed 1
    assert sorted(o.config.lr for o in promotions(state, 0)) == [2e-3, 3e-3]


def test_a_candidate_significantly_worse_than_the_leader_is_stopped(tmp_path):
    state = _state(tmp_path, {
        1e-3: {0: 0.50, 1: 0.52}, 2e-3: {0: 0.90, 1: 0.92}, 3e-3: {0: 1.20, 1: 1.25}, 4e-3: {0: 1.3, 1: 1.4}})
    promoted = promotions(state, 1)
    # 2e-3 is in the better half but worse than the leader on both seeds by the same margin: its paired
    # interval lies above zero, so it does not go on, and the reason is kept
    assert [o.config.lr for o in promoted] == [1e-3]
    stopped = next(o for o in state.outcomes if o.config.lr == 2e-3).stopped
    assert stopped.startswith("significantly worse than the leader") and "90% interval" in stopped


def test_a_lucky_first_seed_does_not_win_the_race(tmp_path):
    state = _state(tmp_path, {
        1e-3: {0: 0.40, 1: 1.20, 2: 1.10},  # best on seed 0 only
        2e-3: {0: 0.70, 1: 0.72, 2: 0.69},  # steady
        3e-3: {0: 0.95},
    })
    # ranking looks at the highest rung and the mean over its seeds: the steady candidate leads
    assert ranking(state)[0].config.lr == 2e-3
    assert rung(state.outcomes[1], [0, 1, 2]) == 2 and rung(state.outcomes[3], [0, 1, 2]) == 0


def test_diverged_and_rejected_candidates_never_move_on(tmp_path):
    state = _state(tmp_path, {1e-3: {0: 0.5}, 2e-3: {0: math.inf}, 3e-3: {0: 0.6}})
    state.outcomes[1].rejected = "peak memory 9 MiB > max_memory 1 MiB"
    state.outcomes[2].diverged = True
    # only the one that trained and met the constraints is left to promote
    assert [o.config.lr for o in promotions(state, 0)] == [3e-3]
