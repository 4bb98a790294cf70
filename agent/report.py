"""report.html: one self-contained file (plots embedded as base64 PNG) of a measured recommendation.

Plots: LR range test, batch throughput, gradient findings, candidate loss curves, convergence fit.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from trainopt.agent.record import atomic_write
from trainopt.agent.schemas import OptimizationResponse

if TYPE_CHECKING:
    from trainopt.agent.phases.state import RunState as OptimizationRun


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.6))


# tool name -> the probe tool's own figure (trainopt.tools.plots), embedded as it is drawn for `trainopt probe`
TOOL_PLOTS = {
    "learning_rate_scheduler": "plot_lr_range",
    "batch_size_optimizer": "plot_batch_throughput",
    "gradient_analyzer": "plot_gradient_norms",
}


def plot_tool(run: OptimizationRun, name: str) -> str | None:
    """The figure ``trainopt probe`` draws for this tool's output, as base64 PNG (None without output)."""
    out = run.tools.get(name)
    if out is None or not getattr(out, {"batch_size_optimizer": "throughput", "gradient_analyzer": "layers"}
                                  .get(name, "sweep")):
        return None  # nothing measured to draw
    import tempfile

    from trainopt.tools import plots

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.png"
        getattr(plots, TOOL_PLOTS[name])(out, path)
        return base64.b64encode(path.read_bytes()).decode() if path.exists() else None


def plot_candidates(run: OptimizationRun) -> str | None:
    if not run.outcomes:
        return None
    fig, ax = _figure()
    for outcome in run.outcomes:
        result = run.results.get(outcome.config.key())
        if result is None or not result.val_losses:
            continue
        label = f"{outcome.source} r{outcome.round}: lr {outcome.config.lr:.3g} b{outcome.config.batch_size}"
        style = "k--" if outcome.source == "baseline" else "-"
        ax.plot(
            result.val_steps,
            [v if math.isfinite(v) else float("nan") for v in result.val_losses],
            style,
            label=label,
            alpha=0.8,
        )
    ax.set(yscale="log", xlabel="step", ylabel="validation loss", title="Candidates (same steps, same seed)")
    ax.legend(fontsize=6)
    return _png(fig)


def plot_convergence(run: OptimizationRun, response: OptimizationResponse) -> str | None:
    fit, prediction = run.tools.get("convergence_predictor"), response.prediction
    runs = run.confirm.get("recommended")
    if fit is None or prediction is None or not runs:
        return None
    import numpy as np

    result = runs[0]
    fig, ax = _figure()
    ax.plot(result.val_steps, result.val_losses, "o", ms=3, label="measured (recommended, first confirm run)")
    t = np.linspace(result.val_steps[0], prediction.at_step, 200)  # the fit's domain, not t -> 0
    ax.plot(t, fit.fitted_curve(t), "r-", label=f"{fit.model} fit on steps <= {prediction.fit_on_steps}")
    ax.axvline(prediction.fit_on_steps, color="gray", ls=":")
    ax.errorbar(
        [prediction.at_step],
        [prediction.predicted_loss],
        fmt="rs",
        yerr=[
            [prediction.predicted_loss - prediction.interval[0]],
            [prediction.interval[1] - prediction.predicted_loss],
        ]
        if prediction.interval
        else None,
        label=f"predicted {prediction.predicted_loss:.4g} vs measured {prediction.measured_loss:.4g}",
    )
    ax.set(yscale="log", xlabel="step", ylabel="validation loss", title="Convergence fit")
    ax.legend(fontsize=7)
    return _png(fig)


def _row(*cells) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def write_report(response: OptimizationResponse, run: OptimizationRun, path: Path, plots: bool = True) -> Path:
    """report.html; ``plots=False`` leaves the figures out (a spent time budget) and says so."""
    g = response.gain
    shown = response.challenger or response.recommended
    acc = lambda m: "n/a" if m.accuracy is None else f"{m.accuracy:.4f}"  # noqa: E731
    summary = "".join(
        [
            _row("", "baseline", "recommended" if g.adopted else "challenger (not adopted)"),
            _row(
                "optimizer / lr",
                f"{response.baseline.optimizer} {response.baseline.lr:.3g}",
                f"{shown.optimizer} {shown.lr:.3g}",
            ),
            _row(
                "batch / schedule",
                f"{response.baseline.batch_size} {response.baseline.schedule}",
                f"{shown.batch_size} {shown.schedule}",
            ),
            _row(
                f"mean val loss ({g.steps} steps, held-out seeds {g.seeds})",
                f"{g.baseline.loss:.4g}",
                f"{g.challenger.loss:.4g}",
            ),
            _row("val metric", acc(g.baseline), acc(g.challenger)),
            _row("peak memory MiB", f"{g.baseline.memory_usage:.2f}", f"{g.challenger.memory_usage:.2f}"),
        ]
    )
    candidates = _row(
        "source",
        "round",
        "optimizer",
        "lr",
        "batch",
        "schedule",
        "val loss",
        "metric",
        "score",
        "rejected / clamped",
    )
    for o in response.candidates:
        candidates += _row(
            o.source,
            o.round,
            o.config.optimizer,
            f"{o.config.lr:.3g}",
            o.config.batch_size,
            o.config.schedule,
            f"{o.val_loss:.4g}",
            "" if o.val_metric is None else f"{o.val_metric:.4f}",
            f"{o.score:.4g}",
            "; ".join(filter(None, [o.rejected, *o.clamped])),
        )
    figures = (
        [*(plot_tool(run, name) for name in TOOL_PLOTS), plot_candidates(run), plot_convergence(run, response)]
        if plots
        else []
    )
    images = "".join(f'<img src="data:image/png;base64,{p}">' for p in figures if p)
    images = images or ("" if plots else "<p>Left out: the time budget was spent (see the notes).</p>")
    prediction = ""
    if response.prediction is not None:
        p = response.prediction
        prediction = (
            f"<p>Predicted final loss {p.predicted_loss:.4g} (from steps &le; {p.fit_on_steps}, "
            f"{html.escape(p.model)})"
            f" against measured {p.measured_loss:.4g}: {p.abs_pct_error:.1f}% error.</p>"
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in [*response.notes, *response.lm.fallbacks])
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in run.digest.grad_findings) if run.digest else ""
    title = f"trainopt: {html.escape(response.workload)}"
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td{{padding:2px 8px;border-bottom:1px solid #ddd;
font-size:13px}}img{{max-width:49%}}pre{{white-space:pre-wrap}}</style></head><body>
<h1>trainopt optimize: {html.escape(response.workload)} on {html.escape(response.device)}</h1>
<p>Held-out validation-loss reduction of the challenger against the baseline:
<b>{g.relative_loss_reduction:+.1%}</b> (90% interval {g.interval[0]:+.1%} to {g.interval[1]:+.1%};
better on {g.wins} of {len(g.seeds)} held-out seeds, {g.steps} steps each).
{html.escape(g.reason[0].upper() + g.reason[1:])}.
LM: {html.escape(response.lm.requested)}, {response.lm.calls} call(s).
{"Replayed from a recording." if response.replayed else ""}</p>
<table>{summary}</table>{prediction}
<h2>Rationale</h2><pre>{html.escape(response.rationale)}</pre>
<h2>Candidates</h2><table>{candidates}</table>
<h2>Gradient findings</h2><ul>{findings or "<li>none</li>"}</ul>
<h2>Plots</h2>{images}
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul></body></html>"""
    atomic_write(path, text)
    return path
