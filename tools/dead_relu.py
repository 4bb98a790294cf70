"""Dead-ReLU fractions: the share of ReLU units that output zero for every validation example.

Every ReLU call is caught, module (``nn.ReLU``) and functional (``F.relu``, ``torch.relu``,
``Tensor.relu``, in-place too) alike, with a ``TorchFunctionMode``; forward hooks on every module
keep a stack of module names so each call is named by the module it runs in (plus a call index
when one module calls ReLU more than once). A unit is one entry of the output without the batch
dimension, (B, ...) -> prod(...) units; it is dead if it is <= 0 for all examples.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn
from torch.overrides import TorchFunctionMode

_RELUS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class DeadReLU(BaseModel):
    layer: str
    units: int
    dead_fraction: float


class _ReluRecorder(TorchFunctionMode):
    def __init__(self, names: list[str]):
        super().__init__()
        self.names = names  # the module stack, innermost last
        self.calls: dict[str, int] = {}  # per module: relu calls in the current forward
        self.alive: dict[str, torch.Tensor] = {}  # call name -> bool mask of units ever > 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _RELUS and isinstance(out, torch.Tensor) and out.dim() >= 2:
            owner = self.names[-1] if self.names else "(model)"
            index = self.calls.get(owner, 0)
            self.calls[owner] = index + 1
            name = owner if index == 0 else f"{owner}#{index}"
            fired = (out.detach() > 0).flatten(1).any(0)
            self.alive[name] = fired | self.alive[name] if name in self.alive else fired
        return out


@torch.no_grad()
def dead_relu_fractions(model: nn.Module, forward, batches: Iterable) -> list[DeadReLU]:
    """Run ``forward(model, batch)`` on every batch and report each ReLU's share of dead units."""
    stack: list[str] = []
    names = {module: name or "(model)" for name, module in model.named_modules()}

    def enter(module, _inputs) -> None:
        stack.append(names[module])

    def leave(module, _inputs, _output) -> None:  # a hook that returns a value would replace the output
        stack.pop()

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    recorder = _ReluRecorder(stack)
    was_training = model.training
    model.eval()
    try:
        with recorder:
            for batch in batches:
                recorder.calls.clear()
                forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [DeadReLU(layer=name, units=alive.numel(), dead_fraction=1 - alive.float().mean().item())
            for name, alive in recorder.alive.items()]
