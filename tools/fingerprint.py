"""A workload's identity as one hash: what it trains, on what data, with which loss, under which versions.

The trial store and the probe cache key every stored result by this fingerprint, so a result is
only ever read back for the workload that produced it. It covers:

- the model: ``repr`` of the module tree, every parameter's and buffer's name, shape and dtype,
  a hash of the initial parameter values (built under ``torch.manual_seed(0)``, so an edited
  initialisation counts; models above ``MAX_VALUE_HASH_PARAMS`` parameters are fingerprinted
  without their values, from a build on the meta device), and the source of ``forward`` of every
  module class outside torch (so an edited ``forward`` counts even when no shape changed);
- the data of every split (training, validation and test when there is one): for a tuple of
  tensors, each tensor's dtype, shape and bytes (tensors above ``FULL_HASH_BYTES`` are hashed on
  ``SAMPLED_ROWS`` evenly spaced rows); for a ``Dataset``, its class, its length and
  ``SAMPLED_ITEMS`` evenly spaced items (first and last included). Without test data there is
  no test entry;
- the loss, metric and param-group functions: their source (``inspect.getsource``; the qualified
  name when the source is not available), default arguments and closure values;
- the workload's own settings (name, metric, default config) and the trainopt and torch versions.

What it does not see: code that the loss or ``forward`` calls (a helper edited in another
function), and data mutated in place after the fingerprint was taken (it is computed once per
``Workload`` instance). Build a new ``Workload`` after changing data in place.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import pickle
import random
from collections.abc import Callable
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

FINGERPRINT_VERSION = 1  # bump when what goes into the fingerprint changes
FULL_HASH_BYTES = 256 * 2**20  # tensors up to this size are hashed whole
SAMPLED_ROWS = 4096  # rows hashed of a larger tensor (evenly spaced, first and last included)
SAMPLED_ITEMS = 16  # items hashed of a Dataset
MAX_DEPTH = 3  # nested functions followed through closures
MAX_VALUE_HASH_PARAMS = 50_000_000  # models up to this size are fingerprinted with their initial values


def trainopt_version() -> str:
    try:
        return metadata.version("trainopt")
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and values (a row sample above FULL_HASH_BYTES)."""
    t = tensor.detach()
    if t.is_sparse:
        t = t.to_dense()
    t = t.cpu().contiguous()
    if t.numel() * t.element_size() > FULL_HASH_BYTES and t.dim() > 0:
        rows = torch.linspace(0, len(t) - 1, SAMPLED_ROWS).long().unique()
        t = t[rows].contiguous()
    digest = hashlib.sha256(f"{t.dtype}|{tuple(tensor.shape)}|".encode())
    # bytes through a uint8 view: works for every dtype numpy lacks (bfloat16, float8)
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def value_digest(value: Any, objects: bool = True) -> str:
    """A stable text for a data item or a captured value: tensors and arrays by content, containers
    recursively, plain values by ``repr``; other objects by pickle when ``objects`` (data items),
    else (closure values: often a mutable helper such as a counter) by their type's name."""
    if isinstance(value, torch.Tensor):
        return "tensor:" + tensor_digest(value)
    if isinstance(value, np.ndarray):
        return "array:" + tensor_digest(torch.from_numpy(np.ascontiguousarray(value)))
    if isinstance(value, list | tuple):
        return f"{type(value).__name__}[" + ",".join(value_digest(v, objects) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((str(k), value_digest(v, objects)) for k, v in value.items())
        return "dict{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return repr(value)
    if isinstance(value, nn.Module):  # a module captured by the loss (a frozen feature extractor)
        return "module:" + hashlib.sha256(
            (repr(value) + "".join(tensor_digest(t) for t in value.state_dict().values())).encode()
        ).hexdigest()
    if callable(value):
        return "callable:" + callable_digest(value)
    if not objects:
        return "object:" + _qualname(type(value))
    try:
        return "pickle:" + hashlib.sha256(pickle.dumps(value, protocol=4)).hexdigest()
    except Exception:  # unpicklable object: its type is all that is stable across processes
        return "object:" + _qualname(type(value))


def data_digest(data: Any) -> str:
    """A tuple of tensors by content; a Dataset by class, length and a sample of items."""
    if isinstance(data, list | tuple) and all(isinstance(t, torch.Tensor) for t in data):
        return "tensors:" + ",".join(tensor_digest(t) for t in data)
    n = len(data)
    picks = sorted({round(i * (n - 1) / max(SAMPLED_ITEMS - 1, 1)) for i in range(SAMPLED_ITEMS)}) if n else []
    with _seeded():  # a Dataset with random augmentation gives the same sample every time
        items = ",".join(value_digest(data[i]) for i in picks)
    return hashlib.sha256(f"dataset:{_qualname(type(data))}|{n}|{items}".encode()).hexdigest()


def callable_digest(fn: Callable | None, depth: int = 0) -> str:
    """The source of a function (its qualified name when no source is available), with its
    default arguments and closure values; a ``functools.partial`` with its bound arguments.
    Nested functions in a closure are followed ``MAX_DEPTH`` levels deep (a recursive one stops)."""
    if fn is None:
        return "none"
    if depth > MAX_DEPTH:
        return _qualname(fn)
    if isinstance(fn, functools.partial):
        return "partial:" + callable_digest(fn.func, depth + 1) + value_digest((fn.args, dict(fn.keywords)))
    target = getattr(fn, "__func__", fn)  # a bound method's function
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target) \
            and not inspect.isclass(target) and not inspect.isbuiltin(target):
        target = type(target).__call__  # a callable object: its class's __call__
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):  # built-ins, C functions, code typed at a prompt
        source = _qualname(target)
    parts = [source]
    code = getattr(target, "__code__", None)
    if code is not None:
        parts.append(value_digest(getattr(target, "__defaults__", None)))
        cells = getattr(target, "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, cells, strict=False):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            # closure values that are data or settings; nested functions by their own code
            parts.append(f"{name}=" + (callable_digest(contents, depth + 1) if inspect.isfunction(contents)
                                       else value_digest(contents, objects=False)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def model_digest(make_model: Callable[[], nn.Module]) -> str:
    """Structure, shapes, initial values and the ``forward`` code of the model ``make_model`` builds.

    The model is first built on the meta device (no memory); above ``MAX_VALUE_HASH_PARAMS`` parameters
    that build is used and initial values are left out, so fingerprinting a large model never holds a
    second copy of it in host memory. A model that cannot be built on the meta device is built for real."""
    model, values = None, True
    try:
        with _seeded(), torch.device("meta"):
            model = make_model()
        values = sum(p.numel() for p in model.parameters()) <= MAX_VALUE_HASH_PARAMS
    except Exception:  # noqa: BLE001 - a factory that needs real tensors: build it for real below
        model = None
    if model is None or values:
        with _seeded():
            model = make_model()
    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|{tensor.requires_grad}|".encode())
        if values:
            digest.update(tensor_digest(tensor).encode())
    for cls in sorted({type(m) for m in model.modules()}, key=_qualname):
        if not cls.__module__.startswith("torch."):
            digest.update(f"{_qualname(cls)}:{callable_digest(cls.forward)}".encode())
    return digest.hexdigest()


def workload_fingerprint(workload: Any) -> str:
    """The fingerprint of a ``Workload`` (see the module docstring): ``"wl1-"`` + 32 hex digits."""
    parts = {
        "version": FINGERPRINT_VERSION,
        "class": _qualname(type(workload)),
        "name": workload.name,
        "model": model_digest(workload.make_model),
        "train": data_digest(workload.train_data),
        "val": data_digest(workload.val_data),
        "loss": callable_digest(workload.loss_fn),
        "metric": callable_digest(workload.metric_fn),
        "param_groups": callable_digest(workload.param_groups),
        "metric_name": workload.metric_name,
        "higher_is_better": workload.higher_is_better,
        "default_config": value_digest(workload.default_config),
        "trainopt": trainopt_version(),
        "torch": torch.__version__,
    }
    if workload.test_data is not None:
        parts["test"] = data_digest(workload.test_data)
    text = json.dumps(parts, sort_keys=True)
    return f"wl{FINGERPRINT_VERSION}-" + hashlib.sha256(text.encode()).hexdigest()[:32]


@contextmanager
def _seeded(seed: int = 0):
    """torch, numpy and Python's RNGs seeded inside, the caller's states restored after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
