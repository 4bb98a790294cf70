"""What the planner sees: the probe results boiled down to the numbers a decision needs.

Only deterministic quantities go in (learning rates, batch sizes, losses, memory by tensor
accounting, gradient findings); no wall-clock figures, so a recorded LM conversation replays
byte for byte on any machine.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainopt.tools.trial_config import TrialConfig

UPWARD_CAP = 2.0  # mean LRs above this multiple of the range test's suggestion are not trusted from short runs
CAP_TOLERANCE = 1.01  # LRs are rounded to 3 significant figures: a capped LR may sit 0.5% above the cap
# mean of the LR multiplier over a run: 1 for constant; 1/2 for cosine (the integral of 0.5 (1 + cos)),
# about 1/2 for one_cycle (30% cosine warmup from peak/25, then cosine annealing to ~0); step: 1/2 + 1/40 + 1/400
MEAN_LR_FACTOR = {"constant": 1.0, "cosine": 0.5, "warmup_cosine": 0.5, "one_cycle": 0.5, "step": 0.5275}


def mean_lr(lr: float, schedule: str) -> float:
    """The average LR a schedule with peak ``lr`` applies over a run (what short-run progress tracks)."""
    return lr * MEAN_LR_FACTOR[schedule]


class ProbeDigest(BaseModel):
    """The evidence handed to the propose, refine and explain signatures."""

    model_config = ConfigDict(extra="forbid")

    workload: str
    parameters: int = Field(description="trainable parameters of the model")
    num_train: int = Field(description="training examples")
    metric_name: str | None = None
    steps_per_candidate: int = Field(description="optimizer steps each candidate is measured for")
    baseline: dict[str, Any] = Field(description="the default configuration every gain is measured against")
    optimizer_options: list[str]
    lr_suggested: float = Field(description="peak LR picked from the LR range test")
    lr_batch_size: int = Field(64, description="batch size the LR range test ran at (scale LRs from it)")
    lr_rule: str = Field(description="which range-test rule picked it, and why")
    lr_safe_range: tuple[float, float] = Field(description="LRs the range test trained without diverging")
    batch_range: tuple[int, int] = Field(description="allowed batch sizes: the request's range within memory")
    batch_recommended: int = Field(description="the batch-size probe's recommendation")
    batch_knee: int | None = Field(None, description="batch where throughput stops growing")
    batch_noise_scale: float | None = Field(None, description="critical batch from the gradient noise scale")
    lr_scaling_rule: str = Field("sqrt", description="how to scale LR with batch: linear or sqrt")
    grad_findings: list[str] = Field(default_factory=list, description="severity, layer, evidence, fix")
    grad_clip_suggested: float | None = Field(None, description="a percentile of measured gradient norms")
    memory_mb_at_batch: dict[int, float] = Field(default_factory=dict, description="peak MiB per batch size")

    def clip_batch(self, batch_size: int) -> int:
        """``batch_size`` moved inside the probed range (batch_range)."""
        low, high = self.batch_range
        return int(min(max(batch_size, low), high))

    def lr_at_batch(self, batch_size: int) -> float:
        """The range test's suggestion carried from its batch to ``batch_size`` by the probe's rule
        (linear: lr * b'/b, Goyal et al. 2017; sqrt: lr * sqrt(b'/b), Malladi et al. 2022)."""
        ratio = batch_size / self.lr_batch_size
        return self.lr_suggested * (ratio if self.lr_scaling_rule == "linear" else math.sqrt(ratio))

    def mean_lr_cap(self, batch_size: int) -> float:
        """Highest mean LR (over a run) worth measuring: UPWARD_CAP x the suggestion at that batch.

        Short runs favour aggressive LRs, so a short measurement cannot be trusted above it; the
        valley rule lands within 0.4-0.8x of the best grid LR on the built-ins (bench/lr_rules)."""
        return UPWARD_CAP * self.lr_at_batch(batch_size)


class MeasuredResult(BaseModel):
    """One measured candidate, as the refine signature sees it."""

    model_config = ConfigDict(extra="forbid")

    optimizer: str
    lr: float
    batch_size: int
    weight_decay: float
    schedule: str
    warmup_fraction: float
    grad_clip: float | None
    val_loss: float
    val_metric: float | None
    diverged: bool
    score: float = Field(description="objective relative to the baseline, lower is better (1.0 = baseline)")
    rejected: str | None = None

    @classmethod
    def from_config(cls, config: TrialConfig, **measured: Any) -> MeasuredResult:
        return cls(
            optimizer=config.optimizer,
            lr=config.lr,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            schedule=config.schedule,
            warmup_fraction=round(config.warmup_steps / config.steps, 4),
            grad_clip=config.grad_clip,
            **measured,
        )
