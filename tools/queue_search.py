"""The HyperparameterSuggester's search through the queue: ask a batch, workers train it, tell the results.

With a queue-backed store (``QueueStore``) the Optuna study stays in the coordinator, and so does
TPE's sampling: ``study.ask()`` up to ``batch`` trials at once (warm-start candidates first, then
TPE with ``constant_liar``, so the trials of one batch do not all land on the same point), their
configurations go to the workers in one ``store.run_each``, and each result is ``study.tell``-ed
back with its validation curve reported:

    ask k <= batch trials -> cutoffs from the finished trials -> store.run_each (workers train, and
    stop a trial at a rung where its loss is above the cutoff) -> report the curve + tell

Pruning travels as numbers, not as calls: successive halving's rule (keep the best 1/3 at each rung
``min_steps x 3^k``) is applied to the trials finished before the batch was asked, giving one cutoff
per rung; a worker stops its trial at a rung where the validation loss is above it (``stop_rule``).
No round trip per validation point, and the same batch always gets the same cutoffs. The
ConvergencePredictor's forecast pruning stays in one-process runs. docs/scale-out.md says why.

Warm-start candidates run whole (no cutoffs), as in one process. A trial whose result was already in
the trial store (the race measured that configuration) is read back and counts no steps; a trial that
raises (a bad configuration) is told FAIL with its error and does not count, as in one process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from trainopt.errors import OptimizationError
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ETA = 3  # successive halving's reduction factor (the one-process pruner's): keep the best 1/3 at a rung


def run_batches(study: optuna.Study, store: Any, workload, device, input, suggest: Callable, batch: int,
                state: dict[str, int]) -> None:
    """Ask, run on the workers and tell until ``input.n_trials`` trials finished or the step budget is spent.

    ``suggest(trial) -> TrialConfig`` samples a trial's configuration; ``state["spent"]`` counts steps."""
    for _attempt in range(3 * input.n_trials):  # failed trials (bad config, OOM) do not count
        left = input.n_trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        size = _batch_size(batch, left, input, state["spent"])
        if size == 0:
            return
        stops = cutoffs(study, input)  # before the asks: the batch's own trials are not finished
        trials = [study.ask() for _ in range(size)]
        configs = [_configure(trial, suggest) for trial in trials]
        # the warm-start candidates run whole, as in one process: they anchor the rungs
        outcomes = store.run_each(workload, configs, device=str(device), stops=[
            None if trial.user_attrs.get("source") == "candidate" else stops for trial in trials])
        for trial, outcome in zip(trials, outcomes, strict=True):
            _tell(study, trial, outcome, state, input.pruner)


def cutoffs(study: optuna.Study, input) -> dict[int, float]:
    """{rung step: highest validation loss kept there}: the best 1/ETA of the finished trials' losses at each
    rung (a trial's first validation point at or past it), for rungs with at least ETA such trials."""
    if input.pruner == "none":
        return {}
    rung, rungs = input.min_steps or max(1, input.max_steps // 9), []
    while rung < input.max_steps:
        rungs.append(rung)
        rung *= ETA
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    stops = {}
    for rung in rungs:
        values = []
        for trial in finished:
            reached = sorted(step for step in trial.intermediate_values if step >= rung)
            if reached:
                values.append(trial.intermediate_values[reached[0]])
        if len(values) >= ETA:
            stops[rung] = sorted(values)[len(values) // ETA - 1]
    return stops


def stop_rule(stops: dict[int, float] | None) -> Callable[[int, float], bool] | None:
    """A ``run_trial`` report callback: True (stop) at the first validation point at or past a rung where the
    loss is above that rung's cutoff (or not finite); None without cutoffs."""
    if not stops:
        return None
    pending = sorted(stops)

    def report(step: int, val_loss: float) -> bool:
        while pending and step >= pending[0]:
            if not val_loss <= stops[pending.pop(0)]:
                return True
        return False

    return report


def _batch_size(batch: int, left: int, input, spent: int) -> int:
    """Trials to ask now: the batch, no more than are left, and no more than the step budget still pays
    for at full length (a batch may overshoot the budget by under one trial)."""
    if left <= 0:
        return 0
    size = min(batch, left)
    if input.total_steps is not None:
        remaining = input.total_steps - spent
        if remaining <= 0:
            return 0
        size = min(size, math.ceil(remaining / input.max_steps))
    return size


def _configure(trial: optuna.Trial, suggest: Callable) -> TrialConfig:
    config = suggest(trial)
    trial.set_user_attr("config", config.model_dump(mode="json"))
    trial.set_user_attr("source", trial.user_attrs.get("source", "sampler"))
    return config


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialResult | OptimizationError,
          state: dict[str, int], pruner: str) -> None:
    """One result back into the study: COMPLETE, PRUNED (stopped at a rung, or diverged) or FAIL (its error)."""
    if isinstance(outcome, OptimizationError):
        trial.set_user_attr("error", str(outcome))
        study.tell(trial, state=TrialState.FAIL)
        return
    steps = 0 if outcome.from_store else outcome.steps_run  # read back: no step trained for it now
    state["spent"] += steps
    trial.set_user_attr("steps", steps)
    if outcome.from_store:
        trial.set_user_attr("read_back", True)
    last = outcome.val_losses[-1] if outcome.val_losses else math.nan
    trial.set_user_attr("last_val_loss", last if math.isfinite(last) else None)
    for step, loss in zip(outcome.val_steps, outcome.val_losses, strict=True):
        if math.isfinite(loss):
            trial.report(loss, step)
    if outcome.diverged or outcome.pruned:
        why = (f"divergence ({outcome.divergence_reason})" if outcome.diverged else
               f"{pruner} pruner (its cutoff at step {outcome.steps_run}, applied on the worker)")
        trial.set_user_attr("pruned_by", why)
        study.tell(trial, state=TrialState.PRUNED)
        return
    if not math.isfinite(outcome.final_val_loss):
        trial.set_user_attr("error", f"final validation loss {outcome.final_val_loss}")
        study.tell(trial, state=TrialState.FAIL)
        return
    study.tell(trial, outcome.final_val_loss)
