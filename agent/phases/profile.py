"""Phase 1, profile: the horizon H (the user's run, agent/horizon.py) and two calibration trials of the
baseline turn the budget into step budgets (no LLM).

A step budget (or, without any budget, DEFAULT_HORIZONS x H) is planned as it is: compute in training
examples, the same plan on a quiet and a loaded machine. A time budget is planned from what is left of it
after the calibration and before the report, at the wall seconds per step of the longer calibration trial
(validation included), or at the marginal step cost (T_50 - T_10) / 40 when that is higher
(agent/budget.py); the note says how many examples that was.
"""

from __future__ import annotations

from trainopt.agent.budget import CALIBRATION_STEPS, DEFAULT_HORIZONS, marginal_step_seconds, plan_budget, plan_steps
from trainopt.agent.horizon import resolve_horizon
from trainopt.agent.phases.state import Decision, RunState
from trainopt.errors import HyperparameterError


def profile(state: RunState) -> None:
    state.report("profile", 0, 1, "calibration trials")
    request = state.request
    state.horizon = horizon = resolve_horizon(request.train_steps, request.epochs, state.workload.default_config,
                                              state.workload.num_train, state.baseline_batch)
    epochs = horizon.examples / state.workload.num_train
    if epochs > state.space.max_epochs:
        raise HyperparameterError(
            f"the horizon {horizon.text()} is {epochs:.3g} epochs, beyond TrainingConfig.max_epochs="
            f"{state.space.max_epochs}: raise max_epochs or train for fewer steps", {"epochs": epochs})
    if (note := horizon.assumed_note()) is not None:
        state.notes.append(note)
    configs = [state.baseline_config(n) for n in CALIBRATION_STEPS]
    short, long = state.run_trials(configs, "calibration", "profile")
    seconds = marginal_step_seconds(short.steps_run, short.time_per_step_s, long.steps_run, long.time_per_step_s)
    shape = (request.num_candidates, request.refine_rounds, len(request.seeds))
    wall_rate = max(seconds, long.wall_time_s / max(1, long.steps_run))
    state.clock.fallback_seconds_per_step = wall_rate
    step_budget = request.constraints.step_budget
    h = horizon.baseline_steps
    if step_budget is not None or state.budget_s is None:  # compute in examples: the same plan on any machine
        total = step_budget if step_budget is not None else DEFAULT_HORIZONS * h
        state.budget = plan_steps(total, *shape, h, state.budget_s, seconds, state.policy)
        if step_budget is None:
            state.notes.append(f"budget: {DEFAULT_HORIZONS} H = {total} steps at batch {horizon.baseline_batch} "
                               f"({total * horizon.baseline_batch:,} training examples), the default; set it with "
                               "--step-budget N or a wall-clock limit with --budget SECONDS")
    else:
        clock = state.clock
        plannable = state.decide("plan", lambda: Decision(seconds=clock.left() - clock.report_reserve()))
        usable = max(plannable.seconds, 0.1 * state.budget_s)
        planned = plan_budget(usable, wall_rate, *shape, horizon_steps=h, policy=state.policy)
        state.budget = planned.model_copy(update={"budget_s": state.budget_s})
        state.notes.append(
            f"budget: {state.budget_s:g} s is {state.budget.total_steps} steps at batch {horizon.baseline_batch} "
            f"({state.budget.total_steps * horizon.baseline_batch:,} training examples) at the measured "
            f"{wall_rate * 1000:.3g} ms a step")
    within = f"in {state.budget_s:g} s" if state.budget_s is not None else "(step budget)"
    state.report("profile", 1, 1, f"{state.budget.total_steps} steps {within}")
