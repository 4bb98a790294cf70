"""report.html: one self-contained file (plots embedded as base64 PNG) of a measured recommendation.

Plots: LR range test, batch throughput, gradient findings, candidate loss curves, convergence fit.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainopt.agent.explanation import ALWAYS_SHOWN, FIELDS, config_changes, describe_changes, format_value
from trainopt.agent.record import atomic_write
from trainopt.agent.schemas import OptimizationResponse
from trainopt.tools.summaries import PLOT_LOCK

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
        if result is None or not result.val_losses or outcome.steps != run.budget.candidate_steps:
            continue  # the finals' horizon twin ran at full length only
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


def _row(*cells, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def _head(*cells) -> str:
    return "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cells) + "</tr>"


def _same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not config_changes(a, b)


def _varied(configs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (field, label) columns a table of these configurations needs: the usual four, plus every
    field whose value is not the same in all of them (weight decay, warmup, clipping, ...)."""
    return [(f, label) for f, label in FIELDS if f in ALWAYS_SHOWN
            or len({json.dumps(c.get(f), sort_keys=True) for c in configs}) > 1]


def _origin(outcome) -> str:
    if outcome.source == "baseline":
        return "baseline (the workload's default)"
    if outcome.source == "search":
        return "search (best of the Optuna TPE trials below)"
    if outcome.source == "horizon":
        return "horizon twin: the race's leader at a lower LR, for a full-length run (measured in the finals only)"
    return f"{outcome.source}: " + ("first proposal" if outcome.round == 0 else f"refine round {outcome.round}")


def summary_table(response: OptimizationResponse) -> str:
    """Baseline against the challenger: the usual four fields and every other field that differs."""
    g = response.gain
    shown = response.challenger or response.recommended
    base, other = response.baseline.model_dump(mode="json"), shown.model_dump(mode="json")
    changed = {label for label, _, _ in config_changes(base, other)}
    acc = lambda m: "n/a" if m.accuracy is None else f"{m.accuracy:.4f}"  # noqa: E731
    rows = [_head("", "baseline", "recommended (challenger)" if g.adopted else "challenger (not adopted)")]
    for field, label in FIELDS:
        if field in ALWAYS_SHOWN or label in changed:
            rows.append(_row(label, format_value(field, base.get(field)), format_value(field, other.get(field)),
                             cls="diff" if label in changed else ""))
    rows += [
        _row("steps of your run (H)", str(response.baseline.steps), str(shown.steps)),
        _row(f"mean held-out loss ({g.measured_examples or g.horizon_examples:,} examples, {len(g.seeds)} seeds)",
             f"{g.baseline.loss:.4g}", f"{g.challenger.loss:.4g}"),
        _row("mean held-out metric", acc(g.baseline), acc(g.challenger)),
        _row("peak step memory MiB", f"{g.baseline.memory_usage:.2f}", f"{g.challenger.memory_usage:.2f}"),
    ]
    return "".join(rows)


def candidates_table(response: OptimizationResponse) -> str:
    """Every raced configuration with its origin and every field that varied among them."""
    configs = [o.config.model_dump(mode="json") for o in response.candidates]
    challenger = response.challenger.model_dump(mode="json") if response.challenger else None
    columns = _varied(configs + [response.baseline.model_dump(mode="json")])
    rows = [_head("origin", *(label for _, label in columns), "selection seeds", "mean val loss", "metric",
                  "score", "race", "rejected / clamped")]
    for o, config in zip(response.candidates, configs, strict=True):
        mark = challenger is not None and _same_setting(config, challenger)
        rows.append(_row(
            _origin(o) + (" (challenger)" if mark else ""),
            *(format_value(f, config.get(f)) for f, _ in columns),
            len(o.seed_losses) or 1, f"{o.val_loss:.4g}", "" if o.val_metric is None else f"{o.val_metric:.4f}",
            f"{o.score:.4g}", o.stopped or ("finalist" if o.final_score is not None else ""),
            "; ".join(filter(None, [o.rejected, *o.clamped])), cls="challenger" if mark else ""))
    return "".join(rows)


def search_table(run: OptimizationRun) -> str:
    """The seeded Optuna search's trials: origin (an enqueued race candidate or TPE's sample), the
    configuration, how far it ran and why it stopped."""
    out = run.tools.get("hyperparameter_suggester")
    if out is None or not getattr(out, "trials", None):
        return ""
    columns = _varied([t.config for t in out.trials])
    rows = [_head("trial", "origin", *(label for _, label in columns), "steps", "val loss", "state")]
    for t in out.trials:
        origin = "enqueued race candidate" if t.source == "candidate" else "TPE sample"
        value = t.value if t.value is not None else t.last_val_loss
        state = t.state.lower() + (f" ({t.pruned_by})" if t.pruned_by else "")
        rows.append(_row(t.number, origin, *(format_value(f, t.config.get(f)) for f, _ in columns), t.steps,
                         "" if value is None else f"{value:.4g}", state,
                         cls="best" if t.number == out.best_trial else ""))
    return (f"<h2>Search trials</h2><p>Optuna TPE with {html.escape(out.pruner)} pruning, warm-started with the "
            f"race's best candidates; its best joined the race (origin 'search' above).</p>"
            f"<div class=\"wide\"><table>{''.join(rows)}</table></div>")


