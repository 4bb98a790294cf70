"""A real run, tiny budget: record it against the local planner server, then replay it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainopt.agent import STEPS, OptimizationRequest, TrainingOptimizationAgent


@pytest.mark.slow
def test_record_then_replay_a_live_run(tmp_path, planner_server, blocked_network_after):
    seen: set[str] = set()
    request = OptimizationRequest(
        workload="digits-mlp",
        num_candidates=2,
        refine_rounds=1,
        constraints={"time_budget_s": 2, "max_memory": 64},
    )
    agent = TrainingOptimizationAgent(
        lm=f"openai/trainopt-planner@{planner_server.url}",
        out_dir=tmp_path / "out",
        progress=lambda step, done, total, message: seen.add(step),
    )
    recorded = agent.optimize_training(request, record=tmp_path / "rec")
    # every step reported progress; the server's LM answered; report and result were written
    assert seen == set(STEPS)
    assert recorded.lm.answered_by and all("trainopt-planner" in who for who in recorded.lm.answered_by)
    assert Path(recorded.artifacts.report_html).is_file() and Path(recorded.artifacts.result_json).is_file()
    assert all(o.config.lr <= recorded.evidence["digest"]["lr_safe_range"][1] for o in recorded.candidates)

    blocked_network_after()  # from here on, no socket may open
    replayed = TrainingOptimizationAgent(out_dir=tmp_path / "again").optimize_training(request, replay=tmp_path / "rec")
    # the same recommendation, evidence and rationale, with no network and no training
    assert json.loads(replayed.model_dump_json(include={"recommended", "evidence", "rationale", "gain"})) == json.loads(
        recorded.model_dump_json(include={"recommended", "evidence", "rationale", "gain"})
    )
    assert replayed.lm.calls == recorded.lm.calls
