"""Compact tool results for LLMs: the decision, the key numbers, the findings, where the rest is.

A tool's ``Output`` holds every measured point (an LR sweep, per-step gradient norms per layer):
thousands of characters an LLM pays for and cannot use. LangChain tools, the MCP server and the
chat hand the model ``summarize(name, output)`` instead, at most ``MAX_CHARS`` characters of JSON,
with the path of the full Output (JSON) and of the tool's figure (PNG) when they were written.
Python callers keep the full ``Output``.

    >>> from trainopt.tools.summaries import summarize, summary_chars       # doctest: +SKIP
    >>> summary = summarize("learning_rate_scheduler", output, workload="digits-mlp")  # doctest: +SKIP
    >>> summary["decision"], summary_chars(summary) <= 1500                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MAX_CHARS = 1500  # JSON characters of one summary, files included (bench/tool_summaries.py measures them)
_TEXT_CHARS = 220  # a free-text field (a reason, a finding's evidence) is cut to this
PLOT_LOCK = threading.Lock()


def summarize(name: str, output: BaseModel, *, workload: str | None = None,
              files: dict[str, str] | None = None) -> dict[str, Any]:
    """The compact summary of tool ``name``'s ``output``; ``files`` maps "json"/"png" to paths."""
    if name not in SUMMARIES:
        raise ValueError(f"no summary for tool {name!r}; known: {sorted(SUMMARIES)}")
    summary: dict[str, Any] = {"tool": name}
    if workload is not None:
        summary["workload"] = workload
    summary.update(SUMMARIES[name](output))
    if files:
        summary["files"] = dict(files)
    return fit(summary)


def summary_chars(summary: Any) -> int:
    """Characters the model reads: the summary as JSON, formatted as LangChain and the MCP server send it."""
    return len(json.dumps(summary))


def fit(summary: dict[str, Any], limit: int = MAX_CHARS) -> dict[str, Any]:
    """Drop list entries from the end of the longest list until the JSON fits in ``limit`` characters.

    Lists are ranked worst first by the summaries (findings by severity), so the tail goes first.
    A summary whose scalars alone exceed the limit is returned as it is (none does today).
    """
    summary = dict(summary)
    while summary_chars(summary) > limit:
        lists = [(summary_chars(v), k) for k, v in summary.items()
                 if isinstance(v, list) and len(v) > 1 and k != "truncated"]
        if not lists:
            break
        key = max(lists)[1]
        summary[key] = summary[key][:-1]
        truncated = summary.setdefault("truncated", [])  # says which lists lost entries
        if key not in truncated:
            truncated.append(key)
    return summary


def write_full_output(tool: Any, output: BaseModel, out_dir: str | Path, stem: str | None = None,
                      plot: bool = True) -> dict[str, str]:
    """Write the full Output as JSON (and the tool's figure as PNG) under ``out_dir``; their paths.

    ``stem`` defaults to the tool's name and a hash of the output, so two calls never overwrite
    each other's files and the same output maps to the same file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = output.model_dump_json(indent=2)
    stem = stem or f"{tool.name}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    files = {"json": str(out_dir / f"{stem}.json")}
    Path(files["json"]).write_text(text)
    if plot and hasattr(tool, "plot"):
        files["png"] = str(out_dir / f"{stem}.png")
        with PLOT_LOCK:  # pyplot keeps global state: async calls in worker threads draw one at a time
            tool.plot(output, files["png"])
    return files


def _sig(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def cut(text: str | None, limit: int = _TEXT_CHARS) -> str | None:
    """``text`` shortened to ``limit`` characters, ending in '...' when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."


# ---- one summary per tool: the decision first, then the numbers it rests on -------------------------


def _lr(out) -> dict[str, Any]:
    return {
        "decision": f"peak lr {out.peak_lr:.3g} with a {out.schedule} schedule ({out.warmup_steps} warmup steps "
                    f"of {out.budget_steps})",
        "suggested_lr": _sig(out.suggested_lr),
        "rule": out.rule,
        "rule_reason": cut(out.rule_reason),
        "safe_range": [_sig(v) for v in out.safe_range],
        "sweep_steps": len(out.sweep.lrs),
        "sweep_stop": out.sweep.stop_reason,
        "min_loss_lr": _sig(out.sweep.min_loss_lr),
        "schedule": out.schedule,
        "peak_lr": _sig(out.peak_lr),
        "warmup_steps": out.warmup_steps,
        "budget_steps": out.budget_steps,
        "final_lr": _sig(out.final_lr),
        "checks": [
            {"schedule": c.schedule, "steps": c.steps, "val_loss": _sig(c.final_val_loss), "diverged": c.diverged}
            for c in out.checks
        ],
    }


