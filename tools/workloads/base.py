"""A workload: what a probe trains. A model factory, data, a loss and an optional metric."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainopt.errors import HyperparameterError, WorkloadError

# A batch is whatever the loss function takes: a tuple of tensors for built-in workloads.
Batch = Any
# Data is either a tuple of tensors indexed along dim 0 (fast path) or a torch Dataset.
Data = Sequence[torch.Tensor] | Dataset


@dataclass
class Workload:
    """A trainable problem the tools and the agent can probe.

    Examples:
        >>> import torch
        >>> x, y = torch.randn(64, 3), torch.randn(64, 1)
        >>> w = Workload.from_callables(lambda: torch.nn.Linear(3, 1), (x, y), (x, y),
        ...                             lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]))
        >>> w.name, w.num_train, w.num_test
        ('custom', 64, 0)

    ``test_data`` (optional, the same forms as ``val_data``) is a split that nothing selects on:
    every choice reads validation; a trial measures its final model once on test
    (``TrialResult.final_test_loss``), for confirmation and benchmark scores.
    """

    name: str
    make_model: Callable[[], nn.Module]
    train_data: Data
    val_data: Data
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor]  # (model, batch) -> scalar loss
    metric_fn: Callable[[nn.Module, Batch], float] | None = None  # batch mean of the metric
    metric_name: str = "metric"
    higher_is_better: bool = True
    default_config: dict[str, Any] = field(default_factory=dict)  # TrialConfig overrides
    exercises: str = "a user model"  # one line for `trainopt workloads`
    # (model, lr, weight_decay) -> optimizer param groups; None means one group of all parameters
    param_groups: Callable[[nn.Module, float, float], list[dict]] | None = None
    test_data: Data | None = None  # held out from every choice: read once per trial, by no selection
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        splits = (("training", self.train_data), ("validation", self.val_data), ("test", self.test_data))
        for split, data in splits:
            # found here, at the boundary, not as an odd batch size deep in a run; test data is optional
            if data is not None and _length(data) == 0:
                raise WorkloadError(f"workload {self.name!r} has no {split} examples: nothing to train or measure",
                                    {"workload": self.name, "phase": "data"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "_fingerprint":  # a changed field is a changed workload
            object.__setattr__(self, "_fingerprint", None)
        object.__setattr__(self, name, value)

    def fingerprint(self) -> str:
        """This workload's identity (model, data, loss/metric code, versions) as a short hash.

        Computed once per instance (it builds the model once and hashes the data); assigning a
        field recomputes it. Stored trials and tool outputs are keyed by it, so a changed model,
        dataset or loss is measured again and an unchanged one is read back. What it covers and
        what it cannot see: ``trainopt.tools.fingerprint``.

        Examples:
            >>> import torch
            >>> x, y = torch.randn(8, 3), torch.randn(8, 1)
            >>> loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])
            >>> a = Workload.from_callables(lambda: torch.nn.Linear(3, 1), (x, y), (x, y), loss)
            >>> b = Workload.from_callables(lambda: torch.nn.Linear(3, 1), (x, 2 * y), (x, y), loss)
            >>> a.fingerprint() == b.fingerprint()
            False
        """
        if self._fingerprint is None:
            from trainopt.tools.fingerprint import workload_fingerprint

            object.__setattr__(self, "_fingerprint", workload_fingerprint(self))
        return self._fingerprint

    @classmethod
    def from_callables(
        cls,
        model_fn: Callable[[], nn.Module],
        train_data: Data,
        val_data: Data,
        loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
        metric_fn: Callable[[nn.Module, Batch], float] | None = None,
        *,
        name: str = "custom",
        metric_name: str = "metric",
        higher_is_better: bool = True,
        default_config: dict[str, Any] | None = None,
        test_data: Data | None = None,
    ) -> Workload:
        """A user's own model as a workload: the same probes run on it as on the built-ins.

        ``test_data`` (optional) is scored once at the end of every trial and selects nothing."""
        return cls(
            name=name,
            make_model=model_fn,
            train_data=train_data,
            val_data=val_data,
            loss_fn=loss_fn,
            metric_fn=metric_fn,
            metric_name=metric_name,
            higher_is_better=higher_is_better,
            default_config=dict(default_config or {}),
            test_data=test_data,
        )

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.loss_fn(model, batch)

    @property
    def num_train(self) -> int:
        return _length(self.train_data)

    @property
    def num_val(self) -> int:
        return _length(self.val_data)

    @property
    def num_test(self) -> int:
        """Examples in the test split; 0 without one."""
        return 0 if self.test_data is None else _length(self.test_data)

    def describe(self) -> dict[str, Any]:
        """One row of ``trainopt workloads``."""
        with torch.random.fork_rng():  # building the model must not move the caller's RNG
            parameters = sum(p.numel() for p in self.make_model().parameters())
        sizes = [self.num_train, self.num_val] + ([self.num_test] if self.test_data is not None else [])
        return {
            "name": self.name,
            "parameters": parameters,
            "data": " / ".join(f"{n:,}" for n in sizes),  # train / val[ / test]
            "metric": self.metric_name if self.metric_fn else None,
            "exercises": self.exercises,
        }

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        """Endless shuffled training batches; reshuffled every epoch with ``generator``.

        Fewer examples than ``batch_size`` (no full batch: the stream would never yield) is an error:
        a WorkloadError for an empty set, a HyperparameterError for a batch larger than the set."""
        data = self.train_data
        n = self.num_train
        if n == 0:
            raise WorkloadError(f"workload {self.name!r} has no training examples: nothing to train",
                                {"workload": self.name, "phase": "data"})
        if batch_size > n:
            raise HyperparameterError(f"batch_size={batch_size} exceeds the {n} training examples of {self.name!r}",
                                      {"batch_size": batch_size})
        if _is_tensor_tuple(data):
            tensors = [t.to(device) for t in data]
            n = len(tensors[0])
            while True:
                order = torch.randperm(n, generator=generator).to(device)
                for start in range(0, n - batch_size + 1, batch_size):  # drop the last partial batch
                    index = order[start : start + batch_size]
                    yield tuple(t[index] for t in tensors)
        else:
            loader = DataLoader(
                data, batch_size=batch_size, shuffle=True, generator=generator, drop_last=True
            )
            while True:
                for batch in loader:
                    yield _to_device(batch, device)

    def val_batches(self, device: torch.device, batch_size: int = 1024) -> Iterator[tuple[Batch, int]]:
        """The validation set in fixed order, as (batch, number of examples)."""
        return _fixed_batches(self.val_data, device, batch_size)

    def test_batches(self, device: torch.device, batch_size: int = 1024) -> Iterator[tuple[Batch, int]]:
        """The test set in fixed order, as (batch, number of examples); nothing without test data."""
        return _fixed_batches(self.test_data, device, batch_size) if self.test_data is not None else iter(())


def _fixed_batches(data: Data, device: torch.device, batch_size: int) -> Iterator[tuple[Batch, int]]:
    """``data`` in fixed order, as (batch, number of examples)."""
    if _is_tensor_tuple(data):
        n = len(data[0])
        for start in range(0, n, batch_size):
            batch = tuple(t[start : start + batch_size].to(device) for t in data)
            yield batch, len(batch[0])
    else:
        for batch in DataLoader(data, batch_size=batch_size):
            first = batch[0] if isinstance(batch, list | tuple) else batch
            yield _to_device(batch, device), len(first)


def _is_tensor_tuple(data: Data) -> bool:
    return isinstance(data, list | tuple) and all(isinstance(t, torch.Tensor) for t in data)


def _length(data: Data) -> int:
    return len(data[0]) if _is_tensor_tuple(data) else len(data)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch
