"""A slow, plain reference twin of ARSOptimizer over AdamW, for testing the fast one.

Every formula from ``trainopt.ars.optimizer`` written out directly: the spectral entropy is an explicit
DFT with ``math.cos``/``math.sin`` over a Python list, the moments are plain floats, and AdamW is the
per-parameter update of Loshchilov & Hutter (2019), as torch.optim.AdamW (non-foreach) computes it.
No numpy, no deque, no foreach kernels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def _sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


def reference_spectral_entropy(values: list[float]) -> float:
    """Normalised spectral entropy of ``values`` (mean removed, DC dropped) by an explicit DFT."""
    n = len(values)
    mean = sum(values) / n
    x = [v - mean for v in values]
    bins = n // 2
    power = []
    for j in range(1, bins + 1):
        re = sum(x[i] * math.cos(2.0 * math.pi * j * i / n) for i in range(n))
        im = -sum(x[i] * math.sin(2.0 * math.pi * j * i / n) for i in range(n))
        power.append(re * re + im * im)
    total = sum(power)
    if not total > 0.0:
        return 1.0
    entropy = 0.0
    for pj in power:
        if pj > 0.0:
            q = pj / total
            entropy -= q * math.log(q)
    return entropy / math.log(bins)


class ARSReference:
    """ARS over AdamW, one parameter and one formula at a time. Same arguments as ARSOptimizer."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        entropy_threshold: float = 0.7,
        surprise_scale: float = 1.0,
        jitter_scale: float = 0.01,
        min_damping: float = 0.1,
        *,
        window: int = 64,
        entropy_every: int = 8,
        stats_momentum: float = 0.05,
        surprise_threshold: float = 2.0,
        warmup_steps: int = 20,
        seed: int = 0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        self.params = list(params)
        lr = float(lr)  # a one-element tensor lr, as ARSOptimizer accepts
        self.lr, self.theta, self.c, self.jitter, self.m = (
            lr, entropy_threshold, surprise_scale, jitter_scale, min_damping,
        )
        self.window, self.every, self.beta, self.kappa, self.warmup = (
            window, entropy_every, stats_momentum, surprise_threshold, warmup_steps,
        )
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.adam_steps = 0
        self.signals: list[float] = []  # every finite signal seen
        self.mean = 0.0
        self.var = 0.0
        self.entropy_guard = 1.0
        self.surprise_gate = 1.0
        self.chronos_jitter = 0.0
        self.resonance_events = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, closure=None, *, loss: float | torch.Tensor | None = None) -> None:
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if loss is not None:
            s = float(loss)
        else:
            s = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in self.params if p.grad is not None))
        factor = self._observe(s)
        self._adamw(self.lr * factor)

    def _observe(self, s: float) -> float:
        if not math.isfinite(s):
            self.surprise_gate, self.chronos_jitter = self.m, 0.0
            return self.m
        self.signals.append(s)
        t = len(self.signals)
        diffs = [_sign(self.signals[i] - self.signals[i - 1]) for i in range(1, t)][-self.window :]
        if len(diffs) == self.window and t % self.every == 0:
            h = reference_spectral_entropy(diffs)
            before = self.entropy_guard
            self.entropy_guard = min(1.0, max(1e-3, h / self.theta))
            if before == 1.0 and self.entropy_guard < 1.0:
                self.resonance_events += 1
        if t == 1:
            self.mean, self.var, self.surprise_gate = s, 0.0, 1.0
        else:
            spread = max(math.sqrt(self.var), 1e-3 * abs(self.mean), 1e-12)
            delta = s - self.mean
            if t <= self.warmup:
                self.surprise_gate = 1.0
            else:
                z = max(0.0, delta) / spread
                e = max(0.0, z - self.kappa)
                amplification = 1.0 / self.entropy_guard
                self.surprise_gate = max(self.m, 1.0 / (1.0 + self.c * amplification * e * e))
                delta = min(self.kappa * spread, max(-self.kappa * spread, delta))
            self.mean = self.mean + self.beta * delta
            self.var = (1.0 - self.beta) * (self.var + self.beta * delta * delta)
        if self.entropy_guard < 1.0 and self.jitter > 0.0:
            u = torch.rand((), generator=self.generator, dtype=torch.float64).item()
            self.chronos_jitter = self.jitter * (2.0 * u - 1.0)
        else:
            self.chronos_jitter = 0.0
        return self.surprise_gate * (1.0 + self.chronos_jitter)

    def _adamw(self, lr: float) -> None:
        beta1, beta2 = self.betas
        self.adam_steps += 1
        t = self.adam_steps
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            p.mul_(1.0 - lr * self.weight_decay)  # decoupled weight decay
            m.mul_(beta1).add_(g, alpha=1.0 - beta1)  # m_t = β1 m + (1 − β1) g
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)  # v_t = β2 v + (1 − β2) g²
            step_size = lr / (1.0 - beta1**t)
            denom = (v.sqrt() / math.sqrt(1.0 - beta2**t)).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)
