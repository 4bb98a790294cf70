"""Phase 7, confirm: the challenger (phases/finals.py) and the baseline, paired on held-out seeds, decide the
recommendation.

Challenger and baseline run L steps on held-out seeds that no phase before used (1000, 1001, ... by
default): per-seed relative gains, their mean and 90% t interval (agent/stats.py); when the rest of the run
saw the two configurations scatter more across seeds (their log losses on the race's and the finals'
seeds), the interval's spread pools that in (``run_spread``). The interval for a user's mean over 5
fresh seeds is log-normal in the loss ratio c/b (``_fresh_interval``, stats.fresh_mean_gain). The
challenger is recommended only when the interval of its objective gain lies above ``min_gain`` over at
least RunPolicy.min_adopt_seeds seeds (5; unless the request named the seeds); otherwise the baseline is,
with the measured difference and the reason.

While budget remains (and the seeds were not fixed by the request), more held-out seeds are added (one at
a time by default, RunPolicy in agent/budget.py), up to MAX_CONFIRM_SEEDS; why the confirm stopped is
noted. The confirm goes on after the interval clears ``min_gain``: the decision would not change, but
the size of the gain a user is told rests on more seeds (docs/decisions.md).
"""

from __future__ import annotations

import math
import statistics
from typing import NamedTuple

from trainopt.agent.phases.state import Decision, RunState
from trainopt.agent.schemas import CONFIRM_SEED_START, MAX_CONFIRM_SEEDS, Gain, TrainingMetrics
from trainopt.agent.scoring import objective_score
from trainopt.agent.stats import (
    LEVEL,
    Paired,
    fresh_mean_gain,
    gain_sd,
    log_ratio_sd,
    paired,
    pooled_sd,
    relative_gains,
)
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult

CONFIRM_EVALS = 25  # validation points of a full-length run
NEW_SEEDS = 5  # the gain's second interval: the mean a user sees over this many fresh seeds


def confirm(state: RunState, steps: int) -> Gain:
    """Challenger against baseline on held-out seeds, extended while the budget lasts and it helps."""
    request, b = state.request, state.budget
    fixed = request.confirm_seeds is not None
    seeds = list(request.confirm_seeds) if fixed else [CONFIRM_SEED_START + i for i in range(b.confirm_seeds)]
    base_config = full_length(state.baseline_config(steps), steps, 0)
    challenger = full_length(state.challenger.config, steps, 0) if state.challenger else base_config
    _run_pairs(state, base_config, challenger, seeds)
    gain, spread = _gain(state, base_config, challenger, seeds, steps)
    while not fixed and (stop := _stop_reason(state, gain, len(seeds), steps)) is None:
        more = [CONFIRM_SEED_START + len(seeds) + i for i in range(min(b.confirm_extend_by,
                                                                        MAX_CONFIRM_SEEDS - len(seeds)))]
        _run_pairs(state, base_config, challenger, more)
        seeds += more
        gain, spread = _gain(state, base_config, challenger, seeds, steps)
    if not fixed:
        state.notes.append(f"confirm stopped after {len(seeds)} held-out seeds: {stop}")
    if spread.floor > spread.own:
        state.notes.append(_spread_note(spread, len(seeds)))
    return gain


def _stop_reason(state: RunState, gain: Gain, n: int, steps: int) -> str | None:
    """Why no more held-out seeds are added, or None to add the policy's ``extend_by`` more."""
    if state.challenger is None:
        return "no challenger to confirm"
    if n >= MAX_CONFIRM_SEEDS:
        return f"{MAX_CONFIRM_SEEDS} seeds is the most the confirm uses"
    cost = 2 * min(state.budget.confirm_extend_by, MAX_CONFIRM_SEEDS - n) * steps

    def compute() -> Decision:
        if cost <= state.steps_left():
            return Decision()
        return Decision(skip=True)

    if state.decide(f"confirm seeds beyond {n}", compute).skip:
        return f"the budget is spent ({state.time_note()}; the next held-out runs need {cost} steps)"
    return None


def _run_pairs(state: RunState, base: TrialConfig, challenger: TrialConfig, seeds: list[int]) -> None:
    configs = [c.model_copy(update={"seed": s}) for s in seeds for c in (base, challenger)]
    state.run_trials(list({c.key(): c for c in configs}.values()), "confirm", "confirm")
    for s in seeds:
        state.confirm.setdefault("baseline", []).append(state.results[base.model_copy(update={"seed": s}).key()])
        state.confirm.setdefault("challenger", []).append(
            state.results[challenger.model_copy(update={"seed": s}).key()])


