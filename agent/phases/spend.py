"""Where the budget goes after the plan: the planned refine rounds when they still fit, then extra rounds
and a longer search while they leave room for the finals, the planned confirm and the policy's
``reserve_seeds`` more held-out seeds (agent/budget.py RunPolicy); what the confirm leaves unused it
spends on held-out seeds (phases/confirm.py).

Each decision is recorded when a time budget applies (RunState.decide), and each skip or stop is noted
with its reason: the plan's remainder in steps, or the seconds left at the step cost measured so far.
"""

from __future__ import annotations

from trainopt.agent.budget import full_length_runs
from trainopt.agent.phases.race import ranking
from trainopt.agent.phases.state import Decision, RunState

EXTRA_ROUNDS = 2  # refine rounds beyond the request's, when the budget has room and the race still moves
SEARCH_GROWTH = 2  # the search may grow to (1 + SEARCH_GROWTH) x its planned trials


def reserve(state: RunState, extension: bool) -> int:
    """Steps the finals and the confirm need (with the reserved extension seeds when ``extension``)."""
    b = state.budget
    return full_length_runs(b, extra_seeds=b.confirm_reserve_seeds if extension else 0) * b.confirm_steps


def search_cost(state: RunState) -> int:
    b = state.budget
    return (b.search_trials + 2) * b.candidate_steps


def another_round(state: RunState, leader_before: str | None) -> bool:
    """Whether to run refine round ``state.rounds``: a planned one when it fits before the search and the
    confirm, an extra one when the budget has room beyond that and the last round moved the race's leader."""
    request, b = state.request, state.budget
    r = state.rounds
    if request.proposals == "none":
        return False
    if r > request.refine_rounds + EXTRA_ROUNDS:
        state.notes.append(f"no refine round {r}: {request.refine_rounds} planned and {EXTRA_ROUNDS} extra are the "
                           "most")
        return False
    planned = r <= request.refine_rounds
    cost = 2 * request.num_candidates * b.candidate_steps
    if not planned and leader_before == leader(state):
        state.notes.append(f"no refine round {r}: round {r - 1} did not change the race's leader")
        return False
    after = search_cost(state) + reserve(state, extension=not planned)

    def compute() -> Decision:
        if cost + after <= state.steps_left():
            return Decision()
        if not planned:
            return Decision(skip=True)
        return Decision(skip=True, note=f"refine round {r} skipped: {state.time_note()}; it needs about {cost} "
                                        f"steps before {after} for the search, finals and confirm")

    return not state.decide(f"refine round {r}", compute).skip


def search_trials(state: RunState) -> int | None:
    """Extra search trials beyond the plan (0 or more), or None to skip the search."""
    b = state.budget
    planned, after = search_cost(state), reserve(state, extension=False)

    def compute() -> Decision:
        left = state.steps_left()
        if planned + after > left:
            return Decision(skip=True, note=f"seeded search skipped: {state.time_note()}")
        spare = left - planned - reserve(state, extension=True)
        extra = max(0, min(SEARCH_GROWTH * b.search_trials, spare // b.candidate_steps))
        capped = extra == SEARCH_GROWTH * b.search_trials and extra < spare // b.candidate_steps
        return Decision(steps=extra, note=f"the seeded search grew by {extra} trials, the most "
                                          f"({1 + SEARCH_GROWTH}x its plan)" if capped else None)

    decision = state.decide("seeded search", compute)
    return None if decision.skip else decision.steps or 0


def leader(state: RunState) -> str | None:
    ranked = ranking(state)
    return ranked[0].config.key() if ranked else None
