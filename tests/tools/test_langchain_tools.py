"""The trainopt tools as LangChain StructuredTools, driven by a scripted tool-calling chat model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage

from trainopt.tools import TOOL_CLASSES
from trainopt.tools.langchain import as_langchain_tools, run_tool_calling_loop, tool_classes

STEPS = list(range(1, 61))
POWER_LAW = [2.0 * t**-0.5 + 0.1 for t in STEPS]


class ScriptedChatModel(GenericFakeChatModel):
    """Replies with the scripted messages in order; binding tools changes nothing."""

    def bind_tools(self, tools, **kwargs):
        return self


def script(*calls: dict) -> ScriptedChatModel:
    """One AI turn per call (each a tool call), then a plain-text answer."""
    turns = [AIMessage(content="", tool_calls=[{**c, "id": f"call-{i}"}]) for i, c in enumerate(calls)]
    return ScriptedChatModel(messages=iter([*turns, AIMessage(content="done")]))


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tools")
    return {t.name: t for t in as_langchain_tools(workload="digits-mlp", device="cpu", out_dir=out_dir)}


def test_every_available_registry_tool_is_wrapped_with_its_schema(tools):
    classes = tool_classes()
    # the registry's importable tools plus ONNX, each with its own pydantic Input as the schema
    assert set(tools) == {cls.name for cls in classes}
    assert {"convergence_predictor", "hyperparameter_suggester", "onnx_optimizer"} <= set(tools)
    assert set(tools) - {"onnx_optimizer"} <= set(TOOL_CLASSES)
    for cls in classes:
        assert tools[cls.name].args_schema is cls.Input


def test_loop_calls_a_tool_and_reads_its_result(tools):
    model = script({"name": "convergence_predictor",
                    "args": {"steps": STEPS, "losses": POWER_LAW, "predict_step": 400, "n_bootstrap": 5}})
    messages = run_tool_calling_loop(model, list(tools.values()), "how low will this loss go by step 400?")
    result = messages[2]
    # the tool ran and returned its summary as JSON: 2 * 400^-0.5 + 0.1 = 0.2
    assert isinstance(result, ToolMessage) and result.status == "success"
    assert json.loads(result.content)["predicted_loss"] == pytest.approx(0.2, rel=1e-3)
    assert messages[-1].content == "done"


def test_config_argument_reaches_the_tool(tools):
    # LangChain reserves the keyword `config`; the trial's config must still arrive
    model = script({"name": "convergence_predictor",
                    "args": {"config": {"steps": 16, "lr": 3e-3}, "observe_steps": 8, "curve": "train",
                             "n_bootstrap": 5}})
    result = run_tool_calling_loop(model, list(tools.values()), "forecast")[2]
    assert result.status == "success", result.content
    assert json.loads(result.content)["predict_step"] == 16


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ({"steps": [1.0, 2.0]}, "give both steps and losses"),  # schema validation
        ({"steps": STEPS, "losses": [float("nan")] * 60}, "non-finite"),  # the tool's own error
    ],
)
def test_errors_become_observations(tools, args, text):
    model = script({"name": "convergence_predictor", "args": args})
    messages = run_tool_calling_loop(model, list(tools.values()), "forecast")
    # no exception escapes: the model reads the error text and the loop goes on to its answer
    assert messages[2].status == "error" and text in messages[2].content
    assert messages[-1].content == "done"


def test_the_model_gets_a_compact_summary_with_the_paths_of_the_full_output(tools):
    model = script({"name": "learning_rate_scheduler",
                    "args": {"range_steps": 20, "check_steps": 10, "budget_steps": 40, "schedules": ["constant"]}})
    summary = json.loads(run_tool_calling_loop(model, list(tools.values()), "what lr?")[2].content)
    # the decision and its numbers fit in about 1,500 characters; the full Output and the figure are files
    assert len(json.dumps(summary, separators=(",", ":"))) <= 1500
    assert summary["decision"].startswith("peak lr") and summary["peak_lr"] > 0
    full = json.loads(Path(summary["files"]["json"]).read_text())
    assert len(full["sweep"]["lrs"]) == summary["sweep_steps"]
    assert Path(summary["files"]["png"]).stat().st_size > 0


def test_compact_false_returns_the_whole_output(tmp_path):
    tool = {t.name: t for t in as_langchain_tools(workload="digits-mlp", device="cpu", compact=False,
                                                  out_dir=tmp_path)}["convergence_predictor"]
    result = tool.invoke({"steps": STEPS, "losses": POWER_LAW, "predict_step": 400, "n_bootstrap": 5})
    # every field of ConvergenceOutput, and no file written
    assert {"holdout_errors", "ensemble_weights", "interval_method"} <= set(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("run", ["invoke", "ainvoke"])
def test_create_agent_calls_a_tool_and_answers(tools, run):
    from langchain.agents import create_agent

    call = {"name": "convergence_predictor", "id": "call-0",
            "args": {"steps": STEPS, "losses": POWER_LAW, "predict_step": 400, "n_bootstrap": 5}}
    model = ScriptedChatModel(messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="done")]))
    agent = create_agent(model, list(tools.values()), system_prompt="Quote only measured numbers.")
    request = {"messages": [{"role": "user", "content": "how low will this loss go by step 400?"}]}
    messages = (agent.invoke(request) if run == "invoke" else asyncio.run(agent.ainvoke(request)))["messages"]
    # LangChain's standard agent ran the tool (through ainvoke too) and the model answered after reading it
    result = next(m for m in messages if isinstance(m, ToolMessage))
    assert json.loads(result.content)["predicted_loss"] == pytest.approx(0.2, rel=1e-3)
    assert messages[-1].content == "done"
