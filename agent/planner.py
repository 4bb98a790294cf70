"""The offline planner's decisions: deterministic rules over the probe evidence.

Peaks are matched by their *mean* LR over a run (digest.mean_lr): a cosine or one-cycle schedule
applies about half its peak on average, so its peak is twice the constant LR it stands beside.

propose: anchor on the range test's suggestion carried to the batch probe's pick (lr0; the pick moved
         toward the critical batch: down under a time budget, up under a step budget), then spread
         what a measurement can separate: warmup-cosine at 2 lr0 (mean lr0), constant at lr0, a
         half batch (LR scaled by the probe's rule; Goyal et al. 2017, Malladi et al. 2022),
         constant at 2 lr0 and one-cycle at 4 lr0 (mean 2 lr0: the valley rule lands below the
         best grid LR, bench/lr_rules). Nothing below lr0: the suggestion is the low side already.
refine:  move around the best measured candidate: an LR step judged against the measured runs of
         its own schedule and batch (x2 or /2 at their edge, x/ sqrt 2 inside, both ways when it is
         alone), never a mean LR above digest.UPWARD_CAP x the suggestion (short runs favour
         aggressive LRs); the other batch, another weight decay, the other schedule; never a
         measured configuration again.
explain: the winner, the measured gain, and the evidence behind each setting.
"""

from __future__ import annotations

import math
from typing import Any

from trainopt.agent.digest import CAP_TOLERANCE, UPWARD_CAP, MeasuredResult, ProbeDigest, mean_lr
from trainopt.agent.schemas import CandidateProposal

WARMUP = 0.05  # share of steps for warmup in warmup_cosine candidates


def _clip_value(digest: ProbeDigest) -> float | None:
    wants = any(("explod" in f.lower() or "spike" in f.lower()) for f in digest.grad_findings)
    return digest.grad_clip_suggested if wants else None


def _lr(digest: ProbeDigest, lr: float) -> float:
    low, high = digest.lr_safe_range
    return float(f"{min(max(lr, low), high):.3g}")


