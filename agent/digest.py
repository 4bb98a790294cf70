"""What the planner sees: the probe results boiled down to the numbers a decision needs.

Only deterministic quantities go in (learning rates, batch sizes, losses, memory by tensor
accounting, gradient findings); no wall-clock figures, so a recorded LM conversation replays
byte for byte on any machine.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainopt.tools.trial_config import TrialConfig


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
