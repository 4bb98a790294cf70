"""The one error type trainopt raises at its boundary, with a subclass per kind (docs/architecture.md).

Expected outcomes of a measurement are not errors: a diverging run is a ``TrialResult`` with
``diverged=True``. Out of memory is a ``ResourceError``, a bad setting a ``HyperparameterError``,
an unusable loss a ``ConvergenceError``. Anything else a workload's code raises (a bug in the model,
the loss, the data) is a ``WorkloadError`` naming the workload and the phase, chained to the original
exception (``raise ... from``) so its traceback is kept: never a note or a measurement.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Literal

ErrorType = Literal["hyperparameter", "resource", "convergence", "workload"]
_TYPES = ("hyperparameter", "resource", "convergence", "workload")


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


class RecordingFormatError(HyperparameterError):
    """A recording to replay is of another format than this trainopt replays (agent/record.py
    RECORDING_FORMAT): ``details`` names both formats and both trainopt versions."""


class ResourceError(OptimizationError):
    """Memory, time or device limits cannot be met."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "resource", details)


class ConvergenceError(OptimizationError):
    """Training diverged or the loss is not usable (NaN, not a scalar)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "convergence", details)


class WorkloadError(OptimizationError):
    """The workload's own code raised (a bug, not a measurement): ``details`` names the workload, the
    phase ("build model", "optimizer", "data", "forward/loss", "backward", "validation", ...) and the
    innermost frame; the original exception is the ``__cause__``. Build one with ``from_exception``.

    Agent loops must let it through (it is not an observation): catch it before OptimizationError.

    Examples:
        >>> try:
        ...     {}["x"]
        ... except KeyError as e:
        ...     error = WorkloadError.from_exception("custom", "forward/loss", e)
        >>> error.workload, error.phase
        ('custom', 'forward/loss')
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, "workload", details)

    @property
    def workload(self) -> str | None:
        return self.details.get("workload")

    @property
    def phase(self) -> str | None:
        return self.details.get("phase")

    @classmethod
    def from_exception(cls, workload: str, phase: str, error: BaseException) -> WorkloadError:
        """``workload`` raised ``error`` during ``phase``: message with the exception and where it was raised;
        ``details["traceback"]`` holds the formatted traceback. Raise it ``from error``."""
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
        return cls(
            f"workload {workload!r} raised {type(error).__name__} during {phase}{where}: {error}",
            {"workload": workload, "phase": phase, "error": repr(error),
             "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))},
        )


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
