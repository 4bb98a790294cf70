"""What every probe tool is: a name, a description, pydantic Input/Output and ``run``.

A tool is bound to a workload and a device when it is built, and takes its settings as a
validated ``Input``. Calling it with keyword arguments validates them at the boundary:

    >>> from trainopt.tools import get_tool
    >>> tool = get_tool("learning_rate_scheduler")(workload="digits-mlp")   # doctest: +SKIP
    >>> tool(max_steps=60).suggested_lr                                         # doctest: +SKIP
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ValidationError

from trainopt.errors import HyperparameterError
from trainopt.tools.store import TrialStore
from trainopt.tools.trials import ProgressFn, resolve_device
from trainopt.tools.workloads import DEFAULT_WORKLOAD, Workload, get_workload


class Tool(ABC):
    """Base class of the probe tools: name, description, pydantic Input and Output, run (docs/tools.md)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]

    def __init__(
        self,
        workload: Workload | str = DEFAULT_WORKLOAD,
        device: str | torch.device = "auto",
        store: TrialStore | None = None,
        progress: ProgressFn | None = None,
    ):
        self.workload = get_workload(workload)
        self.device = resolve_device(device)
        self.store = store  # None: trials run without being stored
        self.progress = progress

    @abstractmethod
    def run(self, input: BaseModel) -> BaseModel:
        """Run the probe and return the tool's Output."""

    def __call__(self, **kwargs: Any) -> BaseModel:
        """Validate keyword arguments into ``Input`` (HyperparameterError on bad values), then run."""
        return self.run(parse_input(self.Input, kwargs, self.name))


def parse_input(model: type[BaseModel], values: dict[str, Any], where: str) -> BaseModel:
    """``model(**values)``, with pydantic errors turned into a HyperparameterError naming the value."""
    try:
        return model(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise HyperparameterError(f"invalid input for {where}: {problems}", values) from None
