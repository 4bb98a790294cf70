"""A few-step expert: progressive distillation of the DDPM teacher (Salimans and Ho 2022, Algorithm 2).

Round k trains a student that takes N steps to match two DDIM steps of its teacher (2N steps);
the student becomes the next round's teacher, so N halves every round (16 -> 8 -> 4 -> 2).
The first round's teacher is the DDPM itself, each of its 2N DDIM steps cut into
``teacher_substeps`` sub-steps (a finer, more accurate ODE solve than 2N plain steps).

Time grid of an N-step sampler: t_i = 1000 i / N - 1 for i = 0..N (fractional timesteps;
t_N = 999 is the first step, t_0 = -1 means clean data, abar = 1). For N dividing 1000 this is
diffusers' "trailing" DDIM spacing.

Target (eq. 8 of the paper): with z_t = a_t x + s_t eps and the teacher's two DDIM steps
z_t -> z_{t'} -> z_{t''} (t'' one student step below t),

    x~ = (z_{t''} - (s_{t''} / s_t) z_t) / (a_{t''} - (s_{t''} / s_t) a_t)

is the clean estimate that makes ONE DDIM step land on z_{t''}. The student predicts v
(v = a eps - s x, so x^ = a z - s v; an eps-predictor is ill-conditioned at t = 999 where
a = 0.006) and is trained on the "truncated SNR" weighting max(a^2 / s^2, 1) |x^ - x~|^2.
``VPrediction`` turns it back into an eps-model (eps = s z + a v), so the samplers, ``NFECounter``
and ``ClassConditioned`` take a student like any DDPM.

Example::

    students, cost = progressive_distill(teacher, sample_toy("moons", 50_000), final_steps=4)
    x = sample_distilled(students[4], torch.randn(2000, 2), 4)   # 4 model calls
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from .model import NUM_TRAIN_TIMESTEPS, vp_alphas_cumprod

_LOG_ABAR = torch.cat([torch.zeros(1, dtype=torch.float64), vp_alphas_cumprod().log()])  # index t + 1


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) at fractional t in [-1, 999], log abar interpolated linearly."""
    u = (torch.as_tensor(t, dtype=torch.float64) + 1).clamp(0, NUM_TRAIN_TIMESTEPS)
    lo = u.floor().clamp(max=NUM_TRAIN_TIMESTEPS - 1).long()
    log_abar = _LOG_ABAR[lo] + (u - lo) * (_LOG_ABAR[lo + 1] - _LOG_ABAR[lo])
    abar = log_abar.exp()
    return abar.sqrt().float(), (1 - abar).clamp(min=0).sqrt().float()


def time_grid(num_steps: int) -> torch.Tensor:
    """t_i = 1000 i / N - 1, i = 0..N: the N-step sampler visits t_N, ..., t_1 and ends at t_0 = -1.  # (N+1,)"""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1 but got {num_steps=}")
    return torch.arange(num_steps + 1, dtype=torch.float64) * (NUM_TRAIN_TIMESTEPS / num_steps) - 1


class VPrediction(nn.Module):
    """An eps-model view of a v-predicting network: eps = s_t z + a_t v(z, t[, y])."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.config = getattr(net, "config", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        a, s = alpha_sigma(torch.as_tensor(t, dtype=torch.float32).reshape(-1))
        v = self.net(x, t) if y is None else self.net(x, t, y)
        return s[:, None] * x + a[:, None] * v

    def clean_estimate(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x^ = a_t z - s_t v, without the round trip through eps."""
        a, s = alpha_sigma(torch.as_tensor(t, dtype=torch.float32).reshape(-1))
        v = self.net(x, t) if y is None else self.net(x, t, y)
        return a[:, None] * x - s[:, None] * v


def ddim_step(model: Callable, z: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
              y: torch.Tensor | None = None) -> torch.Tensor:
    """One deterministic DDIM step (Song et al. 2021, eq. 12) from t to t_next (B,) for an eps-model."""
    a, s = alpha_sigma(t)
    a_next, s_next = alpha_sigma(t_next)
    eps = model(z, t) if y is None else model(z, t, y)
    x = (z - s[:, None] * eps) / a[:, None]
    return a_next[:, None] * x + s_next[:, None] * eps


@torch.no_grad()
def sample_distilled(model, x_T, num_steps, *, generator=None, callback=None) -> torch.Tensor:
    """Deterministic DDIM on the student's own grid ``time_grid(num_steps)``: exactly ``num_steps`` calls."""
    grid = time_grid(num_steps).float()
    x = x_T
    for i in range(num_steps, 0, -1):
        t, t_next = grid[i].expand(len(x)), grid[i - 1].expand(len(x))
        x = ddim_step(model, x, t, t_next)
        if callback is not None:
            callback({"i": num_steps - i, "x": x, "t": float(grid[i - 1])})
    return x


