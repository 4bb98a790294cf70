"""Untidy proposals: cut, merged, clamped, rejected with the reason, and a misbehaving LM server."""

from __future__ import annotations

import math

import pytest

from trainopt.agent.planning import Planner
from trainopt.agent.proposals import bound

OBJECTIVE, CONSTRAINTS = '{"loss": 1.0}', "{}"
GOOD = {"optimizer": "adamw", "lr": 3e-3, "batch_size": 64, "schedule": "constant"}


def test_too_many_candidates_are_cut_with_a_note(digest):
    raw = [{**GOOD, "lr": 1e-3 * (i + 1)} for i in range(12)]
    kept, notes = bound(raw, digest, 4, 100, 0)
    # the first four distinct ones, in the planner's order, and a note naming the count and the limit
    assert [p.config.lr for p in kept] == [1e-3, 2e-3, 3e-3, 4e-3]
    assert any("12 distinct candidates" in n and "num_candidates=4" in n for n in notes)


def test_duplicates_are_merged_after_clamping(digest):
    # 50 and 60 both clamp to the safe range's top: one configuration, measured once
    kept, notes = bound([GOOD, dict(GOOD), {**GOOD, "lr": 50.0}, {**GOOD, "lr": 60.0}], digest, 8, 100, 0)
    assert len(kept) == 2 and kept[1].config.lr == digest.lr_safe_range[1]
    assert "lr 50 -> 0.02 (probed safe range)" in kept[1].clamped
    assert any("2 planner candidate(s) merged" in n for n in notes)


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({**GOOD, "lr": math.nan}, "lr=nan"),
        ({**GOOD, "lr": -0.01}, "lr=-0.01"),
        ({**GOOD, "lr": math.inf}, "not a finite number"),
        ({**GOOD, "optimizer": "adamx"}, "optimizer='adamx'"),
        ({**GOOD, "optimizer": "prodigy"}, "not among the allowed options"),
        ({**GOOD, "lr": "about three times the suggestion"}, "lr='about three times the suggestion'"),
        ({**GOOD, "batch_size": "large"}, "batch_size='large'"),
        ("use a larger batch", "not a JSON object"),
    ],
)
def test_each_bad_candidate_is_rejected_with_its_reason(digest, bad, reason):
    kept, notes = bound([bad, GOOD], digest, 4, 100, 0)
    # the bad one alone is dropped; the note names the field and the value
    assert [p.config.lr for p in kept] == [GOOD["lr"]]
    assert len(notes) == 1 and "candidate 1 rejected" in notes[0] and reason in notes[0]


def test_unknown_extra_fields_do_not_reject_a_candidate(digest):
    kept, notes = bound([{**GOOD, "momentum": 0.9, "comment": "ok"}], digest, 4, 100, 0)
    assert len(kept) == 1 and notes == []


def test_an_untidy_server_answer_is_bounded_not_thrown_away(digest):
    from openai_server import PlannerServer

    from trainopt.agent.proposals import bound as bound_again

    with PlannerServer(script=["untidy"]) as server:
        planner = Planner(f"openai/trainopt-planner@{server.url}")
        prediction = planner.ask("propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS,
                                 num_candidates=3)
    # the LM's answer parsed (no fallback) though it held 3x too many candidates, some of them junk
    assert planner.usage().fallbacks == [] and len(prediction.candidates) > 3
    kept, notes = bound_again(prediction.candidates, digest, 3, 100, 0)
    assert len(kept) == 3
    joined = " | ".join(notes)
    for reason in ("lr=nan", "lr=-0.01", "optimizer='adamx'", "about three times", "not a JSON object",
                   "merged", "num_candidates=3"):
        assert reason in joined


@pytest.mark.parametrize("script, why", [(["error", "error"], "LM error"), (["malformed", "malformed"], "malformed")])
def test_a_failing_server_falls_back_to_offline(digest, script, why):
    from openai_server import PlannerServer

    with PlannerServer(script=script) as server:
        planner = Planner(f"openai/trainopt-planner@{server.url}")
        prediction = planner.ask("propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS,
                                 num_candidates=2)
    # the offline planner answered and the usage says why
    assert planner.usage().answered_by == ["propose: offline"] and why in planner.usage().fallbacks[0]
    assert len(prediction.candidates) == 2


def test_a_stalled_server_times_out_and_falls_back(digest, monkeypatch):
    from openai_server import PlannerServer

    monkeypatch.setenv("TRAINOPT_LM_TIMEOUT", "1")
    with PlannerServer(script=["stall:5"]) as server:
        planner = Planner(f"openai/trainopt-planner@{server.url}")
        planner.ask("propose", evidence=digest, objective=OBJECTIVE, constraints=CONSTRAINTS, num_candidates=2)
    # the stall became an LM error after the timeout, not a hung run
    assert planner.usage().answered_by == ["propose: offline"]
    assert "LM error" in planner.usage().fallbacks[0]