def finding_text(finding) -> str:
    """A gradient finding as a sentence: 'Whole model (warning): evidence. Suggested: fix.'"""
    where = "Whole model" if not finding.layer else f"Layer {finding.layer}"
    evidence = finding.evidence.rstrip(".")
    fix = finding.suggested_fix.rstrip(".")
    return f"{where} ({finding.severity}): {evidence}. Suggested: {fix}."


def findings_list(run: OptimizationRun) -> str:
    out = run.tools.get("gradient_analyzer")
    if out is not None and getattr(out, "findings", None) is not None:
        items = [finding_text(f) for f in out.findings]
    else:
        items = list(run.digest.grad_findings) if run.digest else []
    return "".join(f"<li>{html.escape(text)}</li>" for text in items) or "<li>none</li>"


def changes_text(response: OptimizationResponse) -> str:
    """What the table shows, in words: the fields the challenger changes and the decision (no LM involved)."""
    g = response.gain
    if response.challenger is None:
        return "No candidate was raced to the held-out seeds: the baseline is recommended."
    changes = config_changes(response.baseline.model_dump(mode="json"), response.challenger.model_dump(mode="json"))
    if not changes:
        return "The race winner is the baseline configuration itself: the baseline is recommended."
    verdict = "adopted: it is the recommendation" if g.adopted else "not adopted: the baseline is recommended"
    return (f"The challenger differs from the baseline in {len(changes)} field(s): {describe_changes(changes)}. "
            f"It was {verdict} ({g.reason}).")


def choice_text(response: OptimizationResponse) -> str:
    """The planner's explanation of the choice (the rationale's last 'Choice:' part)."""
    parts = [p for p in response.rationale.split("\n\n") if p.startswith("Choice: ")]
    return parts[-1].removeprefix("Choice: ") if parts else ""


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;box-sizing:border-box}
table{border-collapse:collapse;max-width:100%}td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-size:13px;
text-align:left;vertical-align:top}th{background:#f4f4f4}tr.diff td,tr.challenger td{font-weight:bold}
tr.best td{background:#eef7ee}.wide{max-width:100%;overflow-x:auto}.plots{display:flex;flex-wrap:wrap;gap:1%}
.plots img{width:49%;height:auto}pre{white-space:pre-wrap;overflow-wrap:anywhere}p.choice{background:#f6f8ff;
padding:.6em}"""


def write_report(response: OptimizationResponse, run: OptimizationRun, path: Path, plots: bool = True) -> Path:
    """report.html; ``plots=False`` leaves the figures out (a spent time budget) and says so."""
    g = response.gain
    with PLOT_LOCK:  # pyplot's global state: two runs in flight (aoptimize_training) draw one at a time
        figures = (
            [*(plot_tool(run, name) for name in TOOL_PLOTS), plot_candidates(run), plot_convergence(run, response)]
            if plots
            else []
        )
    images = "".join(f'<img class="plot" alt="plot" src="data:image/png;base64,{p}">' for p in figures if p)
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
    rerun = f"; {html.escape(fresh)}" if (fresh := g.new_seeds_text()) else ""
    horizon = f"Recommended for {response.horizon.text()}" if response.horizon else "Recommendation"
    choice = choice_text(response)
    title = f"trainopt: {html.escape(response.workload)}"
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head><body>
<h1>trainopt optimize: {html.escape(response.workload)} on {html.escape(response.device)}</h1>
<p>{html.escape(horizon)}. Held-out loss reduction of the challenger against the baseline,
{html.escape(g.claim_text())}: <b>{g.relative_loss_reduction:+.1%}</b> (90% interval {g.interval[0]:+.1%} to
{g.interval[1]:+.1%}; better on {g.wins} of {len(g.seeds)} held-out seeds){rerun}.
{html.escape(g.reason[0].upper() + g.reason[1:])}.
LM: {html.escape(response.lm.requested)}, {response.lm.calls} call(s).
{"Replayed from a recording." if response.replayed else ""}</p>
<div class="wide"><table id="summary">{summary_table(response)}</table></div>
<p class="changes">{html.escape(changes_text(response))}</p>
{f'<p class="choice">Planner: {html.escape(choice)}</p>' if choice else ""}{prediction}
<h2>Candidates</h2><p>Raced on the selection seeds (successive halving); the challenger then met the baseline on
the held-out seeds above.</p><div class="wide"><table id="candidates">{candidates_table(response)}</table></div>
{search_table(run)}
<h2>Gradient findings</h2><ul>{findings_list(run)}</ul>
<h2>Plots</h2><div class="plots">{images}</div>
<h2>Rationale</h2><pre>{html.escape(response.rationale)}</pre>
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul></body></html>"""
    atomic_write(path, text)
    return path
