"""Workloads: a model factory, data, a loss and an optional metric, registered by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, Callable[[], Any]] = {}


def register_workload(name: str, factory: Callable[[], Any]) -> None:
    """Register ``factory`` (no arguments -> Workload) under ``name``."""
    _REGISTRY[name] = factory


def workload_names() -> list[str]:
    return sorted(_REGISTRY)


def describe_workloads() -> list[dict[str, Any]]:
    """One row per registered workload, for ``trainopt workloads``."""
    return [_REGISTRY[name]().describe() for name in workload_names()]
