"""Phase 4, race: candidates compared over the selection seeds by successive halving (F-Race / irace
style, asynchronous like ASHA, Li et al. 2020), so a lucky seed cannot carry a configuration to the end.

Rung k holds the candidates measured on the first k + 1 selection seeds, at the candidates' length.
Each candidate's score on a seed is its objective relative to the baseline on that seed (1.0 = the
baseline). A member of rung k moves on to seed k + 1 when

    it is in the better half of rung k by mean score over seeds 0..k (ETA = 2), and
    it is not significantly worse than the rung's leader: the 90% paired t interval of
    (its score - the leader's score) over those seeds does not lie above zero (agent/stats.py).

Candidates of later rounds (refine, search) enter rung 0 and climb the same way. The race's leader is the
best of the highest rung reached (``ranking``); phases/finals.py compares it at full length with its
horizon twin on the first FINAL_SEEDS selection seeds. Seeds used here are never used to confirm.

A round races only as many new proposals as fit before the shortest confirm (``race_size``).
"""

from __future__ import annotations

import math

from trainopt.agent.budget import full_length_runs
from trainopt.agent.phases.state import Decision, RunState
from trainopt.agent.proposals import Proposal
from trainopt.agent.schemas import CandidateOutcome
from trainopt.agent.scoring import constraint_violation, objective_score
from trainopt.agent.stats import paired
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult

ETA = 2  # successive halving: the better 1/ETA of a rung moves on


def race(state: RunState, proposals: list[Proposal]) -> None:
    """Measure the new proposals on the first selection seed, then promote rung by rung."""
    if not any(o.source == "baseline" for o in state.outcomes):
        base = state.baseline_config(state.budget.candidate_steps)
        state.outcomes.append(CandidateOutcome(config=base, source="baseline", round=-1, steps=base.steps,
                                               val_loss=math.nan, val_metric=None, peak_memory_mb=0.0,
                                               diverged=False, score=1.0))
    known = {o.config.key() for o in state.outcomes}
    fresh = []
    for p in proposals:
        if p.config.key() not in known:
            known.add(p.config.key())
            fresh.append(CandidateOutcome(config=p.config, source=p.source, round=p.round, steps=p.config.steps,
                                          val_loss=math.nan, val_metric=None, peak_memory_mb=0.0, diverged=False,
                                          score=math.inf, clamped=p.clamped))
    if len(fresh) > 1:
        fresh = fresh[: race_size(state, fresh[0].round, len(fresh))]
    state.outcomes.extend(fresh)
    seeds = state.request.seeds
    _measure(state, [o for o in state.outcomes if seeds[0] not in o.seed_scores], seeds[0])
    for k in range(len(seeds) - 1):
        promoted = promotions(state, k)
        _measure(state, promoted, seeds[k + 1])
    _mark_stops(state)


def race_runs(candidates: int, seeds: int, baseline_missing: int) -> int:
    """At most the runs a race of ``candidates`` new proposals takes: ceil(n / ETA^k) of them on seed k, and
    the baseline on each selection seed it was not measured on yet."""
    return sum(math.ceil(candidates / ETA**k) for k in range(seeds)) + baseline_missing


def race_size(state: RunState, round: int, proposed: int) -> int:
    """How many of ``proposed`` new proposals round ``round`` races (at least one): those whose race fits in what
    is left before the shortest confirm (no finals, the planned held-out seeds at the candidates' length,
    phases/finals.py final_plan), so a tiny step budget races fewer rather than overspends."""
    b, seeds = state.budget, state.request.seeds
    missing = sum(s not in state.baseline_outcome().seed_scores for s in seeds)
    shortest_confirm = full_length_runs(b, 1) * b.candidate_steps

    def compute() -> Decision:
        room = state.steps_left() - shortest_confirm
        n = proposed
        while n > 1 and race_runs(n, len(seeds), missing) * b.candidate_steps > room:
            n -= 1
        return Decision(candidates=n, note=None if n == proposed else (
            f"round {round} races {n} of its {proposed} proposals: {state.time_note()}, and the shortest "
            f"confirm needs {shortest_confirm}; more would spend beyond the budget"))

    return state.decide(f"race of round {round}", compute).candidates or proposed


def challengers(state: RunState) -> list[CandidateOutcome]:
    return [o for o in state.outcomes if o.source != "baseline"]


