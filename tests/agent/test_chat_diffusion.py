"""The chat's diffusion tool: the offline planner routes sampling questions to it; it runs the router once."""

from __future__ import annotations

import pytest

from trainopt.agent import chat_tools
from trainopt.agent.chat import ChatSession
from trainopt.agent.chat_diffusion import SAMPLE_DIFFUSION, DiffusionSample, diffusion_answer, diffusion_args
from trainopt.agent.offline_chat import pick_tool

FAKE = DiffusionSample(workload="moons", speed_weight=30.0, max_nfe=None, expert="distilled", num_steps=2, nfe=2,
                       seconds=0.01, energy=0.0041, mmd=0.01, off_mode=0.02, floor_energy=0.0036,
                       expected_energy=0.0043, alternatives=[{"arm": "distilled/4", "energy": 0.0042, "nfe": 4}])


@pytest.mark.parametrize("question,args", [
    ("sample moons fast", {"toy": "moons", "speed_weight": 30.0}),
    ("best quality in 20 steps", {"toy": "moons", "speed_weight": 0.01, "max_nfe": 20}),
    ("Sample 8 gaussians with at most 8 model calls", {"toy": "8gaussians", "speed_weight": 1.0, "max_nfe": 8}),
])
def test_sampling_questions_go_to_the_diffusion_tool_with_their_request(question, args):
    # The topic matches before any probe's, and the speed weight and the NFE cap are read from the words.
    assert pick_tool(question) == SAMPLE_DIFFUSION
    assert diffusion_args(question) == args


@pytest.mark.parametrize("question", ["what batch size should I use", "my loss oscillates", "find a learning rate"])
def test_training_questions_do_not_go_to_the_diffusion_tool(question):
    assert pick_tool(question) != SAMPLE_DIFFUSION


def test_the_tool_runs_the_router_once_and_replays_from_the_cache(tmp_path, monkeypatch):
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return FAKE

    monkeypatch.setattr(chat_tools, "sample_diffusion", fake)
    with ChatSession("digits-mlp", device="cpu", out_dir=tmp_path) as session:
        tool = {t.name: t for t in session.react.tools.values()}[SAMPLE_DIFFUSION]
        first = tool(toy="moons", speed_weight=30.0)
        second = tool(toy="moons", speed_weight=30.0)
    # One router run for two identical requests; the observation carries the measured pick.
    assert calls == [{"toy": "moons", "speed_weight": 30.0, "max_nfe": None}]
    assert first == second and first["tool"] == SAMPLE_DIFFUSION and first["nfe"] == 2


def test_the_answer_cites_the_measured_numbers():
    answer = diffusion_answer(FAKE.model_dump(), "sample moons fast")
    # The pick, its counted NFE and its energy against the floor.
    assert "distilled with 2 steps" in answer and "2 model calls" in answer
    assert "0.0041" in answer and "0.0036" in answer
