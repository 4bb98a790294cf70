"""PNG figures of the probe tools' outputs, for the CLI and the agent's report.

Each function takes a tool's Output and a path, and writes one PNG (matplotlib, Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path

STATUS_COLORS = {"ok": "tab:blue", "vanishing": "tab:orange", "exploding": "tab:red", "no gradient": "black"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_lr_range(output, path: str | Path) -> None:
    """LearningRateScheduler: loss (raw and smoothed) against LR, each rule's LR, the pick, the safe range."""
    plt = _pyplot()
    sweep = output.sweep
    fig, ax = plt.subplots(figsize=(7, 4.2))
    finite = [(lr, s) for lr, s in zip(sweep.lrs, sweep.smoothed, strict=True) if math.isfinite(s)]
    ax.plot(sweep.lrs, sweep.losses, color="0.75", lw=1, label="loss")
    ax.plot(*zip(*finite, strict=True), color="tab:blue", lw=2, label=f"smoothed (EMA beta={sweep.beta:g})")
    ax.axvspan(*output.safe_range, color="tab:green", alpha=0.12, label="safe range")
    for (rule, lr), color in zip(output.suggestions.items(), ("tab:purple", "tab:orange", "tab:brown"),
                                 strict=False):
        ax.axvline(lr, color=color, ls="--", lw=1, label=f"{rule}: {lr:.2g}")
    pick = min(finite, key=lambda p: abs(math.log(p[0] / output.suggested_lr)))
    ax.plot([pick[0]], [pick[1]], marker="*", ms=16, color="tab:red", ls="none",
            label=f"pick ({output.rule}): {output.suggested_lr:.2g}")
    if sweep.divergence_lr is not None:
        ax.axvline(sweep.divergence_lr, color="tab:red", lw=1, alpha=0.6, label="divergence")
    start, low = finite[0][1], min(s for _, s in finite)
    ax.set_ylim(low - 0.1 * abs(low), max(1.6 * start - 0.6 * low, low + 1e-9))  # keep the descent visible
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="training loss",
           title=f"LR range test: {sweep.workload}, {sweep.optimizer}, batch {sweep.batch_size}")
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_batch_throughput(output, path: str | Path) -> None:
    """BatchSizeOptimizer: samples/s against batch size with the knee; memory against the budget."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sizes = [p.batch_size for p in output.throughput]
    rates = [p.samples_per_s for p in output.throughput]
    left.plot(sizes, rates, marker="o")
    knee = next(p for p in output.throughput if p.batch_size == output.knee_batch_size)
    left.plot([knee.batch_size], [knee.samples_per_s], marker="*", ms=16, color="tab:red", ls="none",
              label=f"knee: {knee.batch_size}")
    left.axvline(output.recommended_batch_size, color="tab:green", ls="--",
                 label=f"recommended: {output.recommended_batch_size}")
    if output.critical_batch_size:
        left.axvline(output.critical_batch_size, color="tab:purple", ls=":",
                     label=f"B_simple: {output.critical_batch_size:.0f}")
    left.set_xscale("log", base=2)
    left.set(xlabel="batch size", ylabel="samples / s", title="throughput")
    left.legend(fontsize=8)
    measured = sorted((p.batch_size, p.peak_memory_mb, p.fits) for p in output.measurements
                      if p.peak_memory_mb is not None)
    right.plot([m[0] for m in measured], [m[1] for m in measured], marker="o", color="0.4")
    for size, memory, fits in measured:
        right.plot([size], [memory], marker="o", color="tab:green" if fits else "tab:red")
    right.axhline(output.max_memory_mb, color="tab:red", ls="--", label=f"budget {output.max_memory_mb:.3g} MiB")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set(xlabel="batch size", ylabel="peak memory of a step (MiB)",
              title=f"memory (largest fit: {output.max_batch_size})")
    right.legend(fontsize=8)
    _save(fig, path)


def plot_gradient_norms(output, path: str | Path) -> None:
    """GradientAnalyzer: per-layer gradient norms over the steps, and each layer's mean by status."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for name, norms in output.layer_norms.items():
        left.plot([max(n, 1e-30) for n in norms], lw=1, label=name)
    left.plot(output.global_norms, color="black", lw=1.5, label="global")
    left.axhline(output.clip_threshold, color="tab:red", ls="--", lw=1,
                 label=f"clip p{output.clip_percentile:g}: {output.clip_threshold:.3g}")
    left.set_yscale("log")
    left.set(xlabel="step", ylabel="gradient norm", title="gradient norms per layer")
    if len(output.layer_norms) <= 12:
        left.legend(fontsize=6, ncol=2)
    layers = output.layers
    right.barh([r.name for r in layers], [max(r.grad_norm_mean, 1e-30) for r in layers],
               color=[STATUS_COLORS[r.status] for r in layers])
    right.set_xscale("log")
    right.xaxis.set_minor_formatter(NullFormatter())
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    right.set(xlabel="mean gradient norm", title="layers (orange: vanishing, red: exploding)")
    _save(fig, path)
