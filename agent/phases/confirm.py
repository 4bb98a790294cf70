"""Phase 7, confirm: the challenger (phases/finals.py) and the baseline, paired on held-out seeds, decide the
recommendation.

Challenger and baseline run L steps on held-out seeds that no phase before used (1000, 1001, ... by
default), scored on the test split (``on_test``). When L is the user's run H the gain is measured there;
when L < H each pair also runs L / 2 and the per-seed loss ratios are carried to H (agent/extrapolate.py:
the point at persistence 1/2, the interval the union of those at 0 and 1), and the gain is labelled
predicted. Measured at H: per-seed relative gains, their mean and 90% t interval (agent/stats.py); when
the rest of the run saw the two configurations scatter more across seeds (their log losses on the race's and the finals'
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
from functools import partial
from typing import NamedTuple

from trainopt.agent.extrapolate import PERSISTENCE, log_ratios, log_ratios_at
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

NEW_SEEDS = 5  # the gain's second interval: the mean a user sees over this many fresh seeds


class Arms(NamedTuple):
    """The baseline and the challenger at one length (seed 0: the held-out seeds replace it)."""

    steps: int
    baseline: TrialConfig
    challenger: TrialConfig


def confirm(state: RunState, steps: int) -> Gain:
    """Challenger against baseline on held-out seeds, extended while the budget lasts and it helps."""
    request, b = state.request, state.budget
    fixed = request.confirm_seeds is not None
    seeds = list(request.confirm_seeds) if fixed else [CONFIRM_SEED_START + i for i in range(b.confirm_seeds)]
    lengths = [max(1, steps // 2), steps] if steps < b.horizon_steps else [steps]
    arms = [_arms(state, length) for length in lengths]
    _run_pairs(state, arms, seeds)
    gain, spread = _gain(state, arms, seeds)
    while not fixed and (stop := _stop_reason(state, len(seeds), arms)) is None:
        more = [CONFIRM_SEED_START + len(seeds) + i for i in range(min(b.confirm_extend_by,
                                                                        MAX_CONFIRM_SEEDS - len(seeds)))]
        _run_pairs(state, arms, more)
        seeds += more
        gain, spread = _gain(state, arms, seeds)
    if not fixed:
        state.notes.append(f"confirm stopped after {len(seeds)} held-out seeds: {stop}")
    if spread.floor > spread.own:
        state.notes.append(_spread_note(spread, len(seeds)))
    if state.workload.test_data is None:
        state.notes.append("the workload has no test split: the claim is on the validation split, which the "
                           "race and the finals also read")
    return gain


def _arms(state: RunState, steps: int) -> Arms:
    base = state.at_length(state.baseline_config(steps), steps, 0)
    challenger = state.at_length(state.challenger.config, steps, 0) if state.challenger else base
    return Arms(steps, base, challenger)


def _stop_reason(state: RunState, n: int, arms: list[Arms]) -> str | None:
    """Why no more held-out seeds are added, or None to add the policy's ``extend_by`` more."""
    if state.challenger is None:
        return "no challenger to confirm"
    if n >= MAX_CONFIRM_SEEDS:
        return f"{MAX_CONFIRM_SEEDS} seeds is the most the confirm uses"
    cost = 2 * min(state.budget.confirm_extend_by, MAX_CONFIRM_SEEDS - n) * sum(a.steps for a in arms)

    def compute() -> Decision:
        if cost <= state.steps_left():
            return Decision()
        return Decision(skip=True)

    if state.decide(f"confirm seeds beyond {n}", compute).skip:
        return f"the budget is spent ({state.time_note()}; the next held-out runs need {cost} steps)"
    return None


def _run_pairs(state: RunState, arms: list[Arms], seeds: list[int]) -> None:
    """Both arms at every length on ``seeds``; the longest runs are the confirm's runs."""
    configs = [c.model_copy(update={"seed": s}) for a in arms for s in seeds for c in (a.baseline, a.challenger)]
    state.run_trials(list({c.key(): c for c in configs}.values()), "confirm", "confirm")
    longest = arms[-1]
    for s in seeds:
        for side, config in (("baseline", longest.baseline), ("challenger", longest.challenger)):
            state.confirm.setdefault(side, []).append(state.results[config.model_copy(update={"seed": s}).key()])


def _runs(state: RunState, config: TrialConfig, seeds: list[int]) -> list[TrialResult]:
    """``config``'s results on ``seeds``, scored on the test split (``on_test``)."""
    return [on_test(state.results[config.model_copy(update={"seed": s}).key()]) for s in seeds]


