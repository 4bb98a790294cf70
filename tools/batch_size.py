"""BatchSizeOptimizer: the largest batch that fits, the throughput curve and its knee, the critical
batch size from the gradient noise scale, and a recommended batch with its learning rate.

- Largest batch: doubling, then binary search, against ``max_memory_mb`` (tools.batch_memory).
- Knee: the smallest measured batch reaching ``knee_fraction`` (90%) of the best samples/s.
- Critical batch: B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, App. A.1), measured after
  ``noise_warm_steps`` training steps (the noise scale grows as the loss falls).
- Recommendation: the measured batch minimising the predicted time to a target loss,
  (B + B_simple) / throughput(B), from steps S = S_min (1 + B_noise / B) (McCandlish eq. 2.11) times
  time per step B / throughput(B). Without a noise scale: the knee.
- LR scaling from the workload's (base_lr, base_batch): linear for SGD (Goyal et al. 2017), square
  root for Adam-family and other adaptive optimizers (Malladi et al. 2022, "SDEs for adaptive methods").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field

from trainopt.errors import HyperparameterError
from trainopt.tools.base import Tool
from trainopt.tools.batch_memory import BatchPoint, find_max_batch_size, measure_batch
from trainopt.tools.memory import CPU_METHOD, CUDA_METHOD
from trainopt.tools.noise_scale import NoiseScale, estimate_noise_scale
from trainopt.tools.probe_setup import (
    build_training,
    probe_config,
    require_finite_first_loss,
    scalar_loss,
    training_errors,
)
from trainopt.tools.trial_config import OptimizerName


class BatchSizeInput(BaseModel):
    max_memory_mb: float | None = Field(None, gt=0, description="memory budget of one training step, MiB "
                                        "(default: free CUDA memory, or available RAM on CPU)")
    min_batch: int = Field(1, gt=0, description="smallest batch to try")
    max_batch: int | None = Field(None, gt=0, description="largest batch to try (default: the training set)")
    timed_steps: int = Field(5, ge=1, description="timed steps per batch size for the throughput curve")
    knee_fraction: float = Field(0.9, gt=0, le=1, description="knee: smallest batch with this share of "
                                 "the best throughput")
    noise_warm_steps: int = Field(50, ge=0, description="training steps before measuring the noise scale")
    noise_draws: int = Field(10, ge=1, description="batches drawn per size for the noise scale")
    noise_small_batch: int | None = Field(None, gt=0, description="default: base batch / 8 (at least 2)")
    noise_big_batch: int | None = Field(None, gt=0, description="default: 8 x base batch, within what fits")
    optimizer: OptimizerName | None = Field(None, description="default: the workload's optimizer")
    base_lr: float | None = Field(None, gt=0,
                                  description="LR known to work at base_batch (default: workload's)")
    base_batch: int | None = Field(None, gt=0, description="batch of base_lr (default: workload's)")
    seed: int = Field(0, ge=0)


class BatchSizeOutput(BaseModel):
    device: str
    max_memory_mb: float
    budget_source: str
    memory_method: str
    max_batch_size: int = Field(description="largest batch that fits the budget (within the searched range)")
    limited_by: Literal["memory budget", "search range"]
    measurements: list[BatchPoint] = Field(description="every batch measured, in search order")
    throughput: list[BatchPoint] = Field(description="timed batches, ascending: the throughput curve")
    knee_batch_size: int
    knee_rule: str
    noise_scale: NoiseScale | None = Field(description="None when only batch 1 fits (two sizes are needed)")
    critical_batch_size: float | None = Field(description="B_simple (McCandlish et al. 2018)")
    recommended_batch_size: int
    recommendation_reason: str
    lr_scaling_rule: Literal["linear", "square root"]
    base_lr: float
    base_batch_size: int
    recommended_lr: float


class BatchSizeOptimizer(Tool):
    """Largest fitting batch, throughput knee, critical batch size, recommended batch and LR.

    Examples:
        >>> out = BatchSizeOptimizer("digits-mlp")(max_memory_mb=1.0, noise_draws=2)   # doctest: +SKIP
        >>> out.max_batch_size <= 1437 and out.measurements[-1].peak_memory_mb > 0     # doctest: +SKIP
        True
    """

    name = "batch_size_optimizer"
    description = ("Largest batch that fits a memory budget (doubling + binary search; CUDA OOM caught), the "
                   "throughput curve and its knee, the critical batch size from the gradient noise scale, "
                   "and the recommended batch size with its scaled learning rate.")
    Input = BatchSizeInput
    Output = BatchSizeOutput

    def run(self, input: BatchSizeInput) -> BatchSizeOutput:
        workload, device = self.workload, self.device
        config = probe_config(workload, optimizer=input.optimizer, seed=input.seed, schedule="constant",
                              warmup_steps=0, lr=input.base_lr, batch_size=input.base_batch)
        budget, source = _budget(input.max_memory_mb, device)
        cap = min(input.max_batch or workload.num_train, workload.num_train)
        if input.min_batch > cap:
            raise HyperparameterError(f"min_batch={input.min_batch} exceeds the largest batch {cap} "
                                      f"({workload.num_train} training examples, "
                                      f"max_batch={input.max_batch})",
                                      {"min_batch": input.min_batch})
        expected = 2 * math.ceil(math.log2(max(cap / input.min_batch, 1)) + 1) + 2

        def progress(done: int) -> None:
            if self.progress is not None:
                self.progress(done, expected)

        with training_errors(workload, device, max_memory_mb=budget):
            largest, points = find_max_batch_size(workload, config, device, budget, input.min_batch, cap,
                                                  input.timed_steps, progress)
            timed = {p.batch_size: p for p in points if p.samples_per_s is not None}
            if largest not in timed:  # the binary search measures memory only: time the winner too
                timed[largest] = measure_batch(workload, config, largest, device, budget, input.timed_steps)
            noise = self._noise_scale(input, config, largest)
        if self.progress is not None:
            self.progress(expected, expected)
        # a batch can fit the binary search and still fail its timing run (a CUDA OOM from fragmentation, seen on
        # an H200): it stays out of the throughput curve
        curve = [timed[b] for b in sorted(timed) if timed[b].samples_per_s is not None]
        best_rate = max(p.samples_per_s for p in curve)
        knee = next(p.batch_size for p in curve if p.samples_per_s >= input.knee_fraction * best_rate)
        b_simple = noise.b_simple if noise is not None else None
        recommended, reason = _recommend(curve, b_simple, knee, input.knee_fraction)
        rule = "linear" if config.optimizer == "sgd" else "square root"
        factor = recommended / config.batch_size
        new_lr = config.lr * (factor if rule == "linear" else math.sqrt(factor))
        return BatchSizeOutput(
            device=str(device), max_memory_mb=budget, budget_source=source,
            memory_method=CUDA_METHOD if device.type == "cuda" else CPU_METHOD,
            max_batch_size=largest, limited_by="search range" if largest == cap else "memory budget",
            measurements=points, throughput=curve, knee_batch_size=knee,
            knee_rule=f"smallest measured batch with >= {input.knee_fraction:.0%} of the best throughput "
                      f"({best_rate:,.0f} samples/s)",
            noise_scale=noise, critical_batch_size=b_simple,
            recommended_batch_size=recommended, recommendation_reason=reason,
            lr_scaling_rule=rule, base_lr=config.lr, base_batch_size=config.batch_size, recommended_lr=new_lr,
        )

    def plot(self, output: BatchSizeOutput, path: str | Path) -> None:
        from trainopt.tools.plots import plot_batch_throughput

        plot_batch_throughput(output, path)

    def _noise_scale(self, input: BatchSizeInput, config, largest: int) -> NoiseScale | None:
        """B_simple after ``noise_warm_steps`` steps of training at the base configuration."""
        workload, device = self.workload, self.device
        if largest < 2:
            return None
        base = min(config.batch_size, largest)
        small = input.noise_small_batch or max(2, base // 8)
        big = input.noise_big_batch or min(8 * base, largest)
        if not small < big:
            small, big = max(1, big // 8), big
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            base_config = config.model_copy(update={"batch_size": base})
            model, optimizer, batches = build_training(workload, base_config, device)
            for step in range(input.noise_warm_steps):
                optimizer.zero_grad(set_to_none=True)
                loss = scalar_loss(workload, model, next(batches))
                if step == 0:
                    require_finite_first_loss(workload, loss.item(), batch_size=base)
                loss.backward()
                optimizer.step()
            return estimate_noise_scale(workload, model, small, big, input.noise_draws, device, input.seed)


def _budget(max_memory_mb: float | None, device: torch.device) -> tuple[float, str]:
    if max_memory_mb is not None:
        return max_memory_mb, "max_memory_mb"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**20, "free CUDA memory (torch.cuda.mem_get_info)"
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
    return available / 1024, "available RAM (MemAvailable in /proc/meminfo)"


def _recommend(curve: list[BatchPoint], b_simple: float | None, knee: int,
               fraction: float) -> tuple[int, str]:
    if b_simple is None:
        return knee, f"the throughput knee (>= {fraction:.0%} of the best samples/s): no usable noise scale"
    cost = {p.batch_size: (p.batch_size + b_simple) / p.samples_per_s for p in curve}
    best = min(cost, key=cost.get)
    return best, (f"minimises the predicted time to a target loss, (B + B_simple) / throughput(B) with "
                  f"B_simple={b_simple:.0f} (McCandlish et al. 2018: steps = S_min (1 + B_noise / B))")
