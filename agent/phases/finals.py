"""Phase 6, finals: the race's leader at full length on selection seeds, against itself at lower LRs, picks the
challenger that phases/confirm.py pairs with the baseline on held-out seeds.

The race measures candidates at C steps, the confirm at L > C, and short runs favour aggressive LRs (Wu et
al. 2018, short-horizon bias). So the finals run, L steps each, on the first FINAL_SEEDS selection seeds (one
when the budget is small):

    the baseline, the race's leader (lr), and its horizon twin at lr (C / L)^1/2 (``horizon_twin``), then
    while the lowest LR so far has the best mean objective score, the same step down once more
    (``walk_down``, at most WALK_STEPS times, not below the probed safe range, and only while the
    smallest confirm still fits); the best score is the challenger.

A budget too small for finals on FINAL_SEEDS seeds at MIN_FINAL_STEPS holds them on one selection seed
(agent/budget.py plan_steps), or on none when that would cost held-out seeds a gain is claimed on; then the
race's leader is the challenger. When L is shorter than the user's run H, the challenger's LR then moves to
the one H wants (``to_horizon``).

The exponent 1/2 is a rule of thumb (the best constant SGD step over T steps scales as 1 / sqrt(T); Bubeck
2015, Theorem 3.2); the walk lets the full-length runs say how far the LR should fall (docs/decisions.md).
"""

from __future__ import annotations

import math
from functools import partial

from trainopt.agent.budget import MIN_FINAL_STEPS, full_length_runs
from trainopt.agent.horizon import lr_exponent
from trainopt.agent.phases.confirm import metrics
from trainopt.agent.phases.race import ranking
from trainopt.agent.phases.state import Decision, RunState
from trainopt.agent.schemas import CandidateOutcome
from trainopt.agent.scoring import objective_score
from trainopt.tools.trial_config import TrialConfig

HORIZON_EXPONENT = 0.5  # horizon_twin: the best constant LR over T steps scales as T^-1/2
WALK_STEPS = 2  # walk_down: further steps down the finals may take after the twin