def _gain(state: RunState, arms: list[Arms], seeds: list[int]) -> tuple[Gain, Spread]:
    """The paired comparison on ``seeds`` (at H, measured or predicted from two lengths), and the spread its
    intervals used."""
    longest, h = arms[-1], state.budget.horizon_steps
    bases, chals = _runs(state, longest.baseline, seeds), _runs(state, longest.challenger, seeds)
    b_losses, c_losses = [r.score for r in bases], [r.score for r in chals]
    weights = state.request.objective_metrics
    scores = [[objective_score(c, b, weights, state.latency_ms) for c, b in
               zip(_runs(state, a.challenger, seeds), _runs(state, a.baseline, seeds), strict=True)] for a in arms]
    if len(arms) == 2:  # predicted at H from the two lengths (agent/extrapolate.py)
        short = arms[0]
        at_h = partial(_at_horizon, h_short=short.steps, h_long=longest.steps, h=h)
        short_losses = [[r.score for r in _runs(state, c, seeds)] for c in (short.baseline, short.challenger)]
        loss_logs = (log_ratios(*short_losses), log_ratios(b_losses, c_losses))
        score_logs = [log_ratios([1.0] * len(x), x) for x in scores]
        spread = Spread(0.0, 0.0)
        loss, fresh = _predicted([at_h(*loss_logs, persistence=theta) for theta in PERSISTENCE])
        objective, _ = _predicted([at_h(*score_logs, persistence=theta) for theta in PERSISTENCE])
    else:
        spread = run_spread(state, longest.baseline, longest.challenger, b_losses, c_losses, seeds)
        loss = paired(relative_gains(b_losses, c_losses), min_sd=spread.floor)
        fresh = _fresh_interval(state, longest.baseline, longest.challenger, b_losses, c_losses, seeds) or paired(
            loss.diffs, new_seeds=NEW_SEEDS, min_sd=spread.floor).interval
        objective = paired([1.0 - x for x in scores[-1]],
                           min_sd=spread.floor * weights.get("loss", 0.0) / math.fsum(weights.values()))
    has_challenger = state.challenger is not None
    significant = has_challenger and objective.above(state.request.min_gain) and _enough_seeds(state, len(seeds))
    metric_change = None
    if all(r.final_val_metric is not None for r in bases + chals):
        metric_change = math.fsum(c.final_val_metric - b.final_val_metric
                                  for c, b in zip(chals, bases, strict=True)) / len(seeds)
    bb = state.baseline_batch
    gain = Gain(
        steps=longest.steps, horizon_examples=h * bb, measured_examples=longest.steps * bb, predicted=len(arms) == 2,
        seeds=list(seeds), baseline=metrics(state, bases), challenger=metrics(state, chals),
        baseline_val_losses=b_losses, challenger_val_losses=c_losses,
        relative_loss_reduction=loss.mean, interval=loss.interval, new_seeds_interval=fresh,
        new_seeds=NEW_SEEDS, objective_gain=objective.mean, objective_interval=objective.interval, level=LEVEL,
        wins=objective.wins, losses=objective.losses, significant=significant, adopted=significant,
        reason="", metric_change=metric_change,
    )
    gain.reason = _reason(state, objective, has_challenger, gain.claim_text())
    return gain, spread


def _at_horizon(short: list[float], long: list[float], h_short: int, h_long: int, h: int, persistence: float
                ) -> list[float]:
    """Per-seed ratios at H from the log ratios at two lengths; a seed with a non-finite side (a diverged run)
    keeps its long one."""
    ratios = []
    for a, b in zip(short, long, strict=True):
        finite = math.isfinite(a) and math.isfinite(b)
        x = log_ratios_at([a], [b], h_short, h_long, h, persistence)[0] if finite else b
        ratios.append(math.exp(x) if x < 700 else math.inf)
    return ratios


def _predicted(ratios: list[list[float]]) -> tuple[Paired, tuple[float, float]]:
    """The paired gain 1 - ratio at the middle persistence, its interval and the fresh-seeds interval the union
    of those at the two ends (agent/extrapolate.py)."""
    ends = [paired([1.0 - r for r in x]) for x in (ratios[0], ratios[-1])]
    middle = paired([1.0 - r for r in ratios[1]])
    interval = (min(e.interval[0] for e in ends), max(e.interval[1] for e in ends))
    fresh = [fresh_mean_gain([1.0] * len(x), x, NEW_SEEDS) or paired([1.0 - r for r in x], new_seeds=NEW_SEEDS).interval
             for x in (ratios[0], ratios[-1])]
    return middle.model_copy(update={"interval": interval}), (min(f[0] for f in fresh), max(f[1] for f in fresh))


def on_test(result: TrialResult) -> TrialResult:
    """``result`` as a claim reads it: its final loss and metric on the test split, which nothing selected on
    (the validation figures when the workload has no test split)."""
    if result.final_test_loss is None or result.diverged:
        return result
    return result.model_copy(update={"final_val_loss": result.final_test_loss,
                                     "final_val_metric": result.final_test_metric})


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


def _reason(state: RunState, objective: Paired, has_challenger: bool, claim: str) -> str:
    if not has_challenger:
        return "no raced candidate met the constraints and trained stably: the baseline is recommended"
    lo, hi = objective.interval
    n = len(objective.diffs)
    measured = (f"held-out gain {objective.mean:+.1%} {claim} (90% interval {lo:+.1%} to {hi:+.1%}; better on "
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
