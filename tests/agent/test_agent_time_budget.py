"""The time budget: measured step cost, what the confirm keeps when time runs short, a real small budget."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.agent.budget import plan_steps
from trainopt.agent.clock import WallClock
from trainopt.agent.phases.finals import final_plan
from trainopt.agent.phases.respond import plots_fit
from trainopt.agent.phases.state import RunState
from trainopt.agent.schemas import CandidateOutcome
from trainopt.tools.trial_config import TrialConfig


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _raced(config: TrialConfig, seed_scores: dict[int, float]) -> CandidateOutcome:
    """A candidate the race measured on ``seed_scores``'s seeds (its score and loss: their mean)."""
    mean = sum(seed_scores.values()) / len(seed_scores)
    return CandidateOutcome(config=config, source="offline", round=0, steps=config.steps, val_loss=mean,
                            val_metric=None, peak_memory_mb=1.0, diverged=False, score=mean, seed_scores=seed_scores)


def _run(tmp_path: Path, clock: WallClock, seeds=(0,)) -> RunState:
    """A RunState with a plan and a clock, nothing trained: enough to ask its budget decisions."""
    workload = SimpleNamespace(default_config={"batch_size": 32}, num_train=10_000)  # steps count at batch 32
    run = RunState(
        request=OptimizationRequest(seeds=list(seeds)), space=None, workload=workload, store=None, cache=None,
        device=torch.device("cpu"), device_type="cpu", planner=None, budget_s=clock.budget_s, out_dir=tmp_path,
        clock=clock,
    )
    # H = 130 steps: the finals and the confirm fit at H (measured there, two runs a held-out pair)
    run.budget = plan_steps(6000, 4, 1, len(seeds), horizon_steps=130, budget_s=clock.budget_s)
    return run


def test_clock_estimates_from_the_measured_step_time():
    now = FakeTime()
    clock = WallClock(budget_s=60.0, started=0.0, now=now, fallback_seconds_per_step=0.5)
    # before any trial the calibration's rate stands in; after trials, their measured rate
    assert clock.estimate(10) == pytest.approx(5.0)
    clock.observe(steps=400, seconds=2.0)
    now.t = 50.0
    assert clock.estimate(100) == pytest.approx(0.5)
    assert clock.left() == pytest.approx(10.0)
    assert clock.steps_that_fit(reserve_s=6.0) == 800


def test_no_time_budget_never_runs_out():
    clock = WallClock(budget_s=None)
    clock.observe(steps=10, seconds=100.0)
    assert clock.fits(10**6) and clock.report_reserve() == 0.0


@pytest.mark.parametrize("budget_s", [0.0, -5.0])
def test_clock_refuses_a_non_positive_budget(budget_s):
    with pytest.raises(ValueError, match="budget_s"):
        WallClock(budget_s=budget_s)


def test_finals_keep_the_plan_when_it_fits(tmp_path):
    now = FakeTime()
    clock = WallClock(budget_s=100.0, started=0.0, now=now)
    clock.observe(steps=10_000, seconds=1.0)  # 0.1 ms per step: everything fits
    run = _run(tmp_path, clock, seeds=(0, 1, 2))
    plan = final_plan(run, 2, run.budget.confirm_steps)
    assert (plan.finalists, plan.steps, plan.note) == (2, run.budget.confirm_steps, None)


