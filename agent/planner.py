"""The offline planner's decisions: deterministic rules over the probe evidence.

propose: anchor on the range test's peak LR and the batch probe's pick, then spread the LR
         within the safe range (x1/3, x2), the schedule, and a half batch with the LR scaled by
         the probe's rule (sqrt: lr * sqrt(b'/b), linear: lr * b'/b; Goyal et al. 2017,
         Malladi et al. 2022).
refine:  move around the best measured candidate: one LR step toward the unexplored side
         (x2 or /2 at the edge of what was measured, else x sqrt 2 both ways), the other
         schedule, and the other batch; never re-propose a measured configuration.
explain: the winner, the measured gain, and the evidence behind each setting.
"""

from __future__ import annotations

import math
from typing import Any

from trainopt.agent.digest import MeasuredResult, ProbeDigest
from trainopt.agent.schemas import CandidateProposal

WARMUP = 0.05  # share of steps for warmup in warmup_cosine candidates
UPWARD_CAP = 2.0  # refine never proposes an LR above this multiple of the range test's suggestion


def _clip_value(digest: ProbeDigest) -> float | None:
    wants = any(("explod" in f.lower() or "spike" in f.lower()) for f in digest.grad_findings)
    return digest.grad_clip_suggested if wants else None


def _lr(digest: ProbeDigest, lr: float) -> float:
    low, high = digest.lr_safe_range
    return float(f"{min(max(lr, low), high):.3g}")


def _batch(digest: ProbeDigest, batch: int) -> int:
    low, high = digest.batch_range
    return int(min(max(batch, low), high))


def _scale_lr(digest: ProbeDigest, lr: float, from_batch: int, to_batch: int) -> float:
    ratio = to_batch / from_batch
    return lr * (ratio if digest.lr_scaling_rule == "linear" else math.sqrt(ratio))


def _key(c: CandidateProposal | MeasuredResult) -> tuple:
    return (
        c.optimizer,
        float(f"{c.lr:.3g}"),
        c.batch_size,
        c.schedule,
        round(c.warmup_fraction, 3),
        c.weight_decay,
        c.grad_clip,
    )


