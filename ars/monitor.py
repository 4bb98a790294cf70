"""ARSMonitor: records loss and the ARS gates per step, summarises stability and recovery, plots, saves.

Spikes and recovery (``summary``): a robust running mean μ and spread σ of the loss are kept as in
ARSOptimizer (EW moments with momentum β, each update clipped to ±κ·σ). Step t is a spike when
loss_t > μ_{t-1} + κ·max(σ_{t-1}, 1e-3·|μ_{t-1}|) after ``warmup`` steps; the pre-spike level is
μ_{t-1}. The spike is recovered when a later loss within ``recovery_steps`` steps is <= that level.
A new spike is only counted once the previous one is recovered or timed out; while one is open the
moments follow the loss unclipped, so a lasting shift is one spike, not many.
recovery_success = recovered spikes / spikes (None when there was no spike).

Examples:
    >>> monitor = ARSMonitor()
    >>> for step in range(100):
    ...     monitor.log_step(loss=1.0 / (step + 1), entropy_guard=1.0, surprise_gate=1.0, chronos_jitter=0.0)
    >>> monitor.summary()["final_loss"]
    0.01
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


class ARSMonitor:
    """Per-step log of loss, Ψ (entropy_guard), Φ (surprise_gate), χ (chronos_jitter) and extras."""

    def __init__(
        self,
        window: int = 50,
        recovery_steps: int = 100,
        spike_threshold: float = 3.0,
        momentum: float = 0.05,
        warmup: int = 20,
    ) -> None:
        if not (isinstance(window, int) and window >= 2):
            raise ValueError(f"window must be an int >= 2 but got {window=}")
        if not (isinstance(recovery_steps, int) and recovery_steps >= 1):
            raise ValueError(f"recovery_steps must be an int >= 1 but got {recovery_steps=}")
        if not spike_threshold > 0.0:
            raise ValueError(f"spike_threshold must be > 0 but got {spike_threshold=}")
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"momentum must be in (0, 1) but got {momentum=}")
        if not (isinstance(warmup, int) and warmup >= 1):
            raise ValueError(f"warmup must be an int >= 1 but got {warmup=}")
        self.window, self.recovery_steps, self.spike_threshold = window, recovery_steps, spike_threshold
        self.momentum, self.warmup = momentum, warmup
        self.records: list[dict[str, float]] = []
        self.epochs: list[dict[str, int]] = []

    def log_step(
        self,
        *,
        loss: float,
        entropy_guard: float = 1.0,
        surprise_gate: float = 1.0,
        chronos_jitter: float = 0.0,
        **more: float,
    ) -> None:
        """Record one step; ``more`` holds any extra scalars (lr, grad_norm, ...)."""
        record = {
            "step": len(self.records),
            "loss": float(loss),
            "entropy_guard": float(entropy_guard),
            "surprise_gate": float(surprise_gate),
            "chronos_jitter": float(chronos_jitter),
        }
        for key, value in more.items():
            if key in record:
                raise ValueError(f"extra metric {key=} collides with a built-in field")
            record[key] = float(value)
        self.records.append(record)

    def log_optimizer(self, optimizer: Any, *, loss: float, **more: float) -> None:
        """``log_step`` with the gates read from an ARSOptimizer after its step."""
        self.log_step(
            loss=loss,
            entropy_guard=optimizer.entropy_guard,
            surprise_gate=optimizer.surprise_gate,
            chronos_jitter=optimizer.chronos_jitter,
            **more,
        )

    def log_epoch(self, epoch: int) -> None:
        """Mark the end of ``epoch`` at the current step."""
        self.epochs.append({"epoch": int(epoch), "step": len(self.records)})

    def _series(self, key: str) -> list[float]:
        return [r[key] for r in self.records]

    def spikes(self) -> list[dict[str, Any]]:
        """Each detected loss spike: step, pre-spike level, peak, steps to recover (None if not within N)."""
        losses = self._series("loss")
        beta, kappa = self.momentum, self.spike_threshold
        found: list[dict[str, Any]] = []
        mean, var, busy_until = 0.0, 0.0, -1
        for t, loss in enumerate(losses):
            if not math.isfinite(loss):
                continue
            if t == 0:
                mean = loss
                continue
            spread = max(math.sqrt(var), 1e-3 * abs(mean), 1e-12)
            delta = loss - mean
            if t >= self.warmup and t > busy_until and delta > kappa * spread:
                horizon = losses[t + 1 : t + 1 + self.recovery_steps]
                back = next((i + 1 for i, x in enumerate(horizon) if x <= mean), None)
                peak_end = t + 1 + (back if back is not None else len(horizon))
                found.append(
                    {"step": t, "level": mean, "peak": max(losses[t:peak_end]), "recovery_steps": back}
                )
                busy_until = t + (back if back is not None else self.recovery_steps)
            if t >= self.warmup and t > busy_until:  # while a spike is open the moments follow the loss
                delta = min(kappa * spread, max(-kappa * spread, delta))
            mean += beta * delta
            var = (1.0 - beta) * (var + beta * delta * delta)
        return found

    def summary(self) -> dict[str, Any]:
        """Final loss, loss stability (std over the last window), resonance events, recovery success."""
        if not self.records:
            raise ValueError("no steps logged yet: call log_step first")
        losses = [x for x in self._series("loss") if math.isfinite(x)]
        tail = losses[-self.window :]
        mean_tail = sum(tail) / len(tail) if tail else float("nan")
        stability = math.sqrt(sum((x - mean_tail) ** 2 for x in tail) / len(tail)) if tail else float("nan")
        guards = self._series("entropy_guard")
        events = sum(1 for i, g in enumerate(guards) if g < 1.0 and (i == 0 or guards[i - 1] >= 1.0))
        spikes = self.spikes()
        recovered = [s for s in spikes if s["recovery_steps"] is not None]
        gates = self._series("surprise_gate")
        return {
            "steps": len(self.records),
            "epochs": len(self.epochs),
            "final_loss": self.records[-1]["loss"],
            "loss_stability": stability,
            "non_finite_losses": len(self.records) - len(losses),
            "resonance_events": events,
            "spikes": len(spikes),
            "recovery_success": len(recovered) / len(spikes) if spikes else None,
            "mean_recovery_steps": (
                sum(s["recovery_steps"] for s in recovered) / len(recovered) if recovered else None
            ),
            "min_surprise_gate": min(gates),
            "damped_steps": sum(1 for g in gates if g < 1.0),
        }

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """PNG with loss, Ψ, Φ and χ against steps (epoch ends as dotted lines)."""
        if not self.records:
            raise ValueError("no steps logged yet: call log_step first")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = self._series("step")
        panels = [
            ("loss", "loss"),
            ("entropy_guard", "Ψ entropy guard"),
            ("surprise_gate", "Φ surprise gate"),
            ("chronos_jitter", "χ chronos jitter"),
        ]
        fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(8, 8))
        for ax, (key, label) in zip(axes, panels, strict=True):
            ax.plot(steps, self._series(key), lw=1)
            ax.set_ylabel(label)
            for epoch in self.epochs:
                ax.axvline(epoch["step"], color="grey", ls=":", lw=0.8)
        axes[-1].set_xlabel("step")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
        plt.close(fig)
        return path

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write steps, epochs and the summary as JSON, atomically (temp file, then os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "summary": self.summary() if self.records else None,
            "epochs": self.epochs,
            "steps": self.records,
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(payload, f, indent=1, allow_nan=True)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a results file is for everyone to read
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