def final_plan(state: RunState, finalists: int, steps: int) -> Decision:
    """The finals and the minimal confirm that fit what is left: as planned, else one finalist (no
    finals), else shorter runs (not below the candidates' length)."""
    b = state.budget
    left = state.steps_left()
    if full_length_runs(b, finalists) * steps <= left:
        return Decision(finalists=finalists, steps=steps)
    if finalists > 1 and full_length_runs(b, 1) * steps <= left:
        return Decision(finalists=1, steps=steps, note=f"finals skipped (one finalist): {state.time_note()}")
    shorter = max(b.candidate_steps, left // full_length_runs(b, 1) // 10 * 10)
    return Decision(finalists=min(finalists, 1), steps=min(steps, shorter), note=(
        f"confirm: {min(steps, shorter)} steps instead of {steps}" + (" and no finals" if finalists > 1 else "")
        + f", since {state.time_note()}"))


def finals(state: RunState) -> int:
    """Choose the challenger among the finalists; returns the full length L the confirm uses."""
    state.report("finals", 0, 1, "the leader against lower LRs")
    steps = _finals(state)
    state.report("finals", 1, 1, f"{len(state.finalists)} finalist(s)")
    return steps


def _finals(state: RunState) -> int:
    b = state.budget
    finalists = ranking(state)[:1]
    count = 2 * len(finalists)  # the leader and its twin
    plan = state.decide("finals", lambda: final_plan(state, count, b.confirm_steps))
    steps = plan.steps or b.confirm_steps
    if finalists and (plan.finalists or count) > 1 and (twin := horizon_twin(state, finalists[0], steps)):
        finalists.append(twin)
    state.finalists = finalists[: plan.finalists] if plan.finalists is not None else finalists
    if not state.finalists:
        state.notes.append("no raced candidate met the constraints and trained stably: the baseline is recommended")
        return steps
    if b.final_seeds == 0 and len(state.finalists) > 1:
        state.notes.append(f"no finals: the budget of {b.total_steps} steps affords them only below "
                           f"{MIN_FINAL_STEPS} steps, nor on one seed beside {state.policy.min_adopt_seeds} "
                           "held-out seeds; the race's leader is the challenger")
        state.finalists = state.finalists[:1]
    if len(state.finalists) == 1:
        state.challenger = to_horizon(state, state.finalists[0], state.finalists[0], steps)
        return steps
    seeds = state.request.seeds[: b.final_seeds]
    base = [state.at_length(state.baseline_config(steps), steps, s) for s in seeds]
    _run_finalists(state, state.finalists, base, include_base=True)
    walk_down(state, base, steps)
    ranked = sorted(state.finalists, key=lambda o: o.final_score)
    state.notes.append("finals ({} steps, selection seeds {}): {}; 1.0 is the baseline".format(
        steps, seeds, ", ".join(f"lr {o.config.lr:.3g} {o.config.schedule} b{o.config.batch_size} score "
                                f"{o.final_score:.3g}" for o in ranked)))
    state.challenger = to_horizon(state, ranked[0], state.finalists[0], steps)
    return steps


def to_horizon(state: RunState, winner: CandidateOutcome, leader: CandidateOutcome, steps: int) -> CandidateOutcome:
    """The winner at the LR the user's run H wants, when the finals' runs (L) are shorter than H, by the
    LR-horizon law LR*(D) ~ D^-beta (agent/horizon.py) from the race's leader at C:

        lr_H = lr_C (C / H)^beta,   beta = max(HORIZON_EXPONENT, the beta the finals fitted on C and L),

    not below the probed safe range. A leader that beats its twin at L < H does not show that its LR holds
    to H (the short-horizon bias, Wu et al. 2018), so beta is never below the rule of thumb; a walk down
    steeper than it carries on. The confirm measures the configuration at lr_H."""
    h, c = state.budget.horizon_steps, state.budget.candidate_steps
    if steps >= h:
        return winner
    fitted = lr_exponent(c, leader.config.lr, steps, winner.config.lr) if winner is not leader else 0.0
    beta = max(HORIZON_EXPONENT, fitted)
    moved = _at_lr(state, winner.config, leader.config.lr * (c / h) ** beta, steps)
    if moved is None:
        return winner
    state.notes.append(f"the challenger's LR for H ({h} steps): {winner.config.lr:.3g} -> {moved.config.lr:.3g}, "
                       f"lr_C (C / H)^beta with the race's lr {leader.config.lr:.3g} at C = {c} steps and beta "
                       f"{beta:.2f}; the confirm measures it at shorter runs")
    return moved


def walk_down(state: RunState, base: list[TrialConfig], steps: int) -> None:
    """While the lowest LR of the finals scores best, add the same LR step down once more (WALK_STEPS at most,
    while the smallest confirm still fits after it); each step joins the finalists, measured on ``base``'s
    seeds."""
    leader, lowest = state.finalists[0], state.finalists[-1]
    factor = lowest.config.lr / leader.config.lr  # 1 without a twin: _at_lr finds nothing lower, no step
    cost = len(base) * steps
    for k in range(1, WALK_STEPS + 1):
        if min(state.finalists, key=lambda o: o.final_score) is not lowest:
            return
        lower = _at_lr(state, lowest.config, lowest.config.lr * factor, steps)
        if lower is None:
            return
        stop = (f"the finals' LR walk stopped at lr {lowest.config.lr:.3g}, which scored best: {state.time_note()}, "
                f"and lr {lower.config.lr:.3g} would need {cost} steps before the confirm")
        if state.decide(f"finals walk {k}", partial(_walk_fits, state, cost, steps, stop)).skip:
            return
        _run_finalists(state, [lower], base, include_base=False)
        state.finalists.append(lower)
        lowest = lower


def _walk_fits(state: RunState, cost: int, steps: int, stop: str) -> Decision:
    """Whether a walk step of ``cost`` steps leaves room for the smallest confirm; ``stop`` says why not."""
    room = state.steps_left() - full_length_runs(state.budget, 1) * steps
    return Decision() if cost <= room else Decision(skip=True, note=stop)


def horizon_twin(state: RunState, leader: CandidateOutcome, steps: int) -> CandidateOutcome | None:
    """The leader at the LR a run of ``steps`` (L) wants rather than the race's C: lr (C / L)^HORIZON_EXPONENT
    (C and L in examples),
    not below the probed safe range; None when that rounds to the leader's own LR."""
    ratio = state.budget.candidate_steps / steps  # C / L in examples
    return _at_lr(state, leader.config, leader.config.lr * ratio**HORIZON_EXPONENT, steps)


def _at_lr(state: RunState, config: TrialConfig, lr: float, steps: int) -> CandidateOutcome | None:
    """``config`` at a lower ``lr`` (not below the probed safe range) and full length, as a finalist; None when
    that rounds to ``config``'s own LR."""
    lr = float(f"{max(lr, state.digest.lr_safe_range[0]):.3g}")
    if lr >= config.lr:
        return None
    lower = state.at_length(config.model_copy(update={"lr": lr}), steps, config.seed)
    return CandidateOutcome(config=lower, source="horizon", round=-1, steps=steps, val_loss=math.nan,
                            val_metric=None, peak_memory_mb=0.0, diverged=False, score=math.inf)


def _run_finalists(state: RunState, finalists: list[CandidateOutcome], base: list[TrialConfig],
                   include_base: bool) -> None:
    """Measure ``finalists`` (and the baseline, when ``include_base``) on ``base``'s seeds; each one's
    final_score is its mean objective score against the baseline there."""
    steps = base[0].steps
    runs = [[state.at_length(o.config, steps, b.seed) for b in base] for o in finalists]
    state.run_trials((base if include_base else []) + [c for configs in runs for c in configs], "finals", "finals")
    weights = state.request.objective_metrics
    for o, configs in zip(finalists, runs, strict=True):
        scores = [objective_score(state.results[c.key()], state.results[bc.key()], weights, state.latency_ms)
                  for c, bc in zip(configs, base, strict=True)]
        o.final_score = math.fsum(scores) / len(scores) if all(map(math.isfinite, scores)) else math.inf
        if o.source == "horizon":
            _record_twin(state, o, configs)


def _record_twin(state: RunState, twin: CandidateOutcome, runs: list[TrialConfig]) -> None:
    """A lower-LR finalist joins the run's candidates with what its full-length runs measured."""
    results = [state.results[c.key()] for c in runs]
    measured = metrics(state, results)
    twin.val_loss, twin.val_metric, twin.peak_memory_mb = measured.loss, measured.accuracy, measured.memory_usage
    twin.diverged = any(r.diverged for r in results)
    twin.score = twin.final_score
    state.outcomes.append(twin)