def rung(outcome: CandidateOutcome, seeds: list[int]) -> int:
    """The highest k such that the outcome was measured on seeds[0..k] (-1: not measured)."""
    k = -1
    while k + 1 < len(seeds) and seeds[k + 1] in outcome.seed_scores:
        k += 1
    return k


def mean_score(outcome: CandidateOutcome, seeds: list[int]) -> float:
    scores = [outcome.seed_scores[s] for s in seeds]
    return math.fsum(scores) / len(scores) if all(math.isfinite(x) for x in scores) else math.inf


def alive(outcome: CandidateOutcome) -> bool:
    return outcome.rejected is None and not outcome.diverged and math.isfinite(outcome.score)


def promotions(state: RunState, k: int) -> list[CandidateOutcome]:
    """Members of rung k that move on to seed k + 1 (see the module docstring)."""
    seeds = state.request.seeds
    on = seeds[: k + 1]
    members = sorted((o for o in challengers(state) if rung(o, seeds) >= k and alive(o)),
                     key=lambda o: mean_score(o, on))
    if not members:
        return []
    leader, quota = members[0], math.ceil(len(members) / ETA)
    chosen = []
    for o in members[:quota]:
        if seeds[k + 1] in o.seed_scores:
            continue
        if k >= 1 and o is not leader:
            worse = paired([o.seed_scores[s] - leader.seed_scores[s] for s in on])
            if worse.above(0.0):
                o.stopped = (f"significantly worse than the leader over seeds {on}: score difference "
                             f"{worse.mean:+.3f}, 90% interval [{worse.interval[0]:+.3f}, {worse.interval[1]:+.3f}]")
                continue
        chosen.append(o)
    return chosen


def ranking(state: RunState) -> list[CandidateOutcome]:
    """Live challengers, best first: highest rung reached, then mean score over that rung's seeds."""
    seeds = state.request.seeds
    live = [o for o in challengers(state) if alive(o) and not (o.stopped or "").startswith("significantly worse")]
    return sorted(live, key=lambda o: (-rung(o, seeds), mean_score(o, seeds[: rung(o, seeds) + 1])))


def _measure(state: RunState, outcomes: list[CandidateOutcome], seed: int) -> None:
    """Run ``outcomes`` (and the baseline, if missing) on ``seed``; score each against that seed's baseline."""
    if not outcomes:
        return
    baseline = state.baseline_outcome()
    todo = [o for o in outcomes if o is not baseline]
    configs = [] if seed in baseline.seed_scores else [_on_seed(baseline.config, seed)]
    configs += [_on_seed(o.config, seed) for o in todo]
    purpose = f"race seed {seed}"
    state.run_trials(configs, purpose, "race")
    base_result = state.results[_on_seed(baseline.config, seed).key()]
    _record(state, baseline, seed, base_result, base_result)
    for o in todo:
        _record(state, o, seed, state.results[_on_seed(o.config, seed).key()], base_result)


def _record(state: RunState, o: CandidateOutcome, seed: int, result: TrialResult, base: TrialResult) -> None:
    o.seed_scores[seed] = objective_score(result, base, state.request.objective_metrics, state.latency_ms)
    o.seed_losses[seed] = result.final_val_loss
    seeds = [s for s in state.request.seeds if s in o.seed_scores]
    o.score = mean_score(o, seeds)
    losses = [o.seed_losses[s] for s in seeds]
    o.val_loss = math.fsum(losses) / len(losses)
    metrics = [state.results[_on_seed(o.config, s).key()].final_val_metric for s in seeds]
    o.val_metric = None if any(m is None for m in metrics) else math.fsum(metrics) / len(metrics)
    o.peak_memory_mb = max(o.peak_memory_mb, result.peak_memory_mb)
    o.diverged = o.diverged or result.diverged
    if o.rejected is None and o.source != "baseline":
        o.rejected = constraint_violation(result, state.request.constraints, state.latency_ms)


def _mark_stops(state: RunState) -> None:
    seeds = state.request.seeds
    for o in challengers(state):
        k = rung(o, seeds)
        if (o.stopped or "").startswith("significantly worse"):
            continue
        if not alive(o):
            o.stopped = o.rejected or ("diverged" if o.diverged else "no finite score")
        elif k < len(seeds) - 1:
            o.stopped = f"not in the better half of rung {k} (mean score {o.score:.3g} over seeds {seeds[: k + 1]})"
        else:
            o.stopped = None


def _on_seed(config: TrialConfig, seed: int) -> TrialConfig:
    return config.model_copy(update={"seed": seed})
