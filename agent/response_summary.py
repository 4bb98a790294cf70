"""The compact form of an OptimizationResponse for an LLM: the decision, the held-out figures, the files.

What ``trainopt.tools.summaries`` is to a probe tool's Output, this is to the whole optimization:
the recommended configuration and the baseline (the fields that matter), the held-out comparison
(mean relative loss reduction with its interval, wins and losses), the reason, the notes, and the
paths of report.html and result.json. At most about 1,500 characters (``summaries.fit``).
"""

from __future__ import annotations

from typing import Any

from trainopt.tools.summaries import cut, fit

CONFIG_FIELDS = ("optimizer", "lr", "batch_size", "schedule", "warmup_steps", "weight_decay", "grad_clip", "steps")


def _sig(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def config_fields(config) -> dict[str, Any]:
    """The fields of a TrialConfig an answer needs, floats to 4 significant digits."""
    values = config.model_dump(mode="json", include=set(CONFIG_FIELDS))
    return {k: _sig(v) if isinstance(v, float) else v for k, v in values.items()}


def _horizon(horizon) -> str | None:
    """The run the recommendation is for; when the user did not state it, how to."""
    if horizon is None:
        return None
    return horizon.text() + ("" if horizon.stated else ", assumed: set train_steps or epochs")


def _assumed(response) -> str | None:
    """The note saying which H was assumed: the horizon field says it already."""
    return None if response.horizon is None else response.horizon.assumed_note()


def summarize_response(response) -> dict[str, Any]:
    """The decision and the held-out figures of an OptimizationResponse, as a small dict."""
    g = response.gain
    challenger = getattr(g, "challenger", None) or getattr(g, "recommended", None)
    interval = getattr(g, "interval", None)
    adopted = getattr(g, "adopted", None)
    r = response.recommended
    decision = (f"{r.optimizer} lr {r.lr:.3g}, batch {r.batch_size}, {r.schedule} schedule, weight decay "
                f"{r.weight_decay:g}" + ("" if adopted is None else (" (adopted)" if adopted else " (the baseline)")))
    summary = {
        "tool": "optimize",
        "workload": response.workload,
        "decision": decision,
        "recommended": config_fields(response.recommended),
        "baseline": None if response.recommended == response.baseline else config_fields(response.baseline),
        "horizon": _horizon(response.horizon),
        "held_out": {
            "claim": g.claim_text() if hasattr(g, "claim_text") else None,
            "seeds": list(g.seeds),
            "steps": g.steps,
            "baseline_val_loss": _sig(g.baseline.loss),
            "challenger_val_loss": None if challenger is None else _sig(challenger.loss),
            "relative_loss_reduction": _sig(g.relative_loss_reduction),
            "interval": None if interval is None else [_sig(v) for v in interval],
            "if_you_rerun": g.new_seeds_text() if hasattr(g, "new_seeds_text") else None,
            "level": getattr(g, "level", None),
            "wins": getattr(g, "wins", None),
            "losses": getattr(g, "losses", None),
            "significant": getattr(g, "significant", None),
        },
        "reason": cut(getattr(g, "reason", None)),
        "candidates_measured": len(response.candidates),
        "notes": [cut(note) for note in response.notes if note != g.reason and note != _assumed(response)],
        "files": {k: v for k, v in (("report_html", response.artifacts.report_html),
                                    ("result_json", response.artifacts.result_json)) if v},
    }
    return fit(summary)