def _scale_lr(digest: ProbeDigest, lr: float, from_batch: int, to_batch: int) -> float:
    return lr * digest.lr_at_batch(to_batch) / digest.lr_at_batch(from_batch)


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
    b_probe, clip = digest.clip_batch(digest.batch_recommended), _clip_value(digest)
    b0 = b_probe
    if digest.batch_noise_scale is not None and digest.batch_noise_scale > 0:
        critical = digest.clip_batch(2 ** max(0, round(math.log2(digest.batch_noise_scale))))
        # below the critical batch (B_simple, McCandlish et al. 2018) a bigger batch buys about proportional
        # progress per step, beyond it little and it spends examples: the batch is cut to it
        b0 = min(b0, critical)
    # the range test ran at lr_batch_size: carry its suggestion to b0 with the probe's scaling rule
    lr0 = digest.lr_at_batch(b0)
    # half the batch: more updates from the same examples
    b_alt = digest.clip_batch(max(digest.batch_range[0], b0 // 2))
    alt_why = f"batch {b_alt}: more updates per epoch"
    rule = digest.lr_rule.split(":")[0]
    plan = [
        dict(lr=2 * lr0, batch_size=b0, schedule="warmup_cosine", warmup_fraction=WARMUP,
             why=f"range-test suggestion ({rule}) at batch {b0} from the batch probe is {lr0:.3g}; a cosine "
                 f"applies half its peak on average, so its peak is {2 * lr0:.3g}"),
        dict(lr=lr0, batch_size=b0, schedule="constant", warmup_fraction=0.0,
             why=f"the suggestion {lr0:.3g} held constant: the same mean LR without annealing"),
        dict(lr=2 * digest.lr_at_batch(b_alt), batch_size=b_alt, schedule="warmup_cosine", warmup_fraction=WARMUP,
             why=f"{alt_why}, the warmup-cosine peak scaled by the {digest.lr_scaling_rule} rule"),
        dict(lr=2 * lr0, batch_size=b0, schedule="constant", warmup_fraction=0.0,
             why="twice the suggestion held constant: the valley rule lands below the best LR of a grid"),
        dict(lr=4 * lr0, batch_size=b0, schedule="one_cycle", warmup_fraction=0.0,
             why=f"one-cycle at {4 * lr0:.3g} (mean {2 * lr0:.3g}): the range test's upper side, annealed"),
        dict(lr=lr0, batch_size=b0, schedule="cosine", warmup_fraction=0.0,
             why="the suggestion as a cosine peak: half the mean LR, the conservative side"),
    ]
    seen, candidates = set(), []
    for item in plan:
        c = CandidateProposal(optimizer=opt, weight_decay=wd, grad_clip=clip, **{**item, "lr": _lr(digest, item["lr"])})
        if _key(c) not in seen:
            seen.add(_key(c))
            candidates.append(c)
        if len(candidates) == num_candidates:
            break
    knee = "" if digest.batch_knee is None else f"throughput knee {digest.batch_knee}, "
    clip_note = f" Gradient clipping at {clip:.3g} follows the gradient findings." if clip else ""
    rationale = (
        f"The LR range test (batch {digest.lr_batch_size}) suggests a peak of {digest.lr_suggested:.3g} "
        f"({digest.lr_rule}), {lr0:.3g} at batch {b0}; it trained without diverging "
        f"between {digest.lr_safe_range[0]:.3g} and {digest.lr_safe_range[1]:.3g}. "
        f"The batch probe recommends {b_probe} ({knee}noise-scale batch "
        f"{_fmt(digest.batch_noise_scale)}); the anchor batch is {b0}. Peaks are matched by their mean LR "
        f"(a cosine applies half its peak on average). The {len(candidates)} candidates spread the LR, the "
        f"schedule and the batch so that {digest.steps_per_candidate}-step measurements can separate "
        f"them.{clip_note}"
    )
    return candidates, rationale


def refine(
    digest: ProbeDigest, results: list[MeasuredResult], num_candidates: int
) -> tuple[list[CandidateProposal], str]:
    """New candidates around the best measured one (``results`` come best first); none repeats a measured
    configuration."""
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
    best = usable[0]
    # neighbours are judged against runs of the same schedule and batch: a cosine peak and a constant
    # LR of the same value are different mean LRs
    lrs = sorted({r.lr for r in usable if (r.schedule, r.batch_size) == (best.schedule, best.batch_size)})
    cap = digest.mean_lr_cap(best.batch_size)
    fits = lambda f: mean_lr(best.lr * f, best.schedule) <= cap * CAP_TOLERANCE  # noqa: E731
    if len(lrs) == 1:
        steps = [
            (math.sqrt(2), f"best LR {best.lr:.3g} is the only one measured with its schedule and batch: above it"),
            (1 / math.sqrt(2), f"best LR {best.lr:.3g} is the only one measured with its schedule and batch: below"),
        ]
    elif best.lr >= lrs[-1]:
        steps = [(2.0, f"best LR {best.lr:.3g} was the highest measured: try twice it")]
    elif best.lr <= lrs[0]:
        steps = [(0.5, f"best LR {best.lr:.3g} was the lowest measured: try half of it")]
    else:
        steps = [
            (math.sqrt(2), f"best LR {best.lr:.3g} lies inside the measured range: probe above it"),
            (1 / math.sqrt(2), f"best LR {best.lr:.3g} lies inside the measured range: probe below it"),
        ]
    capped = [(f, why) for f, why in steps if f <= 1 or fits(f)]
    if not capped and best.lr <= lrs[0]:  # nothing measured below it: the way down is the open side
        capped = [(0.5, f"best LR {best.lr:.3g} is at the cap of {UPWARD_CAP:g}x the suggested mean LR: try half")]
    elif not capped:  # at the cap with lower LRs measured: between the best and the next one down
        lower = max(lr for lr in lrs if lr < best.lr)
        capped = [(math.sqrt(lower / best.lr), f"best LR {best.lr:.3g} is at the cap of {UPWARD_CAP:g}x the "
                   f"suggested mean LR: between it and {lower:.3g}")]
    steps = capped
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
    alt_batch = digest.clip_batch(best.batch_size // 2 if best.batch_size <= batches[0] else best.batch_size * 2)
    if best.batch_size > batches[0] and best.batch_size < batches[-1]:
        alt_batch = digest.clip_batch(best.batch_size // 2)  # inside the measured batches: the cheaper side
    if alt_batch == best.batch_size:  # half of it is below the allowed range: the other side
        alt_batch = digest.clip_batch(best.batch_size * 2)
    plan.append(dict(base, batch_size=alt_batch, lr=_scale_lr(digest, best.lr, best.batch_size, alt_batch),
                     why=f"batch {alt_batch} with the LR scaled by the {digest.lr_scaling_rule} rule"))
    plan.append(dict(base, lr=best.lr, weight_decay=0.1 if best.weight_decay < 0.1 else 0.01,
                     why="the best configuration with a different weight decay (regularisation)"))
    other = "warmup_cosine" if best.schedule == "constant" else "constant"
    other_lr = best.lr * mean_lr(1.0, best.schedule) / mean_lr(1.0, other)  # the same mean LR
    plan.append(dict(base, lr=other_lr, schedule=other, warmup_fraction=WARMUP if other == "warmup_cosine" else 0,
                     why=f"the best configuration (score {best.score:.3g}) as {other} at the same mean LR"))
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
