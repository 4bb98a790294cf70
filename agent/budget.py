"""Split a run's compute into phases: every figure in *baseline steps*, training examples divided by the
baseline's batch (agent/horizon.py), so a candidate with a larger batch trains fewer steps of it.

total_steps T is the request's step budget, or 0.7 budget_s / seconds_per_step (the marginal cost of a
baseline step, measured) under a time budget, or DEFAULT_HORIZONS x H without either. Then

    probe  25%   LR range test and schedule check, batch-size probe, gradient analysis
    race   35%   candidates of every round raced over the selection seeds at C, plus the seeded search
    final  40%   the race's leader, its horizon twin and the baseline at L on FINAL_SEEDS selection seeds (6
                 runs), then the winner and the baseline on RunPolicy.planned_seeds held-out seeds (5: 10 runs)

with L = min(H, 0.4 T / 16): the confirm measures the user's run H when the budget pays for it. When it
does not (L < H), each held-out pair also trains at L / 2, so the gain at H can be predicted from two
horizons (agent/extrapolate.py): a pair then costs 3 L, and L = 0.4 T / (6 + 15). C = min(L / 2,
0.35 T / races), where a round of n candidates costs about 2n runs (successive halving over seeds: n + n/2
+ n/4 ...). A budget too small for finals of at least MIN_FINAL_STEPS (or H) holds them on one selection
seed, unless it affords fewer held-out seeds than RunPolicy.min_adopt_seeds (then none: the race's leader is
the challenger); one too small for 5 held-out seeds of MIN_CONFIRM_STEPS plans fewer (at least
MIN_CONFIRM_SEEDS). Whatever the plan leaves the confirm phase spends on more held-out seeds and the run on
more refine rounds (agent/phases/confirm.py). Step counts are rounded so a resumed run asks for the same
trials.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from trainopt.agent.schemas import MAX_CONFIRM_SEEDS, MIN_CONFIRM_SEEDS

PROBE_SHARE, RACE_SHARE, FINAL_SHARE = 0.25, 0.35, 0.40
CALIBRATION_STEPS = (10, 50)  # two trials: their difference is the marginal cost of a step
PLANNED_SHARE = 0.7  # of the budget planned as training steps; the rest covers setup and validation
FINAL_SEEDS = 2  # selection seeds the finalists are compared on at full length
FINALISTS = 2
MIN_FINAL_STEPS = 150  # finals on FINAL_SEEDS seeds shorter than this: on one seed (or none, see plan_steps)
MIN_CONFIRM_STEPS = 50  # the shortest confirm run; a budget too small for the planned seeds at it plans fewer
DEFAULT_HORIZONS = 10  # compute of a run that names no budget: 10 H


class RunPolicy(BaseModel):
    """The held-out seed counts of a run (agent/phases/confirm.py, phases/spend.py); docs/decisions.md says
    how each value was chosen.

    planned_seeds    held-out seeds the plan pays for: with five the 90% t quantile is 2.13 on 4 degrees of
                     freedom (2.92 on 2 with three), so one tight group of seeds cannot make noise look
                     significant.
    extend_by        held-out seeds the confirm adds at a time while budget is left (one: two runs at a time).
    reserve_seeds    extension seeds the extra refine rounds and the longer search leave room for.
    min_adopt_seeds  the fewest held-out seeds a gain is claimed on, unless the request named the seeds (a
                     budget that affords fewer keeps the baseline and says so)."""

    planned_seeds: int = Field(5, ge=MIN_CONFIRM_SEEDS, le=MAX_CONFIRM_SEEDS)
    extend_by: int = Field(1, ge=1)
    reserve_seeds: int = Field(2, ge=0)
    min_adopt_seeds: int = Field(5, ge=MIN_CONFIRM_SEEDS)


class StepBudget(BaseModel):
    """Optimizer steps each phase may spend (the time budget, converted by measurement)."""

    budget_s: float | None = Field(description="the time budget, or None when a step budget was given")
    seconds_per_step: float = Field(description="baseline configuration, measured on this device")
    total_steps: int
    range_steps: int = Field(description="LR range test sweep")
    check_steps: int = Field(description="each schedule check of the LR tool, and the gradient analysis")
    candidate_steps: int = Field(description="each candidate's measurement")
    search_trials: int = Field(description="extra trials of the seeded Optuna search")
    confirm_steps: int = Field(description="L: each final and confirm run (finalists, winner and baseline)")
    horizon_steps: int = Field(0, description="H, the user's run; L = H unless the budget cannot pay for it")
    predicted: bool = Field(False, description="L < H: the confirm also trains at L / 2 and predicts the gain at H")
    final_seeds: int = Field(FINAL_SEEDS, description="selection seeds the finalists are compared on")
    confirm_seeds: int = Field(MIN_CONFIRM_SEEDS, description="held-out seeds planned for the confirm runs")
    confirm_extend_by: int = Field(1, description="held-out seeds the confirm adds at a time while budget is left")
    confirm_reserve_seeds: int = Field(2, description="extension seeds the extra rounds and the search leave room for")


def _round(steps: float, unit: int = 10, low: int = 20) -> int:
    return max(low, int(steps // unit) * unit)


def plan_budget(
    budget_s: float,
    seconds_per_step: float,
    num_candidates: int,
    refine_rounds: int,
    num_seeds: int,
    horizon_steps: int,
    policy: RunPolicy = RunPolicy(),
) -> StepBudget:
    """Split ``budget_s`` into phase step counts (see the module docstring).

    Examples:
        >>> plan_budget(60, 0.002, 4, 1, 1, 5000).confirm_steps
        460
    """
    if budget_s <= 0 or seconds_per_step <= 0:
        raise ValueError(f"budget and step time must be > 0 but got {budget_s=}, {seconds_per_step=}")
    total = PLANNED_SHARE * budget_s / seconds_per_step
    return plan_steps(total, num_candidates, refine_rounds, num_seeds, horizon_steps, budget_s, seconds_per_step,
                      policy)


def plan_steps(
    total_steps: float,
    num_candidates: int,
    refine_rounds: int,
    num_seeds: int,
    horizon_steps: int,
    budget_s: float | None = None,
    seconds_per_step: float = 0.0,
    policy: RunPolicy = RunPolicy(),
) -> StepBudget:
    """Split ``total_steps`` training steps into phase step counts (see the module docstring).

    Examples:
        >>> plan_steps(1200, 4, 1, 1, 5000).candidate_steps
        30
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0 but got {total_steps=}")
    total = total_steps
    final_seeds = min(FINAL_SEEDS, num_seeds)
    seeds = policy.planned_seeds
    while seeds > MIN_CONFIRM_SEEDS and FINAL_SHARE * total / (2 * seeds) < MIN_CONFIRM_STEPS:
        seeds -= 1  # a tiny budget: fewer held-out seeds rather than runs too short to mean anything
    final_share = FINAL_SHARE * total
    runs = lambda finals, pair: (1 + FINALISTS) * finals + pair * seeds  # noqa: E731 (runs of L in a plan)
    predicted = final_share / runs(final_seeds, 2) < horizon_steps  # the confirm cannot train the user's run
    pair = 3 if predicted else 2  # predicted: each held-out pair at L and at L / 2
    if final_share / runs(final_seeds, pair) < min(MIN_FINAL_STEPS, horizon_steps):  # finals on one seed, or none
        one_seed = seeds >= policy.min_adopt_seeds  # never at the cost of a claim
        final_seeds = min(1, final_seeds) if one_seed else 0
    predicted = final_share / runs(final_seeds, 2) < horizon_steps
    pair = 3 if predicted else 2
    length = _round(final_share / runs(final_seeds, pair), low=MIN_CONFIRM_STEPS) if predicted else horizon_steps
    rounds = 1 + refine_rounds
    # each round: n candidates on the first seed, about n more over the halving rungs; the baseline once per
    # selection seed; the search about one round's worth
    measured = 2 * num_candidates * rounds + num_seeds + num_candidates + 2
    candidate = _round(min(length / 2, RACE_SHARE * total / measured), low=30)
    probe = PROBE_SHARE * total
    range_steps = int(min(100, max(30, probe * 0.25)))
    check = _round(min(candidate, probe * 0.75 / 4), low=20)
    return StepBudget(
        budget_s=budget_s,
        seconds_per_step=seconds_per_step,
        total_steps=int(total),
        range_steps=range_steps,
        check_steps=check,
        candidate_steps=candidate,
        search_trials=num_candidates,
        confirm_steps=length,
        horizon_steps=horizon_steps,
        predicted=predicted,
        final_seeds=final_seeds,
        confirm_seeds=seeds,
        confirm_extend_by=policy.extend_by,
        confirm_reserve_seeds=policy.reserve_seeds,
    )


