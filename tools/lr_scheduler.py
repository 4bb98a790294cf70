"""LearningRateScheduler: an LR range test, a peak LR read off it, and a schedule picked by short trials.

1. ``lr_range_test``: exponential sweep (at most 100 steps), EMA-smoothed, stopped at divergence.
2. The peak LR by the default rule (``DEFAULT_RULE``, the winner of bench/lr_rules.py: the rule
   that lands within 2x of the best LR of a small grid on the most built-in workloads, ties broken by
   the mean distance); all three rules' values are reported. The suggestion lies in the reported safe
   range (``lr_suggest.suggest_lr_in_range``): the range reaches down to it, and it is lowered to the
   LR of the smoothed minimum if it is above it.
3. Candidate schedules for the step budget (constant and cosine with a linear warmup, one-cycle),
   each checked with a short trial (``run_trial``) at the peak LR; the lowest validation loss wins.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, Field

from trainopt.errors import ConvergenceError
from trainopt.tools.base import Tool
from trainopt.tools.lr_range import MAX_SWEEP_STEPS, LRRangeResult, lr_range_test
from trainopt.tools.lr_suggest import RULES, Rule, suggest_lr, suggest_lr_in_range
from trainopt.tools.optim_factory import build_scheduler
from trainopt.tools.probe_setup import probe_config
from trainopt.tools.trial_config import OptimizerName, TrialConfig
from trainopt.tools.trials import TrialResult, run_trial

# Measured by bench/lr_rules.py (docs/benchmarks/lr_rules.md): valley and steepest each landed
# within 2x of the best grid LR on 2 of 4 built-in workloads; valley was closer on average (mean
# |log2(rule / best)| 1.38 vs 1.92) and always on the low, stable side. Rerun the bench to update.
DEFAULT_RULE: Rule = "valley"
RULE_REASONS = {
    "steepest": "the LR where the smoothed loss falls fastest",
    "valley": "fastai's valley: partway down the longest decreasing stretch of the smoothed loss",
    "minimum": "a tenth of the LR at the lowest smoothed loss",
}
ScheduleChoice = Literal["constant", "cosine", "one_cycle"]
ONE_CYCLE_WARMUP = 0.3  # torch OneCycleLR's pct_start


class LRSchedulerInput(BaseModel):
    min_lr: float = Field(1e-6, gt=0, description="first LR of the range test")
    max_lr: float = Field(1.0, gt=0, description="last LR of the range test (must be > min_lr)")
    range_steps: int = Field(MAX_SWEEP_STEPS, ge=2, le=MAX_SWEEP_STEPS, description="steps of the sweep")
    rule: Rule = Field(DEFAULT_RULE, description="how the peak LR is read off the sweep")
    budget_steps: int = Field(300, gt=1, description="training steps the schedule is made for")
    check_steps: int = Field(100, gt=1, description="length of each schedule-checking trial (<= budget)")
    schedules: list[ScheduleChoice] = Field(["constant", "cosine", "one_cycle"],
                                            min_length=1, description="candidate schedules to check")
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="linear warmup, fraction of the steps")
    optimizer: OptimizerName | None = Field(None, description="default: the workload's optimizer")
    batch_size: int | None = Field(None, gt=0, description="default: the workload's batch size")
    seed: int = Field(0, ge=0)


class ScheduleCheck(BaseModel):
    """One candidate schedule, measured by a short trial."""

    schedule: ScheduleChoice
    peak_lr: float
    warmup_steps: int = Field(description="warmup steps in the check trial")
    steps: int
    final_val_loss: float
    final_val_metric: float | None
    diverged: bool


class LRSchedulerOutput(BaseModel):
    sweep: LRRangeResult
    suggestions: dict[str, float] = Field(description="peak LR every rule reads off the curve")
    rule: Rule
    rule_reason: str
    suggested_lr: float = Field(description="the rule's reading, at most the LR of the loss's minimum")
    safe_range: tuple[float, float] = Field(
        description="(the lower of the suggestion and where the loss has made 10% of its drop, the loss's "
                    "minimum): holds suggested_lr")
    checks: list[ScheduleCheck]
    schedule: ScheduleChoice = Field(description="the candidate with the lowest measured val loss")
    schedule_reason: str
    peak_lr: float = Field(description="peak LR of the recommended schedule (may be below the suggestion "
                                       "if every candidate diverged at it)")
    budget_steps: int
    warmup_steps: int = Field(description="warmup steps for the full budget")
    final_lr: float = Field(description="LR at the last step of the budget")
    lr_curve: list[float] = Field(description="LR at every step of the budget")
    config: dict = Field(description="TrialConfig fields of the recommendation")


class LearningRateScheduler(Tool):
    """LR range test -> peak LR -> schedule for the step budget, picked by measured val loss.

    Examples:
        >>> tool = LearningRateScheduler("digits-mlp")
        >>> out = tool(range_steps=40, check_steps=30, budget_steps=100)    # doctest: +SKIP
        >>> out.safe_range[0] <= out.suggested_lr <= out.safe_range[1]        # doctest: +SKIP
        True
    """

    name = "learning_rate_scheduler"
    description = ("LR range test (exponential sweep, smoothed loss, stops at divergence), the suggested "
                   "peak LR with the rule used, the safe LR range, and a warmup + cosine / one-cycle / "
                   "constant schedule for a step budget, checked with short training runs.")
    Input = LRSchedulerInput
    Output = LRSchedulerOutput

    def run(self, input: LRSchedulerInput) -> LRSchedulerOutput:
        check_steps = min(input.check_steps, input.budget_steps)
        total = input.range_steps + len(input.schedules) * check_steps

        def sweep_progress(done: int, _: int) -> None:
            if self.progress is not None:
                self.progress(done, total)

        sweep = lr_range_test(self.workload, min_lr=input.min_lr, max_lr=input.max_lr,
                              steps=input.range_steps, optimizer=input.optimizer,
                              batch_size=input.batch_size, seed=input.seed,
                              device=self.device, progress=sweep_progress)
        suggestions = {rule: suggest_lr(sweep, rule) for rule in RULES}
        suggested, safe_range = suggest_lr_in_range(sweep, input.rule)
        peak = suggested
        checks = self._check(input, peak, check_steps, input.range_steps, total)
        if all(c.diverged for c in checks):  # one retry at a third of the LR, then give up
            peak /= 3
            checks = self._check(input, peak, check_steps, input.range_steps, total)
        if all(c.diverged for c in checks):
            raise ConvergenceError(
                f"every schedule diverged on {self.workload.name!r} at peak lr={peak * 3:.3g} and {peak:.3g}",
                {"peak_lr": peak, "schedules": input.schedules})
        best = min((c for c in checks if not c.diverged), key=lambda c: c.final_val_loss)
        config = self._config(input, best.schedule, peak, input.budget_steps)
        curve = lr_trajectory(config)
        others = ", ".join(f"{c.schedule} {c.final_val_loss:.4g}" for c in checks if c is not best)
        return LRSchedulerOutput(
            sweep=sweep, suggestions=suggestions, rule=input.rule,
            rule_reason=f"{RULE_REASONS[input.rule]}"
                        + (" (the default rule, chosen by measurement: docs/benchmarks/lr_rules.md)"
                           if input.rule == DEFAULT_RULE else " (asked for)")
                        + (f"; lowered from {suggestions[input.rule]:.3g} to the LR of the loss's minimum"
                           if suggested < suggestions[input.rule] else ""),
            suggested_lr=suggested, safe_range=safe_range, checks=checks,
            schedule=best.schedule,
            schedule_reason=f"lowest val loss after {check_steps}-step trials: {best.final_val_loss:.4g} "
                            f"(vs {others or 'no other candidate'})",
            peak_lr=peak, budget_steps=input.budget_steps,
            warmup_steps=_warmup_steps(best.schedule, input.warmup_fraction, input.budget_steps),
            final_lr=curve[-1], lr_curve=curve,
            config=config.model_dump(include={"optimizer", "lr", "batch_size", "schedule", "warmup_steps",
                                              "steps"}),
        )

    def plot(self, output: LRSchedulerOutput, path) -> None:
        from trainopt.tools.plots import plot_lr_range

        plot_lr_range(output, path)

    def _config(self, input: LRSchedulerInput, schedule: ScheduleChoice, peak: float,
                steps: int) -> TrialConfig:
        warmup = 0 if schedule == "one_cycle" else _warmup_steps(schedule, input.warmup_fraction, steps)
        return probe_config(self.workload, optimizer=input.optimizer, batch_size=input.batch_size,
                            seed=input.seed, lr=peak, schedule=schedule, warmup_steps=warmup, steps=steps)

    def _check(self, input, peak, steps, offset, total) -> list[ScheduleCheck]:
        checks = []
        for k, schedule in enumerate(input.schedules):
            config = self._config(input, schedule, peak, steps)
            start = offset + k * steps

            def progress(done: int, _: int, start: int = start) -> None:
                if self.progress is not None:
                    self.progress(start + done, total)

            result = self._trial(config, progress)
            checks.append(ScheduleCheck(
                schedule=schedule, peak_lr=peak, steps=steps,
                warmup_steps=_warmup_steps(schedule, input.warmup_fraction, steps),
                final_val_loss=result.final_val_loss, final_val_metric=result.final_val_metric,
                diverged=result.diverged or not math.isfinite(result.final_val_loss),
            ))
        return checks

    def _trial(self, config: TrialConfig, progress) -> TrialResult:
        if self.store is not None:
            return self.store.run(self.workload, config, device=str(self.device), progress=progress)
        return run_trial(self.workload, config, device=self.device, progress=progress)


def _warmup_steps(schedule: ScheduleChoice, fraction: float, steps: int) -> int:
    """Linear warmup for constant/cosine (``fraction`` of the steps); one-cycle's own 30% ramp."""
    share = ONE_CYCLE_WARMUP if schedule == "one_cycle" else fraction
    return min(steps - 1, round(share * steps))


def lr_trajectory(config: TrialConfig) -> list[float]:
    """The LR at every step of ``config``, from the same scheduler code the trials use."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    curve = []
    for _ in range(config.steps):
        curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return curve
