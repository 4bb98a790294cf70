"""The offline planner's explanation of the choice, and the configuration differences it rests on.

``config_changes`` is the one place that says how two configurations differ; the explanation and
report.html's comparison table both use it, so the text names every field where the challenger
and the baseline differ (weight decay included) and cannot contradict the table. The figures
quoted are the held-out ones (mean over the held-out seeds, 90% interval, wins), never one seed's.
"""

from __future__ import annotations

import math
from typing import Any

# (field, label) in the order a reader scans them; the comparison shows every one that differs
FIELDS: list[tuple[str, str]] = [
    ("optimizer", "optimizer"),
    ("lr", "peak LR"),
    ("batch_size", "batch size"),
    ("schedule", "schedule"),
    ("warmup_steps", "warmup steps"),
    ("weight_decay", "weight decay"),
    ("grad_clip", "gradient clipping"),
    ("meta_optimizer", "meta-optimizer"),
    ("optimizer_kwargs", "optimizer arguments"),
]
ALWAYS_SHOWN = ("optimizer", "lr", "batch_size", "schedule")
_DEFAULTS = {"warmup_steps": 0, "weight_decay": 0.0, "grad_clip": None, "meta_optimizer": None, "optimizer_kwargs": {}}


def format_value(field: str, value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def config_changes(baseline: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, baseline value, other value) of every field that differs; a field one side leaves out
    counts as TrialConfig's default (no warmup, no weight decay, no clipping)."""
    changes = []
    for field, label in FIELDS:
        if field not in baseline and field not in other:
            continue
        a, b = baseline.get(field, _DEFAULTS.get(field)), other.get(field, _DEFAULTS.get(field))
        if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-12 * max(abs(a), abs(b)):
            continue
        if a != b:
            changes.append((label, format_value(field, a), format_value(field, b)))
    return changes


def describe_changes(changes: list[tuple[str, str, str]]) -> str:
    """'weight decay 0 -> 0.1 and peak LR 0.001 -> 0.003'."""
    parts = [f"{label} {a} -> {b}" for label, a, b in changes]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_config(config: dict[str, Any]) -> str:
    shown = [f"{label} {format_value(f, config[f])}" for f, label in FIELDS
             if f in config and (f in ALWAYS_SHOWN or config[f] not in (None, 0, 0.0, {}))]
    return ", ".join(shown)


def _finite(value: Any) -> float:
    """A figure that may have crossed JSON (where NaN and infinity become null) as a float."""
    return float("nan") if value is None else float(value)


def _number(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``; "n/a" for a missing or non-finite figure (a diverged run)."""
    value = _finite(value)
    return format(value, spec) if math.isfinite(value) else "n/a"


def explain(digest, winner, comparison: dict[str, Any]) -> str:
    """The choice in a few sentences: what changed, the held-out figures, the decision and its reason."""
    baseline = dict(digest.baseline)
    challenger = comparison.get("challenger") or winner.model_dump()
    changes = config_changes(baseline, challenger)
    n, steps = len(comparison["seeds"]), comparison["steps"]
    lo, hi = (_finite(x) for x in comparison.get("interval") or (None, None))
    claim = comparison.get("claim") or f"{steps} steps each"
    held_out = (
        f"on {n} held-out seeds ({claim}) its mean validation loss was "
        f"{_number(comparison['challenger_val_loss'], '.4g')} against the baseline's "
        f"{_number(comparison['baseline_val_loss'], '.4g')}: a relative reduction of "
        f"{_number(comparison['relative_loss_reduction'], '+.1%')} (90% interval {_number(lo, '+.1%')} to "
        f"{_number(hi, '+.1%')}; better on {comparison.get('wins', 0)} of {n} seeds)"
    )
    probes = (
        f" The range test suggested an LR of {digest.lr_suggested:.3g} (safe {digest.lr_safe_range[0]:.3g}-"
        f"{digest.lr_safe_range[1]:.3g} at batch {digest.lr_batch_size}); the batch probe recommended "
        f"{digest.batch_recommended}."
    )
    if comparison.get("adopted"):
        reason = " The interval lies above the minimum gain asked for, so the winner is adopted."
    elif not (math.isfinite(lo) and math.isfinite(hi)):
        reason = " A run diverged, so the interval is not a figure and the baseline is kept."
    elif lo <= 0 <= hi:
        reason = " The interval straddles zero: no significant difference, so the baseline is kept."
    elif hi < 0:
        reason = " The winner was worse than the baseline on the held-out seeds, so the baseline is kept."
    else:
        reason = " The interval does not clear the minimum gain asked for, so the baseline is kept."
    if not changes:
        return (
            f"The baseline ({describe_config(baseline)}) is recommended: the race's best candidate is the baseline "
            f"configuration itself, so nothing measured beat it.{probes}"
        )
    if comparison.get("adopted"):
        return (
            f"Recommended: the race winner, which differs from the baseline in {len(changes)} field(s): "
            f"{describe_changes(changes)}. Confirmed against the baseline, {held_out}.{reason}{probes}"
        )
    return (
        f"The baseline ({describe_config(baseline)}) is kept. The race winner differs from it in "
        f"{len(changes)} field(s): {describe_changes(changes)}; {held_out}.{reason}{probes}"
    )
