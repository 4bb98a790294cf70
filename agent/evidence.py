"""From tool outputs and trials to the evidence: the planner's digest and the response's record."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from trainopt.agent.digest import ProbeDigest
from trainopt.agent.schemas import TrainingConfig
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult
from trainopt.tools.workloads import Workload

SLOW_SIDE = 10.0  # the planner may go this factor below the range test's lower end


def _finding_text(finding: Any) -> str:
    """'severity layer: evidence -> fix' of a typed gradient finding (a model or a dict)."""
    get = finding.get if isinstance(finding, dict) else lambda k, d=None: getattr(finding, k, d)
    kind = get("kind") or get("type") or ""
    text = f"{get('severity') or 'info'} {get('layer') or 'whole model'} {kind}".strip()
    return f"{text}: {get('evidence', '')} -> {get('suggested_fix', get('fix', ''))}".strip()


def build_digest(
    workload: Workload,
    parameters: int,
    space: TrainingConfig,
    baseline: TrialConfig,
    candidate_steps: int,
    lr_out: BaseModel,
    batch_out: BaseModel | None,
    grad_out: BaseModel | None,
) -> ProbeDigest:
    """The numbers a plan needs, all from the probes: no wall-clock figure among them."""
    # the range test's upper end is where training breaks down: a hard limit. Its lower end is where
    # the loss starts to fall: lower LRs are safe, only slow, so a decade below it stays allowed.
    lo, hi = lr_out.safe_range
    lo, hi = max(lo / SLOW_SIDE, space.learning_rate_range[0]), min(hi, space.learning_rate_range[1])
    if lo >= hi:  # the probed range and the allowed one do not overlap: the allowed one wins
        lo, hi = space.learning_rate_range
    b_lo, b_hi = space.batch_size_range
    b_hi = min(b_hi, workload.num_train)
    memory: dict[int, float] = {}
    recommended, knee, noise, rule = baseline.batch_size, None, None, "sqrt"
    if batch_out is not None:
        b_hi = max(b_lo, min(b_hi, batch_out.max_batch_size))
        recommended, knee = batch_out.recommended_batch_size, batch_out.knee_batch_size
        noise = batch_out.critical_batch_size
        rule = "linear" if batch_out.lr_scaling_rule == "linear" else "sqrt"
        memory = {
            p.batch_size: round(p.peak_memory_mb, 3)
            for p in batch_out.measurements
            if p.fits and p.peak_memory_mb is not None
        }
    findings, clip = [], None
    if noise is None and grad_out is not None and getattr(grad_out, "noise_scale", None) is not None:
        noise = grad_out.noise_scale.b_simple  # the gradient analysis measured B_simple too
    if grad_out is not None:
        findings = [_finding_text(f) for f in getattr(grad_out, "findings", [])][:8]
        clip = getattr(grad_out, "clip_threshold", None) or getattr(grad_out, "suggested_clip", None)
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        noise = None  # B_simple = tr(Sigma) / |G|^2 from noisy estimates can come out negative: no usable scale
    return ProbeDigest(
        workload=workload.name,
        parameters=parameters,
        num_train=workload.num_train,
        metric_name=workload.metric_name if workload.metric_fn else None,
        steps_per_candidate=candidate_steps,
        baseline=baseline.model_dump(include={"optimizer", "lr", "batch_size", "schedule", "weight_decay"}),
        optimizer_options=list(space.optimizer_options),
        lr_suggested=min(max(lr_out.suggested_lr, lo), hi),
        lr_rule=f"{lr_out.rule}: {lr_out.rule_reason}",
        lr_batch_size=int(lr_out.config.get("batch_size", baseline.batch_size)),
        lr_safe_range=(lo, hi),
        batch_range=(b_lo, b_hi),
        batch_recommended=min(max(recommended, b_lo), b_hi),
        batch_knee=knee,
        batch_noise_scale=noise,
        lr_scaling_rule=rule,
        grad_findings=findings,
        grad_clip_suggested=clip,
        memory_mb_at_batch=memory,
    )


def trial_record(result: TrialResult, purpose: str) -> dict[str, Any]:
    """One measured trial as the response's evidence: configuration, curve and outcome (no timings)."""
    return {
        "purpose": purpose,
        "config": result.config.model_dump(mode="json"),
        "device": result.device.split(":")[0],
        "steps_run": result.steps_run,
        "val_steps": result.val_steps,
        "val_losses": result.val_losses,
        "val_metrics": result.val_metrics,
        "final_val_loss": result.final_val_loss,
        "final_val_metric": result.final_val_metric,
        "peak_memory_mb": result.peak_memory_mb,
        "diverged": result.diverged,
        "divergence_reason": result.divergence_reason,
        "pruned": result.pruned,
    }