def _gain(state: RunState, base: TrialConfig, challenger: TrialConfig, seeds: list[int], steps: int
          ) -> tuple[Gain, Spread]:
    """The paired comparison on ``seeds``, and the spread its intervals used."""
    bases = [state.results[base.model_copy(update={"seed": s}).key()] for s in seeds]
    chals = [state.results[challenger.model_copy(update={"seed": s}).key()] for s in seeds]
    b_losses, c_losses = [r.final_val_loss for r in bases], [r.final_val_loss for r in chals]
    spread = run_spread(state, base, challenger, b_losses, c_losses, seeds)
    floor = spread.floor
    loss = paired(relative_gains(b_losses, c_losses), min_sd=floor)
    fresh = _fresh_interval(state, base, challenger, b_losses, c_losses, seeds) or paired(
        loss.diffs, new_seeds=NEW_SEEDS, min_sd=floor).interval
    weights = state.request.objective_metrics
    pairs = list(zip(chals, bases, strict=True))
    objective = paired([1.0 - objective_score(c, b, weights, state.latency_ms) for c, b in pairs],
                       min_sd=floor * weights.get("loss", 0.0) / math.fsum(weights.values()))
    has_challenger = state.challenger is not None
    significant = has_challenger and objective.above(state.request.min_gain) and _enough_seeds(state, len(seeds))
    metric_change = None
    if all(r.final_val_metric is not None for r in bases + chals):
        metric_change = math.fsum(c.final_val_metric - b.final_val_metric for c, b in pairs) / len(seeds)
    gain = Gain(
        steps=steps, seeds=list(seeds), baseline=metrics(state, bases), challenger=metrics(state, chals),
        baseline_val_losses=b_losses, challenger_val_losses=c_losses,
        relative_loss_reduction=loss.mean, interval=loss.interval, new_seeds_interval=fresh,
        new_seeds=NEW_SEEDS, objective_gain=objective.mean, objective_interval=objective.interval, level=LEVEL,
        wins=objective.wins, losses=objective.losses, significant=significant, adopted=significant,
        reason=_reason(state, objective, has_challenger), metric_change=metric_change,
    )
    return gain, spread


class Spread(NamedTuple):
    """The held-out gains' own standard deviation, and the floor their intervals put under it."""

    own: float
    floor: float


def run_spread(state: RunState, base: TrialConfig, challenger: TrialConfig, b_losses: list[float],
               c_losses: list[float], seeds: list[int]) -> Spread:
    """The held-out gains' own s, and the floor under it: s pooled (by degrees of freedom) with the spread the
    rest of the run measured for both configurations' log losses (stats.gain_sd, over their groups of
    seeds outside ``seeds``); floor 0 without a challenger or with fewer than two finite held-out gains."""
    gains = [g for g in relative_gains(b_losses, c_losses) if math.isfinite(g)]
    own = statistics.stdev(gains) if len(gains) > 1 else 0.0
    ratios = [c / b for b, c in zip(b_losses, c_losses, strict=True) if math.isfinite(b) and math.isfinite(c) and b > 0]
    if state.challenger is None or len(gains) < 2 or not ratios:
        return Spread(own, 0.0)
    held_out = set(seeds)
    elsewhere, df = gain_sd(math.fsum(ratios) / len(ratios), _seed_groups(state, base, held_out),
                            _seed_groups(state, challenger, held_out))
    return Spread(own, pooled_sd(own, len(gains) - 1, elsewhere, df))


def _fresh_interval(state: RunState, base: TrialConfig, challenger: TrialConfig, b_losses: list[float],
                    c_losses: list[float], seeds: list[int]) -> tuple[float, float] | None:
    """The interval for a user's mean gain over NEW_SEEDS fresh seeds, log-normal in the loss ratio
    (stats.fresh_mean_gain), its log spread pooled with the rest of the run's as run_spread pools it
    (stats.log_ratio_sd); None when a loss is not finite or not positive (then the t interval on the gains
    is the answer)."""
    if not all(math.isfinite(x) and x > 0 for x in b_losses + c_losses):
        return None
    logs = [math.log(c / b) for b, c in zip(b_losses, c_losses, strict=True)]
    own = statistics.stdev(logs) if len(logs) > 1 else 0.0
    held_out = set(seeds)
    elsewhere, df = log_ratio_sd(_seed_groups(state, base, held_out), _seed_groups(state, challenger, held_out))
    floor = pooled_sd(own, len(logs) - 1, elsewhere, df) if state.challenger is not None else 0.0
    return fresh_mean_gain(b_losses, c_losses, NEW_SEEDS, min_log_sd=floor)


