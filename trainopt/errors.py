"""The one error type trainopt raises at its boundary (see DESIGN.md, Contracts)."""

from __future__ import annotations

from typing import Any, Literal

ErrorType = Literal["hyperparameter", "resource", "convergence"]
_TYPES = ("hyperparameter", "resource", "convergence")


class OptimizationError(Exception):
    """A bad setting, a resource limit or a failed convergence, with the offending value.

    Examples:
        >>> raise OptimizationError("lr must be > 0 but got lr=-1", "hyperparameter", {"lr": -1})
        Traceback (most recent call last):
        ...
        trainopt.errors.OptimizationError: [hyperparameter] lr must be > 0 but got lr=-1
    """

    def __init__(self, message: str, type: ErrorType, details: dict[str, Any] | None = None):
        if type not in _TYPES:
            raise ValueError(f"OptimizationError type must be one of {_TYPES} but got {type=}")
        super().__init__(message)
        self.message = message
        self.type = type
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"[{self.type}] {self.message}"


class HyperparameterError(OptimizationError):
    """A configuration value is out of range or unknown."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "hyperparameter", details)


class ResourceError(OptimizationError):
    """Memory, time or device limits cannot be met."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "resource", details)


class ConvergenceError(OptimizationError):
    """Training diverged or the loss is not usable (NaN, not a scalar)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "convergence", details)


class Cancelled(KeyboardInterrupt):
    """The caller cancelled a running probe; raised at the next training step.

    Not an OptimizationError, and a KeyboardInterrupt on purpose: like Ctrl-C it passes every
    ``except Exception`` on its way out (``run_trial`` would otherwise report it as a failed
    training run, and the agent loop as an observation), and Optuna marks a trial it interrupts
    FAIL instead of leaving it RUNNING. The trial store only ever holds finished trials, so a
    cancelled trial leaves nothing behind in it.

    Examples:
        >>> raise Cancelled("learning_rate_scheduler", 12, 100)
        Traceback (most recent call last):
        ...
        trainopt.errors.Cancelled: learning_rate_scheduler cancelled after 12 of 100 steps
    """

    def __init__(self, what: str, steps_done: int = 0, steps_total: int = 0):
        super().__init__(f"{what} cancelled after {steps_done} of {steps_total} steps")
        self.what, self.steps_done, self.steps_total = what, steps_done, steps_total
