"""ARSOptimizer: a drop-in torch optimizer that damps its step size through shocks and costs nothing without.

ARS (adaptive resonance suppression) watches one scalar per step — the loss, or the global gradient
norm when no loss is given — and scales the learning rate the base optimizer applies. The math, for
step t = 1, 2, ... with signal s_t (see ``ARSOptimizer`` for the symbols' defaults):

Surprise gate Φ_t (running statistics are robust EW moments with momentum β)::

    spread_{t-1} = max(σ_{t-1}, ρ·|μ_{t-1}|, 1e-12)                 ρ = 1e-3 (relative floor)
    z_t  = max(0, s_t − μ_{t-1}) / spread_{t-1}                        rises only; Φ_t = 1 for t <= warmup
    e_t  = max(0, z_t − κ)                                             κ = surprise_threshold (dead zone)
    A_t  = 1 / Ψ_t                                                     amplification while resonance is seen
    Φ_t  = max(m, 1 / (1 + c·A_t·e_t²))                               c = surprise_scale, m = min_damping
    δ_t  = clip(s_t − μ_{t-1}, −κ·spread_{t-1}, +κ·spread_{t-1})      (unclipped for t <= warmup)
    μ_t  = μ_{t-1} + β·δ_t,   σ²_t = (1 − β)·(σ²_{t-1} + β·δ_t²)       μ_1 = s_1, σ²_1 = 0

Clipping δ makes the moments robust: one outlier moves μ and σ by at most κ·spread, so a sustained
shock stays surprising for a number of steps set by β instead of being absorbed after one step.

Entropy guard Ψ_t (the surprise signal turning periodic)::

    r_t = sign(s_t − s_{t-1}) in {−1, 0, +1};  keep the last W values r (window)
    every k steps, once the window is full:
      x = r − mean(r);  P_j = |rfft(x)_j|², j = 1..⌊W/2⌋ (DC dropped)
      p_j = P_j / Σ P;   H_t = −Σ p_j ln p_j / ln ⌊W/2⌋               normalised spectral entropy in [0, 1]
      (H_t = 1 when Σ P = 0: a monotone signal has no rhythm)
      Ψ_t = clip(H_t / θ, 1e-3, 1)                                      θ = entropy_threshold
    between updates Ψ_t = Ψ_{t-1}; Ψ_t = 1 until the first update

The up/down pattern r drops the trend and the amplitude of the curve: a smooth, falling training loss
has no power at all, noisy mini-batch losses give random signs (H near 0.85 for W = 64; below 0.7 in
about 1 window in 1000), and a loss that oscillates with a period concentrates its power in one bin
and its harmonics (H near 0.3-0.6 once the oscillation is a few times the noise).

Chronos jitter χ_t and the applied step::

    χ_t = J·u_t, u_t ~ U(−1, 1) from the optimizer's own torch.Generator   if Ψ_t < 1, else χ_t = 0
    η_eff = η·Φ_t·(1 + χ_t)                                             J = jitter_scale

η_eff is written into each parameter group's ``lr`` for the base optimizer's step and the scheduled
``lr`` is restored right after, so LR schedulers keep working and Adam's normalisation cannot cancel
the damping (it would cancel a scaled gradient). ``resonance_events`` counts rising edges of Ψ_t < 1.
A non-finite signal gets Φ_t = m and does not enter the statistics or the window.

Defaults (c = 1, κ = 2) were tuned on bench/ars_shock.py (character GPT, 10x LR spike): c = 0.01 with
κ = 3 barely damped a spike (recovery within 10% of AdamW's); c = 1, κ = 2 recovered in 34 and 38 steps
where AdamW had not recovered after 120, and changed the clean run's final validation loss by < 0.01%.
A noisy batch 2.5 spreads above the mean costs one step at Φ = 0.8; a shock 5 spreads up gets Φ = m.

Cost: one float per step (the loss you pass, or one ``.item()`` of the grad norm), O(1) Python
arithmetic, and an rfft of W numbers every k steps (numpy, on the host).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

_BASES: dict[str, type[Optimizer]] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}
_SPREAD_REL_FLOOR = 1e-3
_PSI_FLOOR = 1e-3


def spectral_entropy(diffs: np.ndarray) -> float:
    """Normalised spectral entropy in [0, 1] of a 1-D window (mean removed, DC bin dropped)."""
    x = diffs - diffs.mean()
    power = np.abs(np.fft.rfft(x)[1 : len(x) // 2 + 1]) ** 2  # P_j, j = 1..W//2
    total = power.sum()
    if not total > 0.0:
        return 1.0
    p = power[power > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(len(power)))


def _as_float(loss: Any) -> float:
    """The loss as a Python float: one ``.item()`` for a tensor."""
    return loss.detach().item() if isinstance(loss, torch.Tensor) else float(loss)


def _check_ars_args(
    entropy_threshold: float,
    surprise_scale: float,
    jitter_scale: float,
    min_damping: float,
    window: int,
    entropy_every: int,
    stats_momentum: float,
    surprise_threshold: float,
    warmup_steps: int,
) -> None:
    if not 0.0 < entropy_threshold <= 1.0:
        raise ValueError(f"entropy_threshold must be in (0, 1] but got {entropy_threshold=}")
    if not surprise_scale >= 0.0:
        raise ValueError(f"surprise_scale must be >= 0 but got {surprise_scale=}")
    if not 0.0 <= jitter_scale < 1.0:
        raise ValueError(f"jitter_scale must be in [0, 1) but got {jitter_scale=}")
    if not 0.0 < min_damping <= 1.0:
        raise ValueError(f"min_damping must be in (0, 1] but got {min_damping=}")
    if not (isinstance(window, int) and window >= 8):
        raise ValueError(f"window must be an int >= 8 but got {window=}")
    if not (isinstance(entropy_every, int) and entropy_every >= 1):
        raise ValueError(f"entropy_every must be an int >= 1 but got {entropy_every=}")
    if not 0.0 < stats_momentum < 1.0:
        raise ValueError(f"stats_momentum must be in (0, 1) but got {stats_momentum=}")
    if not surprise_threshold >= 0.0:
        raise ValueError(f"surprise_threshold must be >= 0 but got {surprise_threshold=}")
    if not (isinstance(warmup_steps, int) and warmup_steps >= 1):
        raise ValueError(f"warmup_steps must be an int >= 1 but got {warmup_steps=}")


class ARSOptimizer(Optimizer):
    """Adaptive resonance suppression around a base optimizer; the math is in the module docstring.

    Args:
        params: parameters or parameter groups, as for any torch optimizer.
        lr: learning rate η of the base optimizer.
        entropy_threshold: θ; Ψ falls below 1 when the spectral entropy of the signal drops below it.
        surprise_scale: c; how hard a surprise beyond the dead zone damps the step.
        jitter_scale: J; amplitude of the random step-size perturbation while resonance is seen.
        min_damping: m; the lowest Φ, so the step never drops below m·η.
        base: "adamw", "adam" or "sgd"; ``base_kwargs`` go to its constructor.
        window: W, number of signal differences in the spectral window.
        entropy_every: k, recompute the spectral entropy every k steps.
        stats_momentum: β of the running mean and spread.
        surprise_threshold: κ, the dead zone in units of the running spread (no damping below it).
        warmup_steps: steps that only feed the statistics (Φ = 1).
        seed: seed of the generator that draws χ.

    Examples:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = ARSOptimizer(model.parameters(), lr=1e-2)
        >>> loss = model(torch.randn(8, 4)).pow(2).mean()
        >>> loss.backward()
        >>> _ = opt.step(loss=loss)            # or opt.step() (grad norm) or opt.step(closure)
        >>> opt.surprise_gate, opt.entropy_guard, opt.chronos_jitter
        (1.0, 1.0, 0.0)
        >>> wrapped = ARSOptimizer.wrap(torch.optim.SGD(model.parameters(), lr=0.1), min_damping=0.2)
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        entropy_threshold: float = 0.7,
        surprise_scale: float = 1.0,
        jitter_scale: float = 0.01,
        min_damping: float = 0.1,
        base: str = "adamw",
        *,
        window: int = 64,
        entropy_every: int = 8,
        stats_momentum: float = 0.05,
        surprise_threshold: float = 2.0,
        warmup_steps: int = 20,
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        if isinstance(lr, torch.Tensor):  # as torch accepts it (e.g. capturable/fused Adam): one element
            if lr.numel() != 1:
                raise ValueError(f"a tensor lr must have one element but got shape {tuple(lr.shape)}")
            if not float(lr) > 0.0:
                raise ValueError(f"lr must be > 0 but got lr={float(lr)}")
        elif not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0.0):
            raise ValueError(f"lr must be > 0 but got {lr=}")
        if base not in _BASES:
            raise ValueError(f"base must be one of {sorted(_BASES)} but got {base=}")
        base_optimizer = _BASES[base](params, lr=lr, **base_kwargs)
        self._setup(
            base_optimizer,
            entropy_threshold=entropy_threshold,
            surprise_scale=surprise_scale,
            jitter_scale=jitter_scale,
            min_damping=min_damping,
            window=window,
            entropy_every=entropy_every,
            stats_momentum=stats_momentum,
            surprise_threshold=surprise_threshold,
            warmup_steps=warmup_steps,
            seed=seed,
        )

    @classmethod
    def wrap(cls, optimizer: Optimizer, **ars_kwargs: Any) -> ARSOptimizer:
        """ARS around an existing optimizer instance; it keeps its own param_groups and state."""
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}")
        if isinstance(optimizer, ARSOptimizer):
            raise ValueError("optimizer is already an ARSOptimizer; wrap its base instead")
        defaults = {
            "entropy_threshold": 0.7,
            "surprise_scale": 1.0,
            "jitter_scale": 0.01,
            "min_damping": 0.1,
            "window": 64,
            "entropy_every": 8,
            "stats_momentum": 0.05,
            "surprise_threshold": 2.0,
            "warmup_steps": 20,
            "seed": 0,
        }
        unknown = sorted(set(ars_kwargs) - set(defaults))
        if unknown:
            raise ValueError(f"unknown ARS arguments {unknown}; known: {sorted(defaults)}")
        self = cls.__new__(cls)
        self._setup(optimizer, **{**defaults, **ars_kwargs})
        return self

    def _setup(self, base: Optimizer, *, seed: int, **hparams: Any) -> None:
        _check_ars_args(**hparams)
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an int but got {seed=}")
        super().__init__(base.param_groups, base.defaults)
        self.base = base
        # Share the base's groups and state: schedulers and users see (and may change) one set of values.
        self.param_groups = base.param_groups
        self.state = base.state
        self.hparams = dict(hparams)
        self._generator = torch.Generator()
        self._generator.manual_seed(seed)
        self._reset_ars_state()

    def _reset_ars_state(self) -> None:
        self._t = 0  # steps observed
        self._mean = 0.0  # μ
        self._var = 0.0  # σ²
        self._prev_signal: float | None = None
        self._diffs: deque[float] = deque(maxlen=self.hparams["window"])  # r, signs of differences
        self._entropy = 1.0  # H at the last update
        self._psi = 1.0
        self._phi = 1.0
        self._chi = 0.0
        self._events = 0
        self._signal = float("nan")

    # ---- what ARS exposes after each step -------------------------------------------------------------
    @property
    def entropy_guard(self) -> float:
        """Ψ_t in (0, 1]: below 1 while the surprise signal looks periodic."""
        return self._psi

    @property
    def surprise_gate(self) -> float:
        """Φ_t in [min_damping, 1]: the damping applied to the learning rate."""
        return self._phi

    @property
    def chronos_jitter(self) -> float:
        """χ_t: the relative step-size perturbation applied (0 unless resonance is seen)."""
        return self._chi

    @property
    def resonance_events(self) -> int:
        """Rising edges of Ψ_t < 1 so far."""
        return self._events

    @property
    def lr_scale(self) -> float:
        """Φ_t·(1 + χ_t): the factor the last step applied to every group's learning rate."""
        return self._phi * (1.0 + self._chi)

    @property
    def spectral_entropy(self) -> float:
        """H at the last window update (1.0 before the first)."""
        return self._entropy

    @property
    def signal(self) -> float:
        """s_t, the last observed loss or gradient norm."""
        return self._signal

    # ---- the step -------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Any = None) -> Any:
        """One step. The signal is ``loss`` (given or returned by ``closure``), else the global grad norm.

        A ``closure`` is evaluated once here (its loss is the signal) and forwarded to the base
        optimizer, which gets that evaluation back on its first call and the real closure after:
        AdamW costs no extra forward pass, LBFGS re-evaluates as it needs. Returns what the base returns.
        """
        if closure is not None and loss is not None:
            raise ValueError("pass either closure or loss, not both")
        forwarded = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            pending = [loss]

            def forwarded():  # the evaluation above first (gradients already in .grad), then fresh ones
                return pending.pop() if pending else closure()

        signal = _as_float(loss) if loss is not None else self._grad_norm()
        scale = self._observe(signal)
        scheduled = [group["lr"] for group in self.param_groups]
        try:
            for group, lr in zip(self.param_groups, scheduled, strict=True):
                group["lr"] = lr * scale  # a tensor lr stays a tensor; the scheduled object is restored below
            returned = self.base.step(forwarded) if forwarded is not None else self.base.step()
        finally:
            for group, lr in zip(self.param_groups, scheduled, strict=True):
                group["lr"] = lr
        return returned if forwarded is not None and returned is not None else loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "base"):
            self.base.add_param_group(param_group)
        else:  # during Optimizer.__init__: the groups are the base's own dicts
            super().add_param_group(param_group)

    def _grad_norm(self) -> float:
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return float("nan")
        # ||(||g_1||, ..., ||g_n||)||_2 as torch.nn.utils.get_total_norm (torch >= 2.6) computes it, for torch 2.4+
        norms = torch._foreach_norm(grads)
        return torch.stack([n.to(norms[0].device) for n in norms]).norm().item()

    def _observe(self, s: float) -> float:
        """Update Ψ, Φ, χ and the statistics from signal s; return the lr factor Φ·(1 + χ)."""
        h = self.hparams
        self._signal = s
        if not math.isfinite(s):
            self._phi, self._chi = h["min_damping"], 0.0
            return self._phi
        self._t += 1
        t = self._t
        # Entropy guard from the window of differences.
        if self._prev_signal is not None:
            self._diffs.append(float((s > self._prev_signal) - (s < self._prev_signal)))
        self._prev_signal = s
        if len(self._diffs) == h["window"] and t % h["entropy_every"] == 0:
            self._entropy = spectral_entropy(np.fromiter(self._diffs, dtype=np.float64, count=h["window"]))
            psi_prev = self._psi
            self._psi = min(1.0, max(_PSI_FLOOR, self._entropy / h["entropy_threshold"]))
            if self._psi < 1.0 and psi_prev == 1.0:
                self._events += 1
        # Surprise gate from the running moments.
        if t == 1:
            self._mean, self._var, self._phi = s, 0.0, 1.0
        else:
            spread = max(math.sqrt(self._var), _SPREAD_REL_FLOOR * abs(self._mean), 1e-12)
            delta = s - self._mean
            if t <= h["warmup_steps"]:
                self._phi = 1.0
            else:
                excess = max(0.0, delta / spread - h["surprise_threshold"])
                gate = 1.0 / (1.0 + h["surprise_scale"] * excess * excess / self._psi)
                self._phi = max(h["min_damping"], gate)
                bound = h["surprise_threshold"] * spread
                delta = min(bound, max(-bound, delta))
            beta = h["stats_momentum"]
            self._mean += beta * delta
            self._var = (1.0 - beta) * (self._var + beta * delta * delta)
        # Chronos jitter while resonance is seen.
        if self._psi < 1.0 and h["jitter_scale"] > 0.0:
            u = torch.rand((), generator=self._generator, dtype=torch.float64).item()
            self._chi = h["jitter_scale"] * (2.0 * u - 1.0)
        else:
            self._chi = 0.0
        return self._phi * (1.0 + self._chi)

    # ---- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base's state dict (``state``, ``param_groups``) plus ``ars``: moments, window, RNG."""
        sd = self.base.state_dict()
        sd["ars"] = {
            "hparams": dict(self.hparams),
            "t": self._t,
            "mean": self._mean,
            "var": self._var,
            "prev_signal": self._prev_signal,
            "diffs": list(self._diffs),
            "entropy": self._entropy,
            "psi": self._psi,
            "phi": self._phi,
            "chi": self._chi,
            "events": self._events,
            "signal": self._signal,
            "rng_state": self._generator.get_state(),
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """An ARS state dict restores everything; a base optimizer's plain state dict (switching to ARS
        mid-training) loads into the base, and the ARS statistics start fresh, with a warning."""
        if "ars" not in state_dict:
            self.base.load_state_dict(state_dict)
            self.param_groups = self.base.param_groups
            self.state = self.base.state
            self._reset_ars_state()
            warnings.warn(
                f"loaded a plain {type(self.base).__name__} state_dict (no 'ars' entry): its moments and "
                "param groups are restored, the ARS statistics start fresh (warmup again)",
                UserWarning, stacklevel=2,
            )
            return
        ars = state_dict["ars"]
        self.base.load_state_dict({k: v for k, v in state_dict.items() if k != "ars"})
        self.param_groups = self.base.param_groups  # load_state_dict builds new group dicts
        self.state = self.base.state
        _check_ars_args(**ars["hparams"])
        self.hparams = dict(ars["hparams"])
        self._reset_ars_state()
        self._t, self._mean, self._var = ars["t"], ars["mean"], ars["var"]
        self._prev_signal = ars["prev_signal"]
        self._diffs.extend(ars["diffs"])
        self._entropy, self._psi, self._phi, self._chi = ars["entropy"], ars["psi"], ars["phi"], ars["chi"]
        self._events, self._signal = ars["events"], ars["signal"]
        self._generator.set_state(ars["rng_state"])

    def __repr__(self) -> str:
        return f"ARSOptimizer(base={type(self.base).__name__}, {self.hparams})"