def full_length_runs(budget: StepBudget, finalists: int = FINALISTS, extra_seeds: int = 0) -> int:
    """Runs of ``confirm_steps`` still to come: the finals (the finalists and the baseline on the final seeds,
    when there are two finalists or more) and the confirm (challenger and baseline on each held-out seed; at L
    and L / 2, 3 runs' worth, when the gain at H is predicted).

    Examples:
        >>> full_length_runs(plan_steps(6000, 4, 1, 3, 5000)), full_length_runs(plan_steps(6000, 4, 1, 3, 5000), 1)
        (18, 15)
    """
    finals = (1 + finalists) * budget.final_seeds if finalists > 1 else 0
    return finals + (3 if budget.predicted else 2) * (budget.confirm_seeds + extra_seeds)


def marginal_step_seconds(short_steps: int, short_per_step: float, long_steps: int, long_per_step: float) -> float:
    """Seconds per step without the first-step and setup overhead: (T_long - T_short) / (n_long - n_short)."""
    if long_steps <= short_steps:
        raise ValueError(f"need long_steps > short_steps but got {short_steps=}, {long_steps=}")
    marginal = (long_steps * long_per_step - short_steps * short_per_step) / (long_steps - short_steps)
    return max(marginal, 0.25 * long_per_step, 1e-5)  # timing noise must not make a step look free
