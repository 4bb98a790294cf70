"""Workloads: a model factory, data, a loss and an optional metric, registered by name.

Built-ins are registered lazily (their data loads on first use); ``register_workload`` adds
your own so the CLI and the agent can find it by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from trainopt.errors import HyperparameterError
from trainopt.tools.workloads.base import Workload

DEFAULT_WORKLOAD = "digits-mlp"

# name -> "module:function" of a zero-argument factory returning a Workload
_BUILTINS = {
    "digits-mlp": "trainopt.tools.workloads.digits:digits_mlp",
    "digits-cnn": "trainopt.tools.workloads.digits:digits_cnn",
    "char-gpt": "trainopt.tools.workloads.char:char_gpt",
    "moe-digits": "trainopt.tools.workloads.moe:moe_digits",
    "diffusion-2d": "trainopt.tools.workloads.diffusion_2d:diffusion_2d",
}
_REGISTRY: dict[str, Callable[[], Workload]] = {}
_CACHE: dict[str, Workload] = {}
_FACTORY_SPECS: dict[str, str] = {}  # workload name -> the "module:function" it was built from


def register_workload(name: str, factory: Callable[[], Workload]) -> None:
    """Register ``factory`` (no arguments -> Workload) under ``name``; replaces a previous one."""
    _REGISTRY[name] = factory
    _CACHE.pop(name, None)


def workload_names() -> list[str]:
    return sorted({*_BUILTINS, *_REGISTRY})


def get_workload(name: str | Workload) -> Workload:
    """The workload registered as ``name`` (built once, then cached); a Workload passes through."""
    if isinstance(name, Workload):
        return name
    if name not in _CACHE:
        if name in _REGISTRY:
            factory = _REGISTRY[name]
        elif name in _BUILTINS:
            module, function = _BUILTINS[name].split(":")
            factory = getattr(importlib.import_module(module), function)
        elif ":" in name:  # a user's importable factory: how worker processes build the same workload
            factory = _import_factory(name)
        else:
            raise HyperparameterError(
                f"unknown workload {name!r}; known workloads: {', '.join(workload_names())}",
                {"workload": name},
            )
        _CACHE[name] = factory()
        if ":" in name:
            _FACTORY_SPECS[_CACHE[name].name] = name
    return _CACHE[name]


def factory_spec(name: str) -> str | None:
    """The "module:function" a workload named ``name`` was built from, if it was built from one."""
    return _FACTORY_SPECS.get(name)


def _import_factory(spec: str) -> Callable[[], Workload]:
    module, _, function = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as error:
        raise HyperparameterError(
            f"workload factory {spec!r} could not be imported ({error}); give 'module:function' of a "
            "zero-argument function returning a Workload, importable here (PYTHONPATH)",
            {"workload": spec},
        ) from error


def describe_workloads() -> list[dict[str, Any]]:
    """One row per registered workload, for ``trainopt workloads``."""
    return [get_workload(name).describe() for name in workload_names()]


__all__ = ["DEFAULT_WORKLOAD", "Workload", "describe_workloads", "factory_spec", "get_workload",
           "register_workload", "workload_names"]
