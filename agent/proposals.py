"""From whatever a planner answered to configurations worth measuring: validated, clamped, merged, cut.

A real LM returns untidy lists: more candidates than asked, the same one twice, NaN or negative LRs,
optimizer names that do not exist, prose where numbers belong. Each proposal is checked on its own:

    rejected   does not validate as a CandidateProposal (the reason names the field and value),
               or names an optimizer outside the allowed options
    clamped    LR and batch moved into the probed safe ranges (each move noted)
    merged     the same configuration after clamping counts once
    cut        beyond ``num_candidates``, the rest are dropped with a note

Examples:
    >>> from trainopt.agent.digest import ProbeDigest
    >>> d = ProbeDigest(workload="w", parameters=1, num_train=100, steps_per_candidate=30, baseline={},
    ...     optimizer_options=["adamw"], lr_suggested=1e-3, lr_rule="valley", lr_safe_range=(1e-4, 1e-2),
    ...     batch_range=(8, 64), batch_recommended=32)
    >>> kept, notes = bound([{"optimizer": "adamw", "lr": 5.0, "batch_size": 32}, {"lr": "fast"}], d, 4, 30, 0)
    >>> [c.config.lr for c in kept], len(notes)
    ([0.01], 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from trainopt.agent.digest import ProbeDigest
from trainopt.agent.horizon import steps_for
from trainopt.agent.schemas import CandidateProposal
from trainopt.tools.trial_config import TrialConfig

FIELDS = set(CandidateProposal.model_fields)


@dataclass
class Proposal:
    """A configuration to race, where it came from, and how it was moved into range."""

    config: TrialConfig
    source: str
    round: int
    clamped: list[str] = field(default_factory=list)


def bound(
    raw: list[Any], digest: ProbeDigest, num_candidates: int, steps: int, seed: int,
    source: str = "planner", round: int = 0,
) -> tuple[list[Proposal], list[str]]:
    """(proposals to measure, notes on every rejection, merge and cut), in the planner's order."""
    notes: list[str] = []
    kept: list[Proposal] = []
    seen: set[str] = set()
    merged = 0
    for i, item in enumerate(raw if isinstance(raw, list) else [raw]):
        proposal, why = _validate(item, digest)
        if proposal is None:
            notes.append(f"{source} candidate {i + 1} rejected: {why}")
            continue
        config, clamped = to_config(proposal, digest, steps, seed)
        if config.key() in seen:
            merged += 1
            continue
        seen.add(config.key())
        kept.append(Proposal(config, source, round, clamped))
    if merged:
        notes.append(f"{merged} {source} candidate(s) merged: the same configuration after clamping")
    if len(kept) > num_candidates:
        notes.append(f"{source} proposed {len(kept)} distinct candidates; the first {num_candidates} are measured "
                     f"(num_candidates={num_candidates})")
        kept = kept[:num_candidates]
    return kept, notes


def _validate(item: Any, digest: ProbeDigest) -> tuple[CandidateProposal | None, str]:
    if isinstance(item, CandidateProposal):
        item = item.model_dump()
    if not isinstance(item, dict):
        return None, f"not a JSON object: {str(item)[:80]!r}"
    known = {k: v for k, v in item.items() if k in FIELDS}
    try:
        proposal = CandidateProposal.model_validate(known)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return None, f"{where}={first.get('input')!r}: {first['msg']}"
    if not math.isfinite(proposal.lr):
        return None, f"lr={proposal.lr!r}: not a finite number"
    if proposal.optimizer not in digest.optimizer_options:
        return None, f"optimizer={proposal.optimizer!r} is not among the allowed options {digest.optimizer_options}"
    return proposal, ""


def to_config(proposal: CandidateProposal, digest: ProbeDigest, steps: int, seed: int) -> tuple[TrialConfig, list[str]]:
    """A proposal as a TrialConfig, clamped to the probed safe ranges (each move noted), trained on the examples
    of ``steps`` steps at the baseline's batch (agent/horizon.py: a larger batch trains fewer steps)."""
    clamped = []
    lr = min(max(proposal.lr, digest.lr_safe_range[0]), digest.lr_safe_range[1])
    if abs(lr - proposal.lr) > 1e-3 * proposal.lr:
        clamped.append(f"lr {proposal.lr:.3g} -> {lr:.3g} (probed safe range)")
    batch = min(max(proposal.batch_size, digest.batch_range[0]), digest.batch_range[1])
    if batch != proposal.batch_size:
        clamped.append(f"batch_size {proposal.batch_size} -> {batch} (allowed and fitting range)")
    schedule = "constant" if proposal.optimizer == "schedulefree" else proposal.schedule
    steps = steps_for(steps * digest.baseline.get("batch_size", batch), batch)
    warmup = 0 if schedule == "one_cycle" else min(steps - 1, round(proposal.warmup_fraction * steps))
    config = TrialConfig(
        optimizer=proposal.optimizer,
        lr=float(f"{lr:.4g}"),
        batch_size=batch,
        weight_decay=proposal.weight_decay,
        schedule=schedule,
        warmup_steps=warmup,
        grad_clip=proposal.grad_clip,
        seed=seed,
        steps=steps,
    )
    return config, clamped
