"""The gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, "An Empirical Model
of Large-Batch Training", Appendix A.1), the batch size above which larger batches stop paying.

The squared norm of a batch-B gradient is, in expectation, E|G_B|^2 = |G|^2 + tr(Sigma) / B. With
mean squared norms at a small and a big batch, both unbiased estimators follow:

    |G|^2     ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

Each is averaged over draws before the ratio is taken (the ratio of means, as in the paper).
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, Field
from torch import nn

from trainopt.tools.probe_setup import scalar_loss
from trainopt.tools.workloads import Workload


class NoiseScale(BaseModel):
    b_small: int
    b_big: int
    draws: int
    small_grad_sq: float = Field(description="mean |G_small|^2")
    big_grad_sq: float = Field(description="mean |G_big|^2")
    grad_sq: float = Field(description="estimate of |G|^2, the true gradient's squared norm")
    trace_sigma: float = Field(description="estimate of tr(Sigma), the per-example gradient variance")
    b_simple: float | None = Field(description="tr(Sigma) / |G|^2; None when |G|^2 <= 0 (noise dominates)")
    note: str = ""


def noise_scale_from_norms(b_small: int, b_big: int, small_grad_sq: float, big_grad_sq: float,
                           draws: int = 1) -> NoiseScale:
    """B_simple from mean squared gradient norms at two batch sizes (McCandlish et al. A.1)."""
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big but got {b_small=}, {b_big=}")
    grad_sq = (b_big * big_grad_sq - b_small * small_grad_sq) / (b_big - b_small)
    trace = (small_grad_sq - big_grad_sq) / (1 / b_small - 1 / b_big)
    ok = grad_sq > 0 and math.isfinite(grad_sq) and math.isfinite(trace)
    note = "" if ok else ("the |G|^2 estimate is <= 0: gradient noise dominates; "
                          "use more draws or a larger b_big")
    return NoiseScale(b_small=b_small, b_big=b_big, draws=draws, small_grad_sq=small_grad_sq,
                      big_grad_sq=big_grad_sq, grad_sq=grad_sq, trace_sigma=trace,
                      b_simple=max(trace, 0.0) / grad_sq if ok else None, note=note)


def grad_sq_norm(model: nn.Module) -> float:
    """Sum of squared gradient entries over all parameters."""
    return float(sum((p.grad.detach().float() ** 2).sum() for p in model.parameters() if p.grad is not None))


def estimate_noise_scale(workload: Workload, model: nn.Module, b_small: int, b_big: int, draws: int,
                         device: torch.device, seed: int = 0) -> NoiseScale:
    """Mean |G_B|^2 at ``b_small`` and ``b_big`` over ``draws`` batches each, at the model's current weights.

    The model is not updated (gradients are zeroed afterwards).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1 but got {draws=}")
    small = workload.train_batches(b_small, torch.Generator().manual_seed(seed + 1), device)
    big = workload.train_batches(b_big, torch.Generator().manual_seed(seed + 2), device)
    sums = {b_small: 0.0, b_big: 0.0}
    for _ in range(draws):
        for size, stream in ((b_small, small), (b_big, big)):
            model.zero_grad(set_to_none=True)
            scalar_loss(workload, model, next(stream)).backward()
            sums[size] += grad_sq_norm(model)
    model.zero_grad(set_to_none=True)
    return noise_scale_from_norms(b_small, b_big, sums[b_small] / draws, sums[b_big] / draws, draws)
