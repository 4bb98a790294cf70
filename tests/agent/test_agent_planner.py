"""The planner program: offline engine answers, a litellm LM on the local server, the fallback."""

from __future__ import annotations

import pytest

from trainopt.agent.digest import MeasuredResult
from trainopt.agent.offline_engine import answer_chat
from trainopt.agent.planner import propose
from trainopt.agent.planning import Planner
from trainopt.agent.schemas import CandidateProposal

OBJECTIVE, CONSTRAINTS = '{"loss": 1.0}', "{}"


def _proposals(prediction) -> list[CandidateProposal]:
    """The planner answers candidates as plain objects (each is validated on its own, agent/proposals.py)."""
    return [CandidateProposal.model_validate(c) for c in prediction.candidates]


def _measured(candidates, losses):
    return [
        MeasuredResult(**c.model_dump(exclude={"why"}), val_loss=loss, val_metric=0.9, diverged=False, score=loss / 0.5)
        for c, loss in zip(candidates, losses, strict=True)
    ]


def test_offline_propose_anchors_on_the_range_test(digest):
    prediction = Planner("offline").ask(
        "propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=4
    )
    # the batch is the probe's pick, capped at the critical batch (noise scale 40 -> 32); the constant
    # candidate runs at the range test's suggestion carried from its batch (64) to 32 by the sqrt rule,
    # and the warmup-cosine one at twice that peak: the same mean LR over the run
    candidates = _proposals(prediction)
    first, constant = candidates[:2]
    lr0 = digest.lr_suggested * (32 / 64) ** 0.5
    assert first.batch_size == constant.batch_size == 32 < digest.batch_recommended
    assert constant.schedule == "constant" and constant.lr == pytest.approx(lr0, rel=1e-2)
    assert first.schedule == "warmup_cosine" and first.lr == pytest.approx(2 * lr0, rel=1e-2)
    # all lie in the probed safe range
    assert all(digest.lr_safe_range[0] <= c.lr <= digest.lr_safe_range[1] for c in candidates)
    assert len({(c.lr, c.batch_size, c.schedule) for c in candidates}) == 4


def test_the_anchor_batch_is_cut_to_the_critical_batch_never_raised(digest):
    # compute counts examples: beyond the critical batch a larger one buys little progress per step and spends
    # examples, below it the probe's pick stands
    def anchor(**update):
        candidates, _ = propose(digest.model_copy(update=update), num_candidates=4)
        return candidates[0].batch_size

    assert anchor() == 32  # the probe's pick (64) is above the critical batch (40 -> 32): cut to it
    assert anchor(batch_noise_scale=200.0) == 64  # the critical batch (200 -> 256) is above it: kept
    assert anchor(batch_noise_scale=None) == 64


def test_offline_refine_never_repeats_a_measured_candidate(digest):
    planner = Planner("offline")
    first = _proposals(planner.ask(
        "propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=4
    ))
    results = _measured(first, [0.30, 0.35, 0.40, 0.45])
    again = _proposals(planner.ask(
        "refine",
        evidence=digest,
        objective=OBJECTIVE,
        constraints=CONSTRAINTS,
        results=results,
        num_candidates=3,
    ))
    measured = {(r.lr, r.batch_size, r.schedule, r.weight_decay) for r in results}
    # every refined candidate is new
    assert again and all((c.lr, c.batch_size, c.schedule, c.weight_decay) not in measured for c in again)


def test_offline_refine_keeps_the_mean_lr_under_the_cap(digest):
    from trainopt.agent.digest import mean_lr
    from trainopt.agent.planner import refine

    cap = digest.mean_lr_cap(32)  # 2x the suggestion carried to batch 32
    best = dict(optimizer="adamw", batch_size=32, weight_decay=0.01, warmup_fraction=0.0, grad_clip=None,
                val_metric=0.9, diverged=False)
    results = [  # best first
        MeasuredResult(**best, lr=cap, schedule="constant", val_loss=0.3, score=0.6),  # best, at the cap
        MeasuredResult(**best, lr=cap / 2, schedule="constant", val_loss=0.4, score=0.8),
    ]
    candidates, _ = refine(digest, results, num_candidates=4)
    # short runs favour aggressive LRs: nothing above the cap, and the LR step goes between the two measured
    assert all(mean_lr(c.lr, c.schedule) <= cap * 1.01 for c in candidates)
    assert any(cap / 2 < c.lr < cap and c.schedule == "constant" and c.batch_size == 32 for c in candidates)


def test_offline_engine_refuses_an_unknown_signature():
    system = "Your input fields are:\n1. `x` (str):\nYour output fields are:\n1. `y` (str):\nAll interactions"
    with pytest.raises(ValueError, match="no answer"):
        answer_chat(system, "[[ ## x ## ]]\nhello")


def test_server_lm_answers_the_same_as_offline(digest, planner_server):
    kwargs = dict(evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=4)
    remote = Planner(f"openai/trainopt-planner@{planner_server.url}")
    over_http = remote.ask("propose", **kwargs)
    offline = Planner("offline").ask("propose", **kwargs)
    # one HTTP request, answered by the server's model, same plan as the in-process engine
    assert len(planner_server.requests) == 1
    assert remote.usage().answered_by == ["propose: openai/trainopt-planner"]
    assert over_http.candidates == offline.candidates


def test_malformed_answer_is_retried_once(digest, planner_server):
    planner_server.malformed = 1
    planner = Planner(f"openai/trainopt-planner@{planner_server.url}")
    planner.ask("propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=2)
    # the second request parsed: no fallback, two LM calls
    usage = planner.usage()
    assert usage.fallbacks == [] and usage.calls == 2
    assert usage.answered_by == ["propose: openai/trainopt-planner"]


def test_two_malformed_answers_fall_back_to_offline(digest, planner_server):
    planner_server.malformed = 2
    planner = Planner(f"openai/trainopt-planner@{planner_server.url}")
    prediction = planner.ask("propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=2)
    usage = planner.usage()
    # the offline planner answered, and the usage says why
    assert len(prediction.candidates) == 2
    assert usage.answered_by == ["propose: offline"]
    assert len(usage.fallbacks) == 1 and "AdapterParseError" in usage.fallbacks[0]
    assert usage.calls == 3


def test_unreachable_lm_falls_back_unless_strict(digest):
    kwargs = dict(evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=2)
    planner = Planner("openai/trainopt-planner@http://127.0.0.1:9/v1")
    planner.ask("propose", **kwargs)
    # the connection error is an observation: offline answered
    assert planner.usage().answered_by == ["propose: offline"]
    from trainopt.errors import OptimizationError

    with pytest.raises(OptimizationError, match="failed during propose"):
        Planner("openai/trainopt-planner@http://127.0.0.1:9/v1", strict=True).ask("propose", **kwargs)


@pytest.mark.parametrize("noise", [-12.5, 0.0])
def test_a_non_positive_noise_scale_does_not_break_the_plan(digest, noise):

    # B_simple estimated from noisy norms can be negative (seen on a tanh MLP with lr 0.3): no usable scale
    candidates, _ = propose(digest.model_copy(update={"batch_noise_scale": noise}), num_candidates=4)
    assert len(candidates) == 4 and all(c.batch_size >= digest.batch_range[0] for c in candidates)
