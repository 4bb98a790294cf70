"""Does a batch size fit the memory budget, and how fast does it train? Measured, one batch at a time.

CUDA: the peak of ``torch.cuda.max_memory_allocated`` over one step; ``torch.cuda.OutOfMemoryError``
      is caught, the cache emptied, and the batch marked as not fitting.
CPU:  nothing is caught (the OS would kill the process first); the step's memory is accounted
      tensor by tensor (tools.memory) and compared with the budget.

``find_max_batch_size`` doubles the batch until it no longer fits, then binary-searches between the
last fit and the first miss, so it needs about 2 log2(max batch) measurements.
"""

from __future__ import annotations

import gc
import time

import torch
from pydantic import BaseModel, Field

from trainopt.errors import ResourceError
from trainopt.tools.memory import measure_step_memory
from trainopt.tools.probe_setup import build_training, require_finite_first_loss, scalar_loss
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.workloads import Workload


class BatchPoint(BaseModel):
    batch_size: int
    fits: bool
    peak_memory_mb: float | None = Field(description="None when the step ran out of device memory")
    samples_per_s: float | None = Field(None, description="batch / fastest timed step; None if not timed")
    out_of_memory: bool = Field(False, description="CUDA raised OutOfMemoryError (caught)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_batch(workload: Workload, config: TrialConfig, batch_size: int, device: torch.device,
                  budget_mb: float, timed_steps: int = 0) -> BatchPoint:
    """Peak memory of one training step at ``batch_size``; if it fits, samples/s over ``timed_steps``."""
    config = config.model_copy(update={"batch_size": batch_size})
    try:
        model, optimizer, batches = build_training(workload, config, device)

        def step() -> float:
            optimizer.zero_grad(set_to_none=True)
            loss = scalar_loss(workload, model, next(batches))
            loss.backward()
            optimizer.step()
            return loss.item()

        first, peak, _ = measure_step_memory(device, model, optimizer, step)
        require_finite_first_loss(workload, first, batch_size=batch_size)
        if peak > budget_mb:
            return BatchPoint(batch_size=batch_size, fits=False, peak_memory_mb=peak)
        rate = None
        if timed_steps:
            step()  # one untimed step: lazy allocations, caches
            times = []
            for _ in range(timed_steps):
                _sync(device)
                start = time.perf_counter()
                step()
                _sync(device)
                times.append(time.perf_counter() - start)
            # the fastest step: other processes only ever add time (the timeit module's reasoning)
            rate = batch_size / max(min(times), 1e-9)
        return BatchPoint(batch_size=batch_size, fits=True, peak_memory_mb=peak, samples_per_s=rate)
    except torch.cuda.OutOfMemoryError:
        model = optimizer = batches = None  # drop references before emptying the cache
        gc.collect()
        torch.cuda.empty_cache()
        return BatchPoint(batch_size=batch_size, fits=False, peak_memory_mb=None, out_of_memory=True)
    finally:
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


def find_max_batch_size(workload: Workload, config: TrialConfig, device: torch.device, budget_mb: float,
                        min_batch: int, max_batch: int, timed_steps: int = 0,
                        progress=None) -> tuple[int, list[BatchPoint]]:
    """(largest batch in [min_batch, max_batch] that fits ``budget_mb``, every measurement).

    Doubling points are timed (``timed_steps``); binary-search points are only measured for memory.
    Raises ResourceError when even ``min_batch`` does not fit.
    """
    points: list[BatchPoint] = []

    def probe(batch: int, timed: int) -> BatchPoint:
        points.append(measure_batch(workload, config, batch, device, budget_mb, timed))
        if progress is not None:
            progress(len(points))
        return points[-1]

    batch, first = min_batch, probe(min_batch, timed_steps)
    if not first.fits:
        need = (f"{first.peak_memory_mb:.3f} MiB" if first.peak_memory_mb is not None
                else "more than the device has (CUDA out of memory)")
        raise ResourceError(
            f"no batch fits max_memory_mb={budget_mb:g}: the smallest batch ({min_batch}) needs {need} "
            f"on {device}", {"max_memory_mb": budget_mb, "batch_size": min_batch,
                             "needed_mb": first.peak_memory_mb})
    last_fit, first_miss = batch, None
    while batch < max_batch:
        batch = min(2 * batch, max_batch)
        if probe(batch, timed_steps).fits:
            last_fit = batch
        else:
            first_miss = batch
            break
    while first_miss is not None and first_miss - last_fit > 1:
        middle = (last_fit + first_miss) // 2
        if probe(middle, 0).fits:
            last_fit = middle
        else:
            first_miss = middle
    return last_fit, points
