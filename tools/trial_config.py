"""TrialConfig: everything that defines one probe trial, validated at the boundary."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainopt.errors import HyperparameterError

OptimizerName = Literal["adamw", "adam", "sgd", "ars", "schedulefree", "prodigy"]
ScheduleName = Literal["constant", "cosine", "warmup_cosine", "one_cycle", "step"]


class TrialConfig(BaseModel):
    """One training configuration. Invalid values raise ``HyperparameterError`` naming the value.

    Examples:
        >>> TrialConfig(lr=3e-3, batch_size=32).optimizer
        'adamw'
        >>> TrialConfig(lr=-1)
        Traceback (most recent call last):
        ...
        trainopt.errors.HyperparameterError: [hyperparameter] invalid trial configuration: lr=-1: ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: OptimizerName = Field("adamw", description="base optimizer")
    optimizer_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments for the optimizer, e.g. betas"
    )
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled (AdamW) or L2 (SGD) weight decay")
    batch_size: int = Field(64, gt=0, description="training examples per step")
    schedule: ScheduleName = Field("constant", description="learning-rate schedule over `steps`")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps (constant, cosine, warmup_cosine)")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to this value")
    meta_optimizer: str | None = Field(None, description="a name from trainopt.ars.meta.META_OPTIMIZERS")
    meta_kwargs: dict[str, Any] = Field(default_factory=dict, description="meta-optimizer arguments")
    seed: int = Field(0, ge=0, description="seeds model init and data order")
    steps: int = Field(300, gt=0, description="optimizer steps")
    eval_every: int | None = Field(None, gt=0, description="validate every N steps (default: steps // 10)")

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise HyperparameterError(f"invalid trial configuration: {_describe(error)}", data) from None

    @model_validator(mode="after")
    def _consistent(self) -> TrialConfig:
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        if self.meta_optimizer is not None:
            known = _meta_optimizer_names()
            if self.meta_optimizer not in known:
                raise ValueError(f"unknown meta_optimizer={self.meta_optimizer!r}; known: {known}")
            if self.schedule != "constant":
                raise ValueError(
                    f"a meta-optimizer sets the LR itself: use schedule='constant', not {self.schedule!r}"
                )
        if self.optimizer == "schedulefree" and self.schedule != "constant":
            raise ValueError(f"schedule-free AdamW needs no schedule: use 'constant', not {self.schedule!r}")
        return self

    @property
    def validate_every(self) -> int:
        return self.eval_every or max(1, self.steps // 10)

    def key(self) -> str:
        """A stable hash of the configuration (sorted JSON), used to find a stored trial."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _meta_optimizer_names() -> list[str]:
    try:
        from trainopt.ars.meta import META_OPTIMIZERS
    except ImportError:
        return []
    return sorted(META_OPTIMIZERS)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}={item['input']!r}: {message}" if where else message)
    return "; ".join(parts)