def _seed_groups(state: RunState, config: TrialConfig, held_out: set[int]) -> list[list[float]]:
    """Final validation losses of ``config``'s settings in this run on seeds outside ``held_out``, one list
    per length (the race's, the finals'), one value per seed."""
    unseeded = {"steps", "seed", "warmup_steps", "eval_every"}
    settings = config.model_dump(exclude=unseeded)
    groups: dict[str, list[float]] = {}
    for result in state.results.values():
        c = result.config
        if c.seed not in held_out and c.model_dump(exclude=unseeded) == settings:
            groups.setdefault(c.model_copy(update={"seed": 0}).key(), []).append(result.final_val_loss)
    return list(groups.values())


def _spread_note(spread: Spread, seeds: int) -> str:
    """Says so when the run's spread, not the held-out seeds' own, set the interval's width."""
    return (f"the gain's interval pools the seed-to-seed spread the rest of the run measured for the two "
            f"configurations (the race's and the finals' seeds) with the {seeds} held-out seeds' own, "
            f"which varied less: s {spread.floor:.3f}, where the held-out seeds alone give {spread.own:.3f}")


def _reason(state: RunState, objective: Paired, has_challenger: bool) -> str:
    if not has_challenger:
        return "no raced candidate met the constraints and trained stably: the baseline is recommended"
    lo, hi = objective.interval
    n = len(objective.diffs)
    measured = (f"held-out gain {objective.mean:+.1%} (90% interval {lo:+.1%} to {hi:+.1%}; better on "
                f"{objective.wins} of {n} seeds)")
    threshold = state.request.min_gain
    if lo > threshold and not _enough_seeds(state, n):
        return (f"only {n} held-out seeds fit the budget and a gain is claimed on {state.policy.min_adopt_seeds} or "
                f"more: {measured}; the baseline is recommended")
    if lo > threshold:
        return f"adopted: {measured} lies above {threshold:.0%}"
    if hi < 0:
        return f"the challenger is significantly worse: {measured}; the baseline is recommended"
    if lo <= 0 <= hi:
        return f"no significant difference: {measured} straddles zero; the baseline is recommended"
    return f"the {measured} does not clear min_gain {threshold:.0%}; the baseline is recommended"


def _enough_seeds(state: RunState, n: int) -> bool:
    """A gain is claimed on at least RunPolicy.min_adopt_seeds held-out seeds, unless the request named them."""
    return state.request.confirm_seeds is not None or n >= state.policy.min_adopt_seeds


def full_length(config: TrialConfig, steps: int, seed: int) -> TrialConfig:
    """``config`` at ``steps`` (warmup scaled, CONFIRM_EVALS validation points) on ``seed``."""
    warmup = min(steps - 1, round(config.warmup_steps / config.steps * steps))
    return config.model_copy(update={"steps": steps, "seed": seed, "warmup_steps": warmup,
                                     "eval_every": max(1, steps // CONFIRM_EVALS)})


def metrics(state: RunState, runs: list[TrialResult]) -> TrainingMetrics:
    first = runs[0]
    mean = lambda xs: math.fsum(xs) / len(xs)  # noqa: E731
    per_epoch = state.workload.num_train / first.config.batch_size
    accuracies = [r.final_val_metric for r in runs]
    return TrainingMetrics(
        loss=mean([r.final_val_loss for r in runs]),
        accuracy=mean(accuracies) if all(m is not None for m in accuracies) else None,
        gradient_norm=first.grad_norms[-1] if first.grad_norms else None,
        learning_rate=first.config.lr,
        epoch=first.steps_run / per_epoch,
        batch_size=first.config.batch_size,
        memory_usage=max(r.peak_memory_mb for r in runs),
        time_per_epoch=mean([r.time_per_step_s for r in runs]) * per_epoch,
    )