def _batch(out) -> dict[str, Any]:
    return {
        "decision": f"batch {out.recommended_batch_size} at lr {out.recommended_lr:.3g}",
        "recommended_batch_size": out.recommended_batch_size,
        "recommended_lr": _sig(out.recommended_lr),
        "lr_scaling_rule": out.lr_scaling_rule,
        "base": {"lr": _sig(out.base_lr), "batch_size": out.base_batch_size},
        "max_batch_size": out.max_batch_size,
        "limited_by": out.limited_by,
        "max_memory_mb": _sig(out.max_memory_mb),
        "knee_batch_size": out.knee_batch_size,
        "critical_batch_size": _sig(out.critical_batch_size, 3),
        "reason": cut(out.recommendation_reason),
    }


def _severity_rank(finding) -> int:
    return ("critical", "warning", "info").index(finding.severity)


def _gradients(out) -> dict[str, Any]:
    worst = max(out.layers, key=lambda layer: layer.update_ratio) if out.layers else None
    noise = out.noise_scale.b_simple if out.noise_scale is not None else None
    unhealthy = {layer.name: layer.status for layer in out.layers if layer.status != "ok"}
    serious = [f for f in out.findings if f.severity != "info"]
    decision = (f"{len(serious)} problem(s) found; clip at {out.clip_threshold:.3g}" if serious
                else f"no layer vanishing, exploding or dead; clip at {out.clip_threshold:.3g}")
    return {
        "decision": decision + (" (the run diverged)" if out.diverged else ""),
        "steps_run": out.steps_run,
        "diverged": out.diverged,
        "final_loss": _sig(out.final_loss),
        "clip_threshold": _sig(out.clip_threshold),
        "clip_percentile": out.clip_percentile,
        "noise_scale_b_simple": _sig(noise, 3),
        "largest_update_ratio": None if worst is None else {"layer": worst.name, "ratio": _sig(worst.update_ratio, 3)},
        "unhealthy_layers": unhealthy,
        "findings": [
            {"severity": f.severity, "layer": f.layer, "evidence": cut(f.evidence), "fix": cut(f.suggested_fix)}
            for f in sorted(out.findings, key=_severity_rank)
        ][:6],
    }


def _convergence(out) -> dict[str, Any]:
    return {
        "decision": f"{out.verdict}: loss {out.predicted_loss:.4g} predicted at step {out.predict_step:g}",
        "curve": out.curve,
        "formula": cut(out.formula),
        "observed_points": out.observed_points,
        "last_observed_step": out.last_observed_step,
        "last_observed_loss": _sig(out.last_observed_loss),
        "predict_step": out.predict_step,
        "predicted_loss": _sig(out.predicted_loss),
        "interval": [_sig(v) for v in out.interval],
        "level": out.level,
        "target_loss": _sig(out.target_loss),
        "steps_to_target": out.steps_to_target,
        "verdict": out.verdict,
        "reason": cut(out.reason),
    }


def _hpo(out) -> dict[str, Any]:
    keep = ("optimizer", "lr", "batch_size", "schedule", "weight_decay", "steps")
    c = out.best_config
    return {
        "decision": f"{c.get('optimizer')} lr {c.get('lr', 0):.3g}, batch {c.get('batch_size')}, "
                    f"{c.get('schedule')} schedule (val loss {out.best_value:.4g})",
        "best_config": {k: (_sig(c.get(k)) if isinstance(c.get(k), float) else c.get(k)) for k in keep},
        "best_val_loss": _sig(out.best_value),
        "trials": len(out.trials),
        "pruned": sum(t.state == "PRUNED" for t in out.trials),
        "steps_spent": out.steps_spent,
        "sampler": out.sampler,
        "pruner": out.pruner,
        "study_name": out.study_name,
    }


def _onnx(out) -> dict[str, Any]:
    r, m = out.report, out.model
    return {
        "decision": f"exported {m.path} ({m.size_bytes / 1024:.1f} kB, {'int8' if m.quantized else 'fp32'}), "
                    f"argmax agreement {r.argmax_agreement:.1%}",
        "model_path": m.path,
        "exporter": m.exporter,
        "quantized": m.quantized,
        "size_bytes": m.size_bytes,
        "trained_steps": out.trained_steps,
        "val_loss": _sig(out.val_loss),
        "max_abs_error": _sig(r.max_abs_error, 3),
        "argmax_agreement": _sig(r.argmax_agreement),
        "latency_p50_ms": [{"runtime": row.runtime, "batch": row.batch_size, "threads": row.threads,
                            "p50_ms": _sig(row.p50_ms, 3)} for row in r.latency],
        "speedup_p50": {k: _sig(v, 3) for k, v in r.speedup_p50.items()},
    }


SUMMARIES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "learning_rate_scheduler": _lr,
    "batch_size_optimizer": _batch,
    "gradient_analyzer": _gradients,
    "convergence_predictor": _convergence,
    "hyperparameter_suggester": _hpo,
    "onnx_optimizer": _onnx,
}