def propose(digest: ProbeDigest, num_candidates: int) -> tuple[list[CandidateProposal], str]:
    """k candidates anchored on the measured LR and batch, spread so measurements separate them."""
    opt = "adamw" if "adamw" in digest.optimizer_options else digest.optimizer_options[0]
    wd = 0.01 if opt in ("adamw", "schedulefree") else 0.0
    b0, clip = _batch(digest, digest.batch_recommended), _clip_value(digest)
    if digest.batch_noise_scale is not None and digest.batch_noise_scale < b0:
        # beyond the critical batch (B_simple) a bigger batch buys little progress per step
        b0 = _batch(digest, 2 ** max(0, round(math.log2(digest.batch_noise_scale))))
    # the range test ran at lr_batch_size: carry its suggestion to b0 with the probe's scaling rule
    lr0 = _scale_lr(digest, digest.lr_suggested, digest.lr_batch_size, b0)
    b_half = _batch(digest, max(digest.batch_range[0], b0 // 2))
    rule = digest.lr_rule.split(":")[0]
    plan = [
        dict(lr=lr0, batch_size=b0, schedule="warmup_cosine", warmup_fraction=WARMUP,
             why=f"range-test peak ({rule}) scaled to batch {b0} from the batch probe: {lr0:.3g}"),
        dict(lr=_scale_lr(digest, lr0, b0, b_half), batch_size=b_half, schedule="warmup_cosine",
             warmup_fraction=WARMUP,
             why=f"batch {b_half}: more updates per epoch, LR scaled by the {digest.lr_scaling_rule} rule"),
        dict(lr=lr0 * 2, batch_size=b0, schedule="one_cycle", warmup_fraction=0.0,
             why="twice the suggested peak, one-cycle: the range test's upper side, annealed"),
        dict(lr=lr0 / 3, batch_size=b0, schedule="cosine", warmup_fraction=0.0,
             why=f"a third of the suggested peak: margin below divergence at {digest.lr_safe_range[1]:.3g}"),
        dict(lr=lr0, batch_size=b0, schedule="constant", warmup_fraction=0.0,
             why="the suggested peak held constant: isolates what the schedule adds"),
        dict(lr=lr0 / 10, batch_size=b0, schedule="warmup_cosine", warmup_fraction=WARMUP,
             why="minimum-loss LR / 10, the conservative range-test rule"),
    ]
    seen, candidates = set(), []
    for item in plan:
        c = CandidateProposal(optimizer=opt, weight_decay=wd, grad_clip=clip, **{**item, "lr": _lr(digest, item["lr"])})
        if _key(c) not in seen:
            seen.add(_key(c))
            candidates.append(c)
        if len(candidates) == num_candidates:
            break
    clip_note = f" Gradient clipping at {clip:.3g} follows the gradient findings." if clip else ""
    rationale = (
        f"The LR range test (batch {digest.lr_batch_size}) suggests a peak of {digest.lr_suggested:.3g} "
        f"({digest.lr_rule}), {lr0:.3g} at batch {b0}; it trained without diverging "
        f"between {digest.lr_safe_range[0]:.3g} and {digest.lr_safe_range[1]:.3g}. "
        f"The batch probe recommends {b0} (throughput knee {digest.batch_knee}, noise-scale batch "
        f"{_fmt(digest.batch_noise_scale)}). The {len(candidates)} candidates anchor on these and spread the "
        f"LR, the schedule and the batch so that {digest.steps_per_candidate}-step measurements can separate "
        f"them.{clip_note}"
    )
    return candidates, rationale


def refine(
    digest: ProbeDigest, results: list[MeasuredResult], num_candidates: int
) -> tuple[list[CandidateProposal], str]:
    """New candidates around the best measured one; none repeats a measured configuration."""
    usable = [r for r in results if not r.diverged and r.rejected is None and math.isfinite(r.score)]
    if not usable:
        lowest = min(r.lr for r in results)
        seed = CandidateProposal(
            optimizer=results[0].optimizer,
            lr=_lr(digest, lowest / 3),
            batch_size=results[0].batch_size,
            schedule="warmup_cosine",
            warmup_fraction=WARMUP,
            why=f"every measured candidate failed: a third of the lowest measured LR {lowest:.3g}",
        )
        return [seed], f"No measured candidate was usable; retrying below the lowest LR {lowest:.3g}."
    best = min(usable, key=lambda r: r.score)
    lrs = sorted({r.lr for r in usable})
    # short runs favour aggressive LRs; the range-test rule was measured to land within 2x of the best
    # grid LR, so upward moves stop at UPWARD_CAP x the suggestion and the way down stays open
    cap = UPWARD_CAP * _scale_lr(digest, digest.lr_suggested, digest.lr_batch_size, best.batch_size)
    if best.lr >= lrs[-1] and best.lr * 2 <= cap * 1.001:
        steps = [(2.0, f"best LR {best.lr:.3g} was the highest measured: try twice it")]
    elif best.lr >= lrs[-1]:
        steps = [(0.5, f"best LR {best.lr:.3g} is at the cap of {UPWARD_CAP:g}x the suggestion: try half of it")]
    elif best.lr <= lrs[0]:
        steps = [(0.5, f"best LR {best.lr:.3g} was the lowest measured: try half of it")]
    else:
        steps = [
            (math.sqrt(2), f"best LR {best.lr:.3g} lies inside the measured range: probe above it"),
            (1 / math.sqrt(2), f"best LR {best.lr:.3g} lies inside the measured range: probe below it"),
        ]
        steps = [(f, why) for f, why in steps if best.lr * f <= cap * 1.001] or steps[1:]
    base = dict(
        optimizer=best.optimizer,
        batch_size=best.batch_size,
        weight_decay=best.weight_decay,
        schedule=best.schedule,
        warmup_fraction=best.warmup_fraction,
        grad_clip=best.grad_clip,
    )
    plan = [dict(base, lr=best.lr * f, why=why) for f, why in steps]
    batches = sorted({r.batch_size for r in usable})
    alt_batch = _batch(digest, best.batch_size // 2 if best.batch_size <= batches[0] else best.batch_size * 2)
    if best.batch_size > batches[0] and best.batch_size < batches[-1]:
        alt_batch = _batch(digest, best.batch_size // 2)  # inside the measured batches: the cheaper side
    plan.append(dict(base, batch_size=alt_batch, lr=_scale_lr(digest, best.lr, best.batch_size, alt_batch),
                     why=f"batch {alt_batch} with the LR scaled by the {digest.lr_scaling_rule} rule"))
    plan.append(dict(base, lr=best.lr, weight_decay=0.1 if best.weight_decay < 0.1 else 0.01,
                     why="the best configuration with a different weight decay (regularisation)"))
    other = "one_cycle" if best.schedule != "one_cycle" else "warmup_cosine"
    plan.append(dict(base, lr=best.lr, schedule=other, warmup_fraction=WARMUP if other == "warmup_cosine" else 0,
                     why=f"the best configuration (score {best.score:.3g}) with a {other} schedule"))
    seen = {_key(r) for r in results}
    candidates = []
    for item in plan:
        c = CandidateProposal(**{**item, "lr": _lr(digest, item["lr"])})
        if _key(c) not in seen:
            seen.add(_key(c))
            candidates.append(c)
        if len(candidates) == num_candidates:
            break
    diverged = [r for r in results if r.diverged]
    rejected = [r for r in results if r.rejected]
    rationale = (
        f"Best so far: {best.optimizer} lr={best.lr:.3g}, batch {best.batch_size}, {best.schedule} "
        f"(val loss {best.val_loss:.4g}, score {best.score:.3g} relative to the baseline). "
        f"{len(diverged)} measured candidate(s) diverged, {len(rejected)} broke a constraint. "
        f"This round tests {len(candidates)} neighbours of the best one."
    )
    return candidates, rationale


def explain(digest: ProbeDigest, winner: MeasuredResult, comparison: dict[str, Any]) -> str:
    """A short account of the choice, with the measured numbers."""
    base_loss, win_loss = comparison["baseline_val_loss"], comparison["recommended_val_loss"]
    change = (base_loss - win_loss) / base_loss * 100 if base_loss else 0.0
    verdict = (
        f"{change:.1f}% lower validation loss than the baseline"
        if change > 0
        else f"no gain over the baseline ({-change:.1f}% higher validation loss)"
    )
    metric = ""
    if comparison.get("baseline_val_metric") is not None and comparison.get("recommended_val_metric") is not None:
        metric = (
            f" ({digest.metric_name or 'metric'} {comparison['recommended_val_metric']:.4f} against "
            f"{comparison['baseline_val_metric']:.4f})"
        )
    clip = f", clipping at {winner.grad_clip:.3g} from the gradient analysis" if winner.grad_clip else ""
    rejected = comparison.get("rejected") or []
    reject_note = f" {len(rejected)} candidate(s) were rejected by a constraint: {rejected[0]}." if rejected else ""
    base = digest.baseline
    if (winner.optimizer, winner.lr, winner.batch_size, winner.schedule) == (
            base.get("optimizer"), base.get("lr"), base.get("batch_size"), base.get("schedule")):
        return (
            f"The baseline ({winner.optimizer}, LR {winner.lr:.3g}, batch {winner.batch_size}, {winner.schedule}) "
            f"is recommended: no measured candidate beat it over {comparison['steps']} steps on seeds "
            f"{comparison['seeds']} (validation loss {base_loss:.4g}{metric}). The range test suggested "
            f"{digest.lr_suggested:.3g} within {digest.lr_safe_range[0]:.3g}-{digest.lr_safe_range[1]:.3g} and "
            f"the batch probe {digest.batch_recommended}; the candidates built on them were measured and lost."
            f"{reject_note}"
        )
    return (
        f"Recommended {winner.optimizer} with peak LR {winner.lr:.3g}, batch {winner.batch_size} and a "
        f"{winner.schedule} schedule{clip}. Over {comparison['steps']} steps on seeds "
        f"{comparison['seeds']} it "
        f"reached validation loss {win_loss:.4g} against the baseline's {base_loss:.4g}: {verdict}{metric}. "
        f"The LR sits within the range test's safe range {digest.lr_safe_range[0]:.3g}-"
        f"{digest.lr_safe_range[1]:.3g} (suggested {digest.lr_suggested:.3g} at batch {digest.lr_batch_size}); "
        f"the batch probe recommended {digest.batch_recommended}.{reject_note}"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