def _teacher_two_steps(teacher: Callable, z: torch.Tensor, t: torch.Tensor, half: float, substeps: int,
                       y: torch.Tensor | None) -> torch.Tensor:
    """Two teacher DDIM steps of size ``half`` from t, each cut into ``substeps`` equal sub-steps."""
    h = half / substeps
    for k in range(2 * substeps):
        z = ddim_step(teacher, z, t - k * h, t - (k + 1) * h, y)
    return z


def distill_round(student: VPrediction, teacher: Callable, data: torch.Tensor, labels: torch.Tensor | None,
                  num_steps: int, *, iterations: int, batch_size: int, lr: float, teacher_substeps: int,
                  generator: torch.Generator) -> list[float]:
    """Train ``student`` (N = num_steps) on two teacher steps per student step; returns the loss per iteration."""
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / iterations)  # linear decay to 0 (paper)
    grid = time_grid(num_steps).float()
    half = NUM_TRAIN_TIMESTEPS / (2 * num_steps)
    losses = []
    student.train()
    for _ in range(iterations):
        idx = torch.randint(0, len(data), (batch_size,), generator=generator)
        x, y = data[idx], (labels[idx] if labels is not None else None)
        i = torch.randint(1, num_steps + 1, (batch_size,), generator=generator)
        t, t_next = grid[i], grid[i - 1]  # (B,)
        a, s = alpha_sigma(t)
        eps = torch.randn(x.shape, generator=generator)
        z = a[:, None] * x + s[:, None] * eps
        with torch.no_grad():
            z_next = _teacher_two_steps(teacher, z, t, half, teacher_substeps, y)
            a_next, s_next = alpha_sigma(t_next)
            ratio = (s_next / s)[:, None]
            target = (z_next - ratio * z) / (a_next[:, None] - ratio * a[:, None])  # x~, eq. 8
        weight = (a * a / (s * s)).clamp(min=1.0)  # truncated SNR weighting
        pred = student.clean_estimate(z, t, y)
        loss = (weight * (pred - target).pow(2).mean(dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    student.eval()
    return losses


def progressive_distill(
    teacher: nn.Module,
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    start_steps: int = 16,
    final_steps: int = 4,
    teacher_substeps: int = 4,
    iterations: int = 1500,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[dict[int, VPrediction], dict]:
    """Distil ``teacher`` (an eps-model ``teacher(x, t[, y])``) into students of start_steps, /2, ... final_steps.

    The students start from the teacher's weights (the v-head learns its new meaning in round 1).
    Returns ({num_steps: student in eval mode}, cost) with cost = {"rounds", "iterations", "seconds",
    "final_loss": {num_steps: mean of the last 100 losses}}; ``progress(round, loss)`` after each round.
    """
    powers = all(n >= 1 and n & (n - 1) == 0 for n in (start_steps, final_steps))
    if not powers or start_steps < final_steps:
        raise ValueError(f"need powers of two start_steps >= final_steps >= 1 but got {start_steps=}, {final_steps=}")
    if iterations < 1 or batch_size < 1 or lr <= 0 or teacher_substeps < 1:
        raise ValueError(f"need iterations, batch_size, teacher_substeps >= 1 and lr > 0 but got "
                         f"{iterations=}, {batch_size=}, {teacher_substeps=}, {lr=}")
    g = torch.Generator().manual_seed(seed)
    teacher = teacher.eval()
    student = VPrediction(copy.deepcopy(teacher))
    students: dict[int, VPrediction] = {}
    cost: dict = {"rounds": 0, "iterations": 0, "seconds": 0.0, "final_loss": {}}
    start, n, substeps = time.perf_counter(), start_steps, teacher_substeps
    while n >= final_steps:
        losses = distill_round(student, teacher, data, labels, n, iterations=iterations, batch_size=batch_size,
                               lr=lr, teacher_substeps=substeps, generator=g)
        students[n] = copy.deepcopy(student).eval()
        cost["rounds"] += 1
        cost["iterations"] += iterations
        cost["final_loss"][n] = sum(losses[-100:]) / len(losses[-100:])
        if progress is not None:
            progress(cost["rounds"], cost["final_loss"][n])
        teacher, n, substeps = students[n], n // 2, 1  # the student teaches the next round
        for p in teacher.parameters():
            p.requires_grad_(False)
    cost["seconds"] = time.perf_counter() - start
    return students, cost
