"""Turn a time budget into step budgets, from measured calibration trials.

total_steps T = 0.7 budget_s / seconds_per_step (marginal cost of a baseline step, measured), or the
request's step budget as it is, then

    probe  25%   LR range test and schedule check, batch-size probe, gradient analysis
    race   35%   candidates of every round raced over the selection seeds at C steps, plus the seeded search
    final  40%   two finalists (the race's leader and its horizon twin) and the baseline at L steps on
                 FINAL_SEEDS selection seeds (6 runs), then
                 the winner and the baseline on RunPolicy.planned_seeds held-out seeds (5: 10 runs)

so L = 0.4 T / 16 (at most the workload's max_epochs) and C = min(L / 2, 0.35 T / races), where a
round of n candidates costs about 2n runs (successive halving over seeds: n + n/2 + n/4 ...). A budget
too small for finals of at least MIN_FINAL_STEPS holds them on one selection seed, L = 0.4 T / 13
(RunPolicy.horizon_final; before, it dropped them, the race's leader was the challenger and L = 0.4 T / 10),
unless it affords fewer held-out seeds than a gain is claimed on (then none, as before);
one too small for 5 held-out seeds of MIN_CONFIRM_STEPS plans fewer (at least MIN_CONFIRM_SEEDS). Whatever
the plan leaves (L hits the epoch cap, the race ends early) the confirm phase spends on more held-out
seeds and the run on more refine rounds (see agent/phases/confirm.py). Step counts are rounded so a
resumed run asks for the same trials.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from trainopt.agent.schemas import MAX_CONFIRM_SEEDS, MIN_CONFIRM_SEEDS

PROBE_SHARE, RACE_SHARE, FINAL_SHARE = 0.25, 0.35, 0.40
CALIBRATION_STEPS = (10, 50)  # two trials: their difference is the marginal cost of a step
PLANNED_SHARE = 0.7  # of the budget planned as training steps; the rest covers setup and validation
FINAL_SEEDS = 2  # selection seeds the finalists are compared on at full length
FINALISTS = 2
MIN_FINAL_STEPS = 150  # finals on FINAL_SEEDS seeds shorter than this: on one seed (or none, before horizon_final)
MIN_CONFIRM_STEPS = 50  # the shortest confirm run; a budget too small for the planned seeds at it plans fewer


class RunPolicy(BaseModel):
    """The run's rules that a recording keeps, so a replay of an older recording takes that recording's path
    (``LEGACY_POLICY`` for recordings that name none).

    planned_seeds    held-out seeds the plan pays for. Five: with three, the t quantile is 2.92 and the
                     spread rests on two degrees of freedom, so one tight triple can make noise look
                     significant; with five it is 2.13 on four.
    extend_by        held-out seeds the confirm adds at a time while budget is left: one spends what the
                     plan leaves in pieces of two runs.
    reserve_seeds    extension seeds the extra refine rounds and the longer search leave room for.
    min_adopt_seeds  the fewest held-out seeds a gain is claimed on (a tiny budget that affords 3 keeps the
                     baseline): a t interval on 2 degrees of freedom undercovers when seed-to-seed gains are
                     heavy-tailed (bench/agent_vs_baselines: a 3-seed, 30-step claim reversed on fresh seeds).
    step_batches     under a step budget a larger batch costs no budget: the planner's anchor batch is raised
                     to the critical batch (never cut to it, as under a time budget) and the search also tries
                     every larger power of two up to the probed range's top.
    untimed_batch    under a step budget the batch probe's pick comes from the noise scale alone (4 B_noise,
                     where the predicted steps are within 25% of the fewest; agent/phases/probe.py), not from a
                     throughput figure: seconds do not count there, and a timing on a loaded machine must not
                     change a rerun's choices.
    confirm_to_budget the confirm adds held-out seeds while the budget lasts (up to MAX_CONFIRM_SEEDS), also
                     after its interval clears ``min_gain`` by more than its half width: the decision would not
                     change, but the size of the gain a user is told rests on more seeds.
    race_fits_budget a round races only as many proposals as fit before the shortest confirm (a budget too small
                     for them at the candidates' shortest length races fewer, with a note, rather than spend
                     beyond the user's step budget).
    run_spread       when the rest of the run saw the baseline and the challenger scatter more across seeds
                     (their log losses on the race's and the finals' seeds; agent/stats.py gain_sd), the
                     confirm's intervals pool that spread with the held-out seeds' own, by degrees of
                     freedom: five held-out seeds that agree by chance must not make a heavy-tailed gain
                     look certain.
    ranked_refine    the refine planner sees the measured candidates in the race's order (highest rung first,
                     agent/phases/propose.py ranked_outcomes) and refines around the first; before, it took the
                     lowest mean score, and means over different seeds do not compare.
    horizon_final    the finals compare the race's leader with itself at a lower LR (phases/finals.py
                     horizon_twin), not with the race's runner-up: the race measures C steps, the confirm L,
                     and the LR a longer run wants is lower (short-horizon bias, Wu et al. 2018). A budget too
                     small for finals on FINAL_SEEDS seeds at MIN_FINAL_STEPS runs them on one selection seed
                     (3 more runs of L: L = 0.4 T / 13) instead of none (L = 0.4 T / 10).
    lognormal_fresh  the interval for a user's mean over 5 fresh seeds models the per-seed loss ratio c/b as
                     log-normal (agent/stats.py fresh_mean_gain), its spread floored as run_spread's, a side
                     seen on one seed only counting as 0; before, a t interval on the gains 1 - c/b, which a
                     skewed gain (a default that sometimes lands well) makes too narrow on its low side and
                     can push past +100%.
    horizon_walk     while the lowest LR of the finals scores best, the finals try the same step down once more
                     (phases/finals.py walk_down, at most twice): (C / L)^1/2 is a rule of thumb, and the
                     full-length runs say how far the LR should fall; before, the finals stopped at the twin."""

    planned_seeds: int = Field(5, ge=MIN_CONFIRM_SEEDS, le=MAX_CONFIRM_SEEDS)
    extend_by: int = Field(1, ge=1)
    reserve_seeds: int = Field(2, ge=0)
    min_adopt_seeds: int = Field(5, ge=MIN_CONFIRM_SEEDS)
    step_batches: bool = True
    untimed_batch: bool = True
    confirm_to_budget: bool = True
    race_fits_budget: bool = True
    run_spread: bool = True
    ranked_refine: bool = True
    horizon_final: bool = True
    lognormal_fresh: bool = True
    horizon_walk: bool = True


# rules added after recordings began to name their policy: the value a recording without the key was made under
ADDED_RULES = {"untimed_batch": False, "confirm_to_budget": False, "race_fits_budget": False, "run_spread": False,
               "ranked_refine": False, "horizon_final": False, "lognormal_fresh": False,
               "horizon_walk": False}
# recordings that name no policy were made under these rules
LEGACY_POLICY = RunPolicy(planned_seeds=3, extend_by=2, reserve_seeds=4, min_adopt_seeds=3, step_batches=False,
                          **ADDED_RULES)


def recorded_policy(meta: dict) -> RunPolicy:
    """The rules a recording was made under, from its recording.json."""
    return RunPolicy(**{**ADDED_RULES, **meta["policy"]}) if "policy" in meta else LEGACY_POLICY


class StepBudget(BaseModel):
    """Optimizer steps each phase may spend (the time budget, converted by measurement)."""

    budget_s: float | None = Field(description="the time budget, or None when a step budget was given")
    seconds_per_step: float = Field(description="baseline configuration, measured on this device")
    total_steps: int
    range_steps: int = Field(description="LR range test sweep")
    check_steps: int = Field(description="each schedule check of the LR tool, and the gradient analysis")
    candidate_steps: int = Field(description="each candidate's measurement")
    search_trials: int = Field(description="extra trials of the seeded Optuna search")
    confirm_steps: int = Field(description="each final and confirm run (finalists, winner and baseline)")
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
    max_steps: int,
    policy: RunPolicy = RunPolicy(),
) -> StepBudget:
    """Split ``budget_s`` into phase step counts (see the module docstring).

    Examples:
        >>> plan_budget(60, 0.002, 4, 1, 1, 5000).confirm_steps
        640
    """
    if budget_s <= 0 or seconds_per_step <= 0:
        raise ValueError(f"budget and step time must be > 0 but got {budget_s=}, {seconds_per_step=}")
    total = PLANNED_SHARE * budget_s / seconds_per_step
    return plan_steps(total, num_candidates, refine_rounds, num_seeds, max_steps, budget_s, seconds_per_step,
                      policy)


def plan_steps(
    total_steps: float,
    num_candidates: int,
    refine_rounds: int,
    num_seeds: int,
    max_steps: int,
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
    runs = lambda finals: (1 + FINALISTS) * finals + 2 * seeds  # noqa: E731 (full-length runs of a plan)
    if FINAL_SHARE * total / runs(final_seeds) < MIN_FINAL_STEPS:  # finals on one seed (horizon_final), or none
        one_seed = policy.horizon_final and seeds >= policy.min_adopt_seeds  # never at the cost of a claim
        final_seeds = min(1, final_seeds) if one_seed else 0
    length = _round(min(max_steps, FINAL_SHARE * total / runs(final_seeds)), low=MIN_CONFIRM_STEPS)
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
        final_seeds=final_seeds,
        confirm_seeds=seeds,
        confirm_extend_by=policy.extend_by,
        confirm_reserve_seeds=policy.reserve_seeds,
    )


def full_length_runs(budget: StepBudget, finalists: int = FINALISTS, extra_seeds: int = 0) -> int:
    """Runs of ``confirm_steps`` still to come: the finals (the finalists and the baseline on the final seeds,
    when there are two finalists or more) and the confirm (challenger and baseline on each held-out seed).

    Examples:
        >>> full_length_runs(plan_steps(6000, 4, 1, 3, 5000)), full_length_runs(plan_steps(6000, 4, 1, 3, 5000), 1)
        (16, 10)
    """
    finals = (1 + finalists) * budget.final_seeds if finalists > 1 else 0
    return finals + 2 * (budget.confirm_seeds + extra_seeds)


def marginal_step_seconds(short_steps: int, short_per_step: float, long_steps: int, long_per_step: float) -> float:
    """Seconds per step without the first-step and setup overhead: (T_long - T_short) / (n_long - n_short)."""
    if long_steps <= short_steps:
        raise ValueError(f"need long_steps > short_steps but got {short_steps=}, {long_steps=}")
    marginal = (long_steps * long_per_step - short_steps * short_per_step) / (long_steps - short_steps)
    return max(marginal, 0.25 * long_per_step, 1e-5)  # timing noise must not make a step look free
