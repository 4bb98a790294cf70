"""Phase 3, propose and refine: candidates from the planner (an LM or the offline rules), from uniform
random draws inside the probed safe ranges, or none at all (the seeded search alone), bounded by
agent/proposals.py before anything is measured.

The random source draws log-uniform LRs in the digest's safe range, batch sizes among the powers of
two in its batch range, and schedules, optimizers and weight decays uniformly; its generator is seeded
with the first selection seed and the round, so a replay draws the same candidates.
"""

from __future__ import annotations

import math
import random

from trainopt.agent.digest import MeasuredResult
from trainopt.agent.phases.race import ranking
from trainopt.agent.phases.state import RunState
from trainopt.agent.proposals import Proposal, bound
from trainopt.agent.schemas import CandidateOutcome, CandidateProposal

RANDOM_SCHEDULES = ("constant", "cosine", "warmup_cosine", "one_cycle")
RANDOM_WEIGHT_DECAYS = (0.0, 0.01, 0.1)


def propose(state: RunState) -> list[Proposal]:
    """Round 0: the first candidates."""
    return _round(state, 0)


def refine(state: RunState) -> list[Proposal]:
    """Round r >= 1: the planner sees every measured candidate (best first) and proposes again."""
    return _round(state, state.rounds)


def _round(state: RunState, round: int) -> list[Proposal]:
    phase = "propose" if round == 0 else "refine"
    source = state.request.proposals
    n = state.request.num_candidates
    state.report(phase, 0, 1, f"round {round}: {source}")
    if source == "none":
        raw, origin = [], "none"
        if round == 0:
            state.rationale.append("Proposal: none asked for (proposals='none'): the seeded search alone proposes.")
    elif source == "random":
        raw, origin = random_draws(state, round), "random"
        if round == 0:
            state.rationale.append(f"Proposal: {n} uniform random draws inside the probed safe ranges per round.")
    else:
        raw, origin = ask_planner(state, round)
    steps = state.budget.candidate_steps
    proposals, notes = bound(raw, state.digest, n, steps, state.request.seeds[0], origin, round)
    state.notes.extend(notes)
    state.rounds = round + 1
    state.report(phase, 1, 1, f"{len(proposals)} candidates")
    return proposals


def ask_planner(state: RunState, round: int) -> tuple[list, str]:
    common = dict(evidence=state.digest, objective=state.objective_text(), constraints=state.constraints_text(),
                  num_candidates=state.request.num_candidates)
    if round == 0:
        prediction = state.planner.ask("propose", **common)
        state.rationale.append(f"Proposal: {prediction.rationale}")
    else:
        ranked = ranked_outcomes(state)
        prediction = state.planner.ask("refine", results=[measured(o) for o in ranked], **common)
        state.rationale.append(f"Refinement {round}: {prediction.rationale}")
    origin = state.planner.answered_by[-1].split(": ", 1)[1]
    return list(prediction.candidates or []), origin


def ranked_outcomes(state: RunState) -> list[CandidateOutcome]:
    """Every measured candidate, best first: the race's ranking (highest rung, then mean score on that rung's
    seeds), then the rest by score. Mean scores over different seed sets do not compare: a candidate stopped
    after one seed whose baseline did badly looks better than the race's leader."""
    ranked = ranking(state)
    return ranked + sorted((o for o in state.outcomes if all(o is not r for r in ranked)), key=lambda o: o.score)


def random_draws(state: RunState, round: int) -> list[CandidateProposal]:
    d = state.digest
    rng = random.Random(f"{state.request.seeds[0]}:{round}")
    low, high = d.lr_safe_range
    batches = [2**k for k in range(20) if d.batch_range[0] <= 2**k <= d.batch_range[1]] or [d.batch_recommended]
    draws = []
    for _ in range(state.request.num_candidates):
        schedule = rng.choice(RANDOM_SCHEDULES)
        draws.append(CandidateProposal(
            optimizer=rng.choice(d.optimizer_options),
            lr=float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}"),
            batch_size=rng.choice(batches),
            weight_decay=rng.choice(RANDOM_WEIGHT_DECAYS),
            schedule=schedule,
            warmup_fraction=0.05 if schedule == "warmup_cosine" else 0.0,
            why="uniform random draw inside the probed safe ranges",
        ))
    return draws


def measured(outcome: CandidateOutcome) -> MeasuredResult:
    """A raced candidate as the refine signature sees it (means over its selection seeds)."""
    finite = lambda v: v if math.isfinite(v) else 1e30  # noqa: E731
    return MeasuredResult.from_config(
        outcome.config,
        val_loss=finite(outcome.val_loss),
        val_metric=outcome.val_metric,
        diverged=outcome.diverged,
        score=finite(outcome.score),
        rejected=outcome.rejected,
    )
