"""What the probe tools share when they run their own training loop (the LR range test, the batch
size search, the gradient analysis): the workload's default configuration with overrides, a fresh
model + optimizer + batch stream, and training failures turned into OptimizationError
(a bug in the workload: WorkloadError).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from trainopt.errors import ConvergenceError, OptimizationError, ResourceError, WorkloadError
from trainopt.tools.optim_factory import build_optimizer
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import is_out_of_memory
from trainopt.tools.workloads import Workload


def probe_config(workload: Workload, **overrides: Any) -> TrialConfig:
    """The workload's default TrialConfig with the non-None ``overrides`` applied."""
    values = {**workload.default_config, **{k: v for k, v in overrides.items() if v is not None}}
    return TrialConfig(**values)


def build_training(
    workload: Workload, config: TrialConfig, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer, Iterator]:
    """A freshly seeded model on ``device``, its optimizer and an endless shuffled batch stream."""
    torch.manual_seed(config.seed)
    model = workload.make_model().to(device)
    if not any(p.requires_grad for p in model.parameters()):
        raise WorkloadError(f"the model of {workload.name!r} has no trainable parameters (requires_grad=True)",
                            {"workload": workload.name, "phase": "build model"})
    optimizer = build_optimizer(model, workload, config)
    batches = workload.train_batches(config.batch_size, torch.Generator().manual_seed(config.seed), device)
    return model, optimizer, batches


def scalar_loss(workload: Workload, model: nn.Module, batch) -> torch.Tensor:
    """``workload.loss`` checked to be a scalar tensor; a bug in it is a WorkloadError (phase forward/loss)."""
    try:
        loss = workload.loss(model, batch)
    except OptimizationError:
        raise
    except Exception as error:
        if is_out_of_memory(error):
            raise  # training_errors makes it a ResourceError
        raise WorkloadError.from_exception(workload.name, "forward/loss", error) from error
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ConvergenceError(f"the loss of {workload.name!r} must be a scalar tensor but got {shape}",
                               {"loss": str(shape)})
    return loss


def require_finite_first_loss(workload: Workload, value: float, **context: Any) -> None:
    """A loss that is NaN or inf before any update means the model or data is broken, not the LR."""
    if not math.isfinite(value):
        where = ", ".join(f"{k}={v}" for k, v in context.items())
        raise ConvergenceError(
            f"the loss of {workload.name!r} is {value} at the first step ({where}), before any update: "
            "check the model, the data and the loss function",
            {"workload": workload.name, "first_loss": value, **context},
        )


@contextmanager
def training_errors(workload: Workload, device: torch.device, phase: str = "probe training", **context: Any):
    """Turn what a training loop raises into OptimizationError: out of memory -> ResourceError, any other
    exception -> WorkloadError naming ``phase`` (the original chained)."""
    try:
        yield
    except OptimizationError:
        raise
    except Exception as error:
        if not is_out_of_memory(error):  # a bug in the workload (or trainopt), not a measurement
            raise WorkloadError.from_exception(workload.name, phase, error) from error
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ResourceError(f"out of memory on {device} ({context}): {error}",
                            {"device": str(device), **context}) from error
