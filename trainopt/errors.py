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