def test_finals_drop_a_finalist_then_shorten_when_time_runs_short(tmp_path):
    now = FakeTime()
    clock = WallClock(budget_s=100.0, started=0.0, now=now)
    clock.observe(steps=1000, seconds=1.0)  # 1 ms per step
    run = _run(tmp_path, clock, seeds=(0, 1, 2))
    steps = run.budget.confirm_steps  # finals: 3 runs on 2 seeds; confirm: 2 runs on 5 seeds -> 16 runs
    reserve = clock.report_reserve()
    left = lambda s: 100.0 - reserve - s * 1e-3  # noqa: E731 (the clock time that leaves s steps)
    now.t = left(12 * steps)  # room for the confirm's 10 runs, not the finals' 6 more: one finalist, no finals
    one = final_plan(run, 2, steps)
    assert (one.finalists, one.steps) == (1, steps) and "finals skipped" in one.note
    now.t = left(10 * 100 + 1)  # room for ten runs of 100 steps: the confirm runs get shorter
    short = final_plan(run, 2, steps)
    assert (short.finalists, short.steps) == (1, 100) and f"100 steps instead of {steps}" in short.note
    now.t = 100.0  # nothing left: not below the candidates' length (the confirm must say more than the race)
    assert final_plan(run, 2, steps).steps == run.budget.candidate_steps


def test_report_plots_are_left_out_only_when_the_budget_is_spent(tmp_path):
    now = FakeTime()
    run = _run(tmp_path, WallClock(budget_s=100.0, started=0.0, now=now))
    now.t = 90.0  # 10 s left: time to draw
    assert not plots_fit(run).skip
    now.t = 99.0  # 1 s left: the figures would overrun the budget
    assert plots_fit(run).skip and "without plots" in plots_fit(run).note
    run.replaying = True  # a replay has no clock to keep: it draws them
    assert not plots_fit(run).skip


def test_the_finals_race_the_leader_against_itself_at_the_lr_of_the_longer_run(tmp_path, digest):
    from trainopt.agent.phases.finals import HORIZON_EXPONENT, horizon_twin

    run = _run(tmp_path, WallClock(budget_s=None))
    run.digest, run.budget = digest, run.budget.model_copy(update={"candidate_steps": 30})
    config = TrialConfig(lr=0.02, batch_size=32, schedule="warmup_cosine", warmup_steps=3, steps=30)
    leader = _raced(config, {0: 0.5})
    twin = horizon_twin(run, leader, steps=120)
    # the race measured 30 steps, the confirm runs 120: a lower LR, the same settings at the full length
    assert twin.source == "horizon" and twin.config.lr == pytest.approx(0.02 * (30 / 120) ** HORIZON_EXPONENT, 1e-2)
    assert (twin.config.steps, twin.config.warmup_steps, twin.config.schedule) == (120, 12, "warmup_cosine")
    assert horizon_twin(run, leader, steps=30) is None  # no longer run: no other LR to try
    low = leader.model_copy(update={"config": config.model_copy(update={"lr": digest.lr_safe_range[0]})})
    assert horizon_twin(run, low, steps=120) is None  # already at the bottom of the probed safe range


def _walk(tmp_path, digest, monkeypatch, score_of_lr, spent: int = 0):
    """The finals' walk after a leader at lr 0.016 (C = 30) and its twin at 0.008 (L = 120), on one seed, with
    ``score_of_lr`` standing in for the full-length runs; returns the run and the LRs the finals measured."""
    finals = importlib.import_module("trainopt.agent.phases.finals")  # the package re-exports the function

    def measure(state, outcomes, base, include_base):
        for o in outcomes:
            o.final_score = score_of_lr(o.config.lr)
            state.steps_spent += len(base) * o.config.steps

    monkeypatch.setattr(finals, "_run_finalists", measure)
    run = _run(tmp_path, WallClock(budget_s=None))
    run.digest, run.steps_spent = digest, spent
    leader = _raced(TrialConfig(lr=0.016, batch_size=32, schedule="warmup_cosine", warmup_steps=3, steps=30), {0: .5})
    run.finalists = [leader, finals._at_lr(run, leader.config, 0.008, 120)]
    measure(run, run.finalists, [TrialConfig(lr=1e-3, steps=120)], True)
    finals.walk_down(run, [TrialConfig(lr=1e-3, steps=120)], 120)
    return run, [o.config.lr for o in run.finalists]


