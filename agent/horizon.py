"""The horizon H: which training run a recommendation is for, and compute counted in training examples.

A recommendation is for the user's run of H training examples: epochs x the training set, or steps at
the baseline's batch; by default the workload's own length (its ``default_config`` steps, or epochs, at
its default batch). A configuration with batch B trains H / B steps of it, so a larger batch trains
fewer steps and is never free. Every budget and every cost of a run is counted in *baseline steps*,
training examples divided by the baseline's batch, which is what ``step_budget`` means:

    cost(config) = config.steps * config.batch_size / baseline_batch

The best LR falls as the horizon grows (Wu et al. 2018, short-horizon bias; Bjorck et al., ICLR 2025:
LR*(D) = B D^-beta across horizons D); ``lr_exponent`` fits beta on two of the run's own horizons.

Examples:
    >>> h = Horizon(examples=19200, baseline_batch=64, stated=False, how="the workload's own length")
    >>> h.baseline_steps, h.steps_at(256), h.text(256)
    (300, 75, 'H = 19,200 training examples (75 steps at batch 256)')
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from trainopt.tools.trial_config import TrialConfig

DEFAULT_STEPS = 300  # a workload that names no length: TrialConfig's default steps at its batch
CONFIRM_EVALS = 25  # validation points of a run at a claim's length
LR_EXPONENT_RANGE = (0.0, 1.0)  # beta of LR*(D) ~ D^-beta, clipped to this


class Horizon(BaseModel):
    """The user's training run, in training examples."""

    examples: int = Field(gt=0, description="H: training examples of the user's run (epochs x training set)")
    baseline_batch: int = Field(gt=0, description="the baseline's batch: H / baseline_batch baseline steps")
    stated: bool = Field(description="the user gave H (train_steps or epochs); else the workload's own length")
    how: str = Field(description="where H came from, in words")

    @property
    def baseline_steps(self) -> int:
        return self.steps_at(self.baseline_batch)

    def steps_at(self, batch: int) -> int:
        """Optimizer steps of the run at ``batch``."""
        return steps_for(self.examples, batch)

    def text(self, batch: int | None = None) -> str:
        batch = batch or self.baseline_batch
        return f"H = {self.examples:,} training examples ({self.steps_at(batch)} steps at batch {batch})"

    def assumed_note(self) -> str | None:
        """The first line of an answer whose H the user did not state."""
        if self.stated:
            return None
        return (f"recommended for {self.text()}: {self.how}; set your own run's length with --train-steps N "
                "(steps at the baseline's batch) or --epochs E (request fields train_steps / epochs)")


def resolve_horizon(train_steps: int | None, epochs: float | None, default_config: dict, num_train: int,
                    baseline_batch: int) -> Horizon:
    """H from the request (``train_steps`` at the baseline batch, or ``epochs``), else the workload's own length."""
    if epochs is not None:
        return Horizon(examples=max(1, round(epochs * num_train)), baseline_batch=baseline_batch, stated=True,
                       how=f"{epochs:g} epochs of {num_train:,} training examples")
    if train_steps is not None:
        return Horizon(examples=train_steps * baseline_batch, baseline_batch=baseline_batch, stated=True,
                       how=f"{train_steps} steps at the baseline's batch {baseline_batch}")
    if "epochs" in default_config:
        epochs = float(default_config["epochs"])
        return Horizon(examples=max(1, round(epochs * num_train)), baseline_batch=baseline_batch, stated=False,
                       how=f"the workload's own length, {epochs:g} epochs")
    steps = int(default_config.get("steps", DEFAULT_STEPS))
    return Horizon(examples=steps * baseline_batch, baseline_batch=baseline_batch, stated=False,
                   how=f"the workload's own length, {steps} steps at its batch {baseline_batch}")


def steps_for(examples: float, batch: int) -> int:
    """Optimizer steps that train ``examples`` training examples at ``batch``: examples / batch, at least 1."""
    return max(1, round(examples / batch))


def cost(config: TrialConfig, baseline_batch: int) -> float:
    """Baseline steps a trial of ``config`` spends: its training examples / the baseline's batch."""
    return config.steps * config.batch_size / baseline_batch


def at_examples(config: TrialConfig, baseline_steps: float, baseline_batch: int, seed: int | None = None,
                evals: int | None = CONFIRM_EVALS) -> TrialConfig:
    """``config`` trained on the examples of ``baseline_steps`` steps at ``baseline_batch``: its own steps are
    examples / its batch; warmup keeps its share; ``evals`` validation points (None: the default)."""
    steps = steps_for(baseline_steps * baseline_batch, config.batch_size)
    warmup = min(steps - 1, round(config.warmup_steps / config.steps * steps))
    update = {"steps": steps, "warmup_steps": warmup, "seed": config.seed if seed is None else seed}
    if evals is not None:
        update["eval_every"] = max(1, steps // evals)
    return config.model_copy(update=update)


def lr_exponent(short: float, short_lr: float, long: float, long_lr: float) -> float:
    """beta of LR*(D) = B D^-beta through two horizons and their best LRs, clipped to LR_EXPONENT_RANGE:
    beta = log(lr_short / lr_long) / log(D_long / D_short).

    Examples:
        >>> round(lr_exponent(30, 4e-3, 120, 2e-3), 3)
        0.5
    """
    if long <= short or short_lr <= 0 or long_lr <= 0:
        raise ValueError(f"need long > short and positive LRs but got {short=}, {long=}, {short_lr=}, {long_lr=}")
    beta = math.log(short_lr / long_lr) / math.log(long / short)
    low, high = LR_EXPONENT_RANGE
    return min(max(beta, low), high)
