"""Phase 1, profile: two calibration trials of the baseline turn the budget into step budgets (no LLM).

A time budget is planned from what is left of it after the calibration and before the report, at the
wall seconds per step of the longer calibration trial (validation included), or at the marginal step
cost (T_50 - T_10) / 40 when that is higher (agent/budget.py).
"""

from __future__ import annotations

from trainopt.agent.budget import CALIBRATION_STEPS, marginal_step_seconds, plan_budget, plan_steps
from trainopt.agent.phases.state import Decision, RunState


def profile(state: RunState) -> None:
    state.report("profile", 0, 1, "calibration trials")
    configs = [state.baseline_config(n) for n in CALIBRATION_STEPS]
    short, long = state.run_trials(configs, "calibration", "profile")
    seconds = marginal_step_seconds(short.steps_run, short.time_per_step_s, long.steps_run, long.time_per_step_s)
    steps_per_epoch = max(1, state.workload.num_train // long.config.batch_size)
    request = state.request
    shape = (request.num_candidates, request.refine_rounds, len(request.seeds))
    max_steps = state.space.max_epochs * steps_per_epoch
    wall_rate = max(seconds, long.wall_time_s / max(1, long.steps_run))
    state.clock.fallback_seconds_per_step = wall_rate
    step_budget = request.constraints.step_budget
    if step_budget is not None:
        state.budget = plan_steps(step_budget, *shape, max_steps, state.budget_s, seconds, state.policy)
    else:
        clock = state.clock
        plannable = state.decide("plan", lambda: Decision(seconds=clock.left() - clock.report_reserve()))
        usable = max(plannable.seconds, 0.1 * state.budget_s)
        planned = plan_budget(usable, wall_rate, *shape, max_steps=max_steps, policy=state.policy)
        state.budget = planned.model_copy(update={"budget_s": state.budget_s})
    within = f"in {state.budget_s:g} s" if step_budget is None else "(step budget)"
    state.report("profile", 1, 1, f"{state.budget.total_steps} steps {within}")
