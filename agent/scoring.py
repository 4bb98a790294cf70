"""Objective scores and constraint checks on measured trials.

score = sum_m w_m * value_m(candidate) / value_m(baseline) / sum_m w_m, lower is better, where
value is the validation loss for "loss", 1 - metric for "accuracy", and the measured batch-1
inference latency for "latency_ms" (the same model for every candidate). A diverged trial
scores +inf. A candidate breaking a constraint keeps its score but is rejected with the
measured reason.
"""

from __future__ import annotations

import math

from trainopt.agent.schemas import Constraints
from trainopt.tools.trials import TrialResult


def metric_values(result: TrialResult, latency_ms: float | None) -> dict[str, float]:
    accuracy = result.final_val_metric
    return {
        "loss": result.score,
        "accuracy": math.inf if result.diverged or accuracy is None else 1.0 - accuracy,
        "latency_ms": latency_ms if latency_ms is not None else 1.0,
    }


def objective_score(
    result: TrialResult, baseline: TrialResult, weights: dict[str, float], latency_ms: float | None = None
) -> float:
    """Weighted sum of metric ratios to the baseline; 1.0 is the baseline, lower is better."""
    if result.diverged or not math.isfinite(result.final_val_loss):
        return math.inf
    mine, theirs = metric_values(result, latency_ms), metric_values(baseline, latency_ms)
    total = 0.0
    for metric, weight in weights.items():
        if metric == "accuracy" and result.final_val_metric is None:
            raise ValueError(f"objective weights accuracy but workload {result.workload!r} reports no metric")
        denominator = theirs[metric] if math.isfinite(theirs[metric]) and theirs[metric] > 0 else 1.0
        total += weight * mine[metric] / denominator
    return total / sum(weights.values())


def constraint_violation(result: TrialResult, constraints: Constraints, latency_ms: float | None) -> str | None:
    """The measured reason ``result`` breaks a constraint, or None."""
    if result.diverged:
        return f"diverged at step {result.diverged_at}: {result.divergence_reason}"
    if constraints.max_memory is not None and result.peak_memory_mb > constraints.max_memory:
        return (
            f"peak memory {result.peak_memory_mb:.1f} MiB > max_memory {constraints.max_memory:g} MiB "
            f"(batch {result.config.batch_size}, {result.memory_method.split(':')[0]})"
        )
    if constraints.min_accuracy is not None:
        accuracy = result.final_val_metric
        if accuracy is None or accuracy < constraints.min_accuracy:
            shown = "none" if accuracy is None else f"{accuracy:.4f}"
            return (
                f"validation {result.metric_name or 'metric'} {shown} < min_accuracy "
                f"{constraints.min_accuracy:g} after {result.steps_run} steps"
            )
    if constraints.max_latency_ms is not None and latency_ms is not None and latency_ms > constraints.max_latency_ms:
        return f"batch-1 inference latency {latency_ms:.3f} ms > max_latency_ms {constraints.max_latency_ms:g}"
    return None
