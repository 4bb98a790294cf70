"""The chat session's logic: tool choice, answers from measured numbers, history, commands, Ctrl-C, replay."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from trainopt.agent.chat import ChatSession
from trainopt.agent.offline_chat import parse_budget, pick_tool, pick_workload

CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "chat-digits-mlp"
PROBE_STEPS = 6  # the smallest probes that still measure something


@pytest.fixture
def session(tmp_path):
    return ChatSession("digits-mlp", lm="offline", probe_steps=PROBE_STEPS, device="cpu",
                       storage=f"sqlite:///{tmp_path / 'trials.db'}", out_dir=tmp_path)


@pytest.mark.parametrize(
    ("question", "tool"),
    [
        ("what learning rate for char-gpt?", "learning_rate_scheduler"),
        ("why does my loss oscillate?", "gradient_analyzer"),
        ("optimize digits-cnn in 2 minutes", "optimize_training"),
        ("which batch size fits in memory?", "batch_size_optimizer"),
        ("how many steps until it converges?", "convergence_predictor"),
        ("run a hyperparameter search", "hyperparameter_suggester"),
        ("which optimizer should I use?", "hyperparameter_suggester"),
        ("hello there", None),
    ],
)
def test_offline_planner_picks_the_tool_from_keywords(question, tool):
    assert pick_tool(question) == tool


@pytest.mark.parametrize(
    ("question", "workload"),
    [("what learning rate for char-gpt?", "char-gpt"), ("tune the cnn", "digits-cnn"), ("why?", "moe-digits")],
)
def test_offline_planner_takes_the_workload_the_question_names(question, workload):
    # a named workload (or an alias) wins over the session's
    assert pick_workload(question, default="moe-digits") == workload


@pytest.mark.parametrize(("question", "seconds"), [("in 2 minutes", 120), ("within 90 s", 90), ("now", None)])
def test_budget_is_read_from_the_question(question, seconds):
    assert parse_budget(question) == seconds


def test_answer_cites_the_numbers_the_probe_measured(session):
    turn = session.ask("what learning rate for digits-mlp?")
    measured = session.ctx.measured[-1]
    # the LR tool ran once on the named workload, and its peak LR and safe range are in the answer
    assert turn.tools == ["learning_rate_scheduler"] and measured["workload"] == "digits-mlp"
    assert f"{measured['peak_lr']:.3g}" in turn.answer
    assert f"{measured['safe_range'][1]:.3g}" in turn.answer


def test_question_without_a_probe_gets_no_number(session):
    turn = session.ask("hello there")
    # nothing measured, so nothing cited
    assert turn.tools == [] and not re.search(r"\d", turn.answer)


def test_history_is_passed_to_the_signature(session):
    session.ask("hello there")
    session.ask("and what about tomorrow?")
    messages = session.lm.history[-1]["messages"]
    # the first turn's question and answer come back as earlier messages of the second turn's request
    assert any("hello there" in str(m["content"]) for m in messages[:-1])
    assert [h["question"] for h in session.history] == ["hello there", "and what about tomorrow?"]


def test_slash_commands_change_the_session(session):
    assert session.handle("/workload digits-cnn").text == "workload: digits-cnn"
    assert session.handle("/budget 120").text == "optimization budget: 120 s"
    # bad values are refused with the value, and the session keeps its settings
    assert "nope" in session.handle("/workload nope").text and session.workload == "digits-cnn"
    assert "'-3'" in session.handle("/budget -3").text and session.budget_s == 120
    assert "/quit" in session.handle("/help").text
    assert session.handle("/quit").quit


def test_report_lists_every_question_and_probe(session, tmp_path):
    session.ask("hello there")
    text = session.handle("/report").text
    # the report is written and names what was asked
    assert "1 question(s), 0 tool run(s)" in text
    assert "hello there" in (tmp_path / "chat-report.md").read_text()


def test_ctrl_c_stops_the_probe_not_the_session(tmp_path):
    def interrupt(tool, done, total):
        if done >= 3:
            raise KeyboardInterrupt

    session = ChatSession("digits-mlp", probe_steps=PROBE_STEPS, device="cpu", progress=interrupt,
                          storage=f"sqlite:///{tmp_path / 'trials.db'}", out_dir=tmp_path)
    turn = session.ask("what learning rate?")
    # the probe stopped after 3 steps, the answer says so, and the session answers the next question
    assert "Stopped learning_rate_scheduler" in turn.answer and "after 3 of" in turn.answer
    assert session.ctx.measured[-1]["interrupted"]
    assert session.ask("hello there").answer


def test_a_failed_probe_answer_names_the_error_not_the_traceback(tmp_path):
    def fail(tool, done, total):
        if done >= 2:
            raise RuntimeError("disk on fire")

    session = ChatSession("digits-mlp", probe_steps=PROBE_STEPS, device="cpu", progress=fail,
                          storage=f"sqlite:///{tmp_path / 'trials.db'}", out_dir=tmp_path)
    answer = session.ask("what learning rate?").answer
    assert "probe failed" in answer and "disk on fire" in answer and "Traceback" not in answer


def test_server_lm_runs_the_same_react_program(planner_server, tmp_path):
    session = ChatSession(lm=f"openai/trainopt-planner@{planner_server.url}", out_dir=tmp_path,
                          storage=f"sqlite:///{tmp_path / 'trials.db'}", device="cpu")
    turn = session.ask("hello there")
    # two requests over HTTP (the ReAct step, then the extraction), answered by the server's model
    assert len(planner_server.requests) == 2 and turn.answered_by == "openai/trainopt-planner"
    assert turn.note is None


def test_two_malformed_answers_fall_back_to_offline(planner_server, tmp_path):
    planner_server.malformed = 2
    session = ChatSession(lm=f"openai/trainopt-planner@{planner_server.url}", out_dir=tmp_path,
                          storage=f"sqlite:///{tmp_path / 'trials.db'}", device="cpu")
    turn = session.ask("hello there")
    # retried once, then the offline planner answered, and the turn says why
    assert turn.answered_by == "offline" and "AdapterParseError" in turn.note


def test_recorded_chat_replays_without_network_or_training(blocked_network, tmp_path):
    recorded = json.loads((CASSETTE / "result.json").read_text())
    with ChatSession(replay=CASSETTE, out_dir=tmp_path) as session:
        turns = [session.ask(t["question"]) for t in recorded["turns"]]
    # the same answers from the same tools, answered by the recorded LM
    assert [t.answer for t in turns] == [t["answer"] for t in recorded["turns"]]
    assert [t.tools for t in turns] == [t["tools"] for t in recorded["turns"]]
    assert {t.answered_by for t in turns} == {"openai/trainopt-planner"}


def test_the_optimize_answer_says_what_a_user_s_own_seeds_should_show():
    from trainopt.agent.offline_chat import _optimize_answer

    config = {"optimizer": "adamw", "lr": 0.003, "batch_size": 64, "schedule": "cosine", "warmup_steps": 0}
    summary = {"workload": "digits-mlp", "budget_s": 60.0, "recommended": config, "baseline": config,
               "challenger": config, "steps": 100, "seeds": [1000, 1001, 1002, 1003, 1004],
               "relative_loss_reduction": 0.2, "interval": (0.1, 0.3), "wins": 5, "adopted": True,
               "new_seeds_text": "over 5 new seeds of yours its mean gain lands in +5.0% to +33.0% (90%)",
               "reason": "adopted", "recommended_metric": None, "baseline_metric": None,
               "candidates_measured": 6, "report_html": "report.html", "notes": []}
    answer = _optimize_answer(summary, "optimize digits-mlp")
    assert "(90% interval +10.0% to +30.0%; better on 5 of 5 seeds); over 5 new seeds of yours" in answer
    assert "new seeds" not in _optimize_answer({**summary, "new_seeds_text": None}, "")  # no challenger: no figure