def test_the_finals_walk_the_lr_down_while_the_lowest_scores_best(tmp_path, digest, monkeypatch):
    # the best full-length LR is 0.003: the twin (0.008) beats the leader, 0.004 beats the twin, 0.002 loses
    run, lrs = _walk(tmp_path, digest, monkeypatch, lambda lr: abs(math.log(lr / 0.003)))
    assert lrs == [0.016, 0.008, 0.004, 0.002]
    # at most WALK_STEPS steps past the twin, however far down the best LR lies
    _, lrs = _walk(tmp_path, digest, monkeypatch, lambda lr: lr)
    assert lrs == [0.016, 0.008, 0.004, 0.002]
    # the leader beats its twin: nothing lower is tried
    _, lrs = _walk(tmp_path, digest, monkeypatch, lambda lr: -lr)
    assert lrs == [0.016, 0.008]


def test_the_finals_walk_stops_where_the_confirm_would_no_longer_fit(tmp_path, digest, monkeypatch):
    probe = _run(tmp_path, WallClock(budget_s=None)).budget
    confirm = (2 * probe.confirm_seeds) * 120  # the smallest confirm after the finals, at L = 120
    # after the twin's run, room for one more step of 120 steps beside the confirm, not for two
    spent = probe.total_steps - confirm - 2 * 120 - 60
    run, lrs = _walk(tmp_path, digest, monkeypatch, lambda lr: lr, spent=spent)
    assert lrs == [0.016, 0.008, 0.004]
    assert any("LR walk stopped at lr 0.004" in note for note in run.notes)
    assert run.steps_left() >= confirm


def test_refine_sees_the_race_leader_first_not_the_lowest_mean_over_other_seeds(tmp_path):
    from trainopt.agent.phases.propose import ranked_outcomes

    run = _run(tmp_path, WallClock(budget_s=None), seeds=(0, 1, 2))

    def outcome(lr: float, scores: dict[int, float]) -> CandidateOutcome:
        return _raced(TrialConfig(lr=lr, batch_size=32, steps=30), scores)

    # seed 0's baseline did badly, so every score there is low; the leader also ran on seeds 1 and 2
    leader, dropped = outcome(0.01, {0: 0.2, 1: 0.8, 2: 0.5}), outcome(0.03, {0: 0.3})
    run.outcomes = [dropped, leader]
    assert ranked_outcomes(run) == [leader, dropped]  # by mean score alone, dropped (0.3) would come first


def test_step_budget_is_validated_and_needs_no_time_budget():
    from trainopt.agent.agent import _time_budget

    with pytest.raises(ValueError, match="step_budget"):
        OptimizationRequest(constraints={"step_budget": 10})
    # a step budget alone, or nothing at all (10 H of compute): no wall-clock limit
    assert _time_budget(OptimizationRequest(constraints={"step_budget": 1200})) is None
    assert _time_budget(OptimizationRequest()) is None
    assert _time_budget(OptimizationRequest(constraints={"step_budget": 1200, "time_budget_s": 30})) == 30


@pytest.mark.slow
def test_a_small_time_budget_is_honoured(tmp_path):
    budget = 15.0
    request = OptimizationRequest(workload="digits-mlp", num_candidates=3, refine_rounds=1,
                                  constraints={"time_budget_s": budget})
    response = TrainingOptimizationAgent(out_dir=tmp_path).optimize_training(request)
    # whatever was cut is said in the notes, with the budget as the reason
    cuts = [n for n in response.notes if "skipped" in n or "instead of" in n or "not measured" in n]
    assert all("budget" in n for n in cuts)
    assert Path(response.artifacts.report_html).is_file()
    # everything, the report included, ends inside the budget. Two allowances for a slow or loaded machine:
    # the report's time is estimated before it is drawn (a few seconds over), and when the work that cannot
    # be skipped (setup, calibration, probes, first candidates) overruns it, every optional phase was skipped.
    if response.wall_time_s > 1.25 * budget:
        for phase in ("refine round 1 skipped", "seeded search skipped"):
            assert any(n.startswith(phase) for n in response.notes), (response.wall_time_s, phase, response.notes)
