"""Peak training memory of one step, measured on the device the trial runs on.

CUDA: ``torch.cuda.max_memory_allocated`` over the step (the caching allocator's real peak).
CPU:  there is no allocator counter, so we account tensors: parameters + gradients + optimizer
      state + every tensor autograd saves for the backward pass (captured with
      ``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage). This is the
      memory a step needs on top of the interpreter, independent of allocator caching.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
CPU_METHOD = "tensor accounting: parameters + gradients + optimizer state + autograd-saved activations"
CUDA_METHOD = "torch.cuda.max_memory_allocated"


def _storage_bytes(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


@contextmanager
def saved_activation_bytes():
    """Collects the bytes autograd saves for backward inside the block: yields a one-item list."""
    seen: dict[int, int] = {}
    total = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            ptr, nbytes = _storage_bytes(tensor)
            if ptr not in seen:
                seen[ptr] = nbytes
                total[0] += nbytes
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield total


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Parameters, their gradients and every tensor in the optimizer state, counted once each."""
    seen: dict[int, int] = {}
    tensors = [*model.parameters(), *(p.grad for p in model.parameters() if p.grad is not None)]
    for state in optimizer.state.values():
        tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    for tensor in tensors:
        ptr, nbytes = _storage_bytes(tensor)
        seen.setdefault(ptr, nbytes)
    return sum(seen.values())


def measure_step_memory(
    device: torch.device, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: Callable[[], T]
) -> tuple[T, float, str]:
    """Run ``step()`` (forward, backward, optimizer step): (its return value, peak MiB, method)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = step()
        torch.cuda.synchronize(device)
        return out, torch.cuda.max_memory_allocated(device) / 2**20, CUDA_METHOD
    with saved_activation_bytes() as activations:
        out = step()
    return out, (state_bytes(model, optimizer) + activations[0]) / 2**20, CPU_METHOD
