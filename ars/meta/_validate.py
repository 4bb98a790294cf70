"""Argument checks shared by the meta-optimizers: each raises ValueError naming the bad value."""

from __future__ import annotations

import math
from typing import Any


def require_positive(**values: float) -> None:
    """Raise ValueError naming the first value that is not a finite number > 0."""
    for key, value in values.items():
        if not _is_number(value) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number > 0 but got {key}={value!r}")


def require_non_negative(**values: float) -> None:
    """Raise ValueError naming the first value that is not a finite number >= 0."""
    for key, value in values.items():
        if not _is_number(value) or not value >= 0 or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number >= 0 but got {key}={value!r}")


def require_int(minimum: int, **values: int) -> None:
    """Raise ValueError naming the first value that is not an int >= minimum."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{key} must be an int >= {minimum} but got {key}={value!r}")


def require_open_unit(**values: float) -> None:
    """Raise ValueError naming the first value not in (0, 1)."""
    for key, value in values.items():
        if not _is_number(value) or not 0 < value < 1:
            raise ValueError(f"{key} must be in (0, 1) but got {key}={value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
