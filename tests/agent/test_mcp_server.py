"""`trainopt mcp` driven by the official MCP SDK's client over stdio, as an LLM agent would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from trainopt.tools import FRAMEWORK_TOOLS

STEPS = list(range(1, 61))
POWER_LAW = [2.0 * t**-0.5 + 0.1 for t in STEPS]


BAD_ARGUMENTS = [
    ("convergence_predictor", {"steps": [1.0, 2.0]}, "give both steps and losses"),
    ("learning_rate_scheduler", {"range_steps": -5}, "range_steps=-5"),
    ("learning_rate_scheduler", {"workload": "no-such-workload"}, "no-such-workload"),
    ("optimize", {"constraints": {"time_budget_s": -1}}, "time_budget_s"),
    ("optimize", {"model_factory": "x"}, "model_factory"),
    ("no_such_tool", {}, "unknown tool"),
]
PROBE = {"range_steps": 30, "check_steps": 200, "budget_steps": 400, "schedules": ["constant"]}
UNKNOWN = {"bogus_arg": 3}  # an argument no tool has
ONNX = {"config": {"steps": 5}, "batch_sizes": [1], "repeats": 3, "exporter": "torchscript"}


@pytest.fixture(scope="module")
def session_log(tmp_path_factory):
    """One server subprocess (starting one costs seconds), one session: every call the tests read."""
    out_dir = tmp_path_factory.mktemp("mcp")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "trainopt.cli", "mcp", "--device", "cpu", "--out", str(out_dir)],
        env={"OMP_NUM_THREADS": "1", "TRAINOPT_LM": "offline"})
    log: dict = {"progress": [], "out_dir": out_dir}

    async def on_progress(progress, total, message):
        log["progress"].append((progress, total))

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            log["tools"] = {tool.name: tool for tool in (await session.list_tools()).tools}
            log["forecast"] = await session.call_tool(
                "convergence_predictor", {"steps": STEPS, "losses": POWER_LAW, "predict_step": 400, "n_bootstrap": 5})
            log["errors"] = [await session.call_tool(name, args) for name, args, _ in BAD_ARGUMENTS]
            log["unknown"] = {name: await session.call_tool(name, UNKNOWN)
                              for name in ("learning_rate_scheduler", "onnx_optimizer", "optimize")}
            log["onnx"] = await session.call_tool("onnx_optimizer", ONNX)
            log["probe"] = await session.call_tool("learning_rate_scheduler", PROBE, progress_callback=on_progress)
            log["optimize_progress"] = []

            async def on_optimize(progress, total, message):
                log["optimize_progress"].append((progress, total, message))

            log["optimize"] = await session.call_tool(
                "optimize", {"workload": "digits-mlp", "constraints": {"step_budget": 300}},
                progress_callback=on_optimize)

    anyio.run(main)
    return log


def test_every_tool_and_optimize_are_listed_with_their_pydantic_schemas(session_log):
    from trainopt.agent.schemas import OptimizationRequest
    from trainopt.tools import get_tool

    listed = session_log["tools"]
    # the five probe tools, the ONNX export and optimize
    assert set(listed) == {*FRAMEWORK_TOOLS, "optimize"}
    # a tool's schema is its Input's, plus the workload to probe
    lr_schema = listed["learning_rate_scheduler"].input_schema
    assert set(lr_schema["properties"]) == {"workload", *get_tool("learning_rate_scheduler").Input.model_fields}
    # optimize takes OptimizationRequest's JSON fields (callables are Python-only)
    optimize = set(listed["optimize"].input_schema["properties"])
    assert {"workload", "constraints", "objective"} <= optimize <= set(OptimizationRequest.model_fields)
    assert "model_factory" not in optimize


def test_a_call_returns_the_compact_summary(session_log):
    result = session_log["forecast"]
    summary = json.loads(result.content[0].text)
    # 2 * 400^-0.5 + 0.1 = 0.2, in at most 1,500 characters; the full Output is on disk
    assert not result.is_error
    assert summary["predicted_loss"] == pytest.approx(0.2, rel=1e-3)
    assert len(result.content[0].text) <= 1500
    assert "holdout_errors" in json.loads(Path(summary["files"]["json"]).read_text())


@pytest.mark.parametrize(("index", "text"), [(i, text) for i, (_, _, text) in enumerate(BAD_ARGUMENTS)])
def test_a_bad_argument_comes_back_as_a_tool_error(session_log, index, text):
    result = session_log["errors"][index]
    # a tool error naming the bad value; the server went on to answer the next calls
    assert result.is_error and text in result.content[0].text, result.content[0].text


def test_progress_notifications_arrive_while_a_probe_trains(session_log):
    result, seen = session_log["probe"], session_log["progress"]
    assert not result.is_error, result.content[0].text
    # several notifications, increasing, ending at the total (range test + check steps)
    progress = [p for p, _ in seen]
    assert len(seen) >= 2 and progress == sorted(set(progress))
    assert seen[-1][0] == seen[-1][1] == PROBE["range_steps"] + PROBE["check_steps"]


def test_optimize_reports_progress_per_phase_and_returns_the_held_out_gain(session_log):
    result, seen = session_log["optimize"], session_log["optimize_progress"]
    assert not result.is_error, result.content[0].text
    summary = json.loads(result.content[0].text)
    # the long-running tool notified progress through several phases, increasing
    progress = [p for p, _, _ in seen]
    assert progress == sorted(set(progress)) and len({m.split(":")[0] for _, _, m in seen}) >= 3
    # the answer is compact: the decision, the held-out comparison with its interval, the report's path
    assert len(result.content[0].text) <= 1500
    assert len(summary["held_out"]["interval"]) == 2 and summary["held_out"]["seeds"]
    assert Path(summary["files"]["report_html"]).is_file()


def test_mcp_serves_the_tools_langchain_gets(session_log):
    from trainopt.tools.langchain import as_langchain_tools

    langchain = {tool.name for tool in as_langchain_tools(workload="digits-mlp", device="cpu", out_dir=None)}
    # the same tools over both frameworks (the ONNX export included), and optimize over MCP
    assert set(session_log["tools"]) == {*langchain, "optimize"} and "onnx_optimizer" in langchain


def test_the_onnx_export_runs_over_mcp_and_writes_into_the_server_folder(session_log):
    result = session_log["onnx"]
    assert not result.is_error, result.content[0].text
    summary = json.loads(result.content[0].text)
    # the model was trained for 5 steps, exported and timed; the file sits under the server's --out folder
    assert summary["trained_steps"] == 5 and summary["latency_p50_ms"]
    assert Path(summary["model_path"]) == session_log["out_dir"] / "tools" / "digits-mlp.onnx"
    assert Path(summary["model_path"]).is_file()


@pytest.mark.parametrize("name", ["learning_rate_scheduler", "onnx_optimizer", "optimize"])
def test_an_unknown_argument_is_rejected_with_the_allowed_names(session_log, name):
    result = session_log["unknown"][name]
    allowed = session_log["tools"][name].input_schema["properties"]
    # a tool error naming the unknown argument and every argument the tool has; nothing ran
    assert result.is_error and "bogus_arg" in result.content[0].text, result.content[0].text
    assert all(argument in result.content[0].text for argument in allowed)


def test_optimize_progress_is_integers_of_a_stated_total(session_log):
    seen = session_log["optimize_progress"]
    # every notification carries a total; progress is a whole number up to it, and the last one reaches it
    assert seen and all(total is not None for _, total, _ in seen)
    assert all(float(progress).is_integer() and 0 <= progress <= total for progress, total, _ in seen)
    assert seen[-1][0] == seen[-1][1]
