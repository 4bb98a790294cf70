"""The chat's dspy tools: compact observations, files beside them, acall off the event loop."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from trainopt.agent.chat import ChatSession

AGENT = Path(__file__).resolve().parents[2] / "agent"
SHORT = {"range_steps": 20, "check_steps": 20, "budget_steps": 40, "schedules": ["constant"], "seed": 1}
LONG = {"range_steps": 20, "check_steps": 5000, "budget_steps": 10000, "schedules": ["constant"], "seed": 2}


@pytest.fixture
def tools(tmp_path):
    with ChatSession("digits-mlp", device="cpu", out_dir=tmp_path) as session:
        yield {tool.name: tool for tool in session.react.tools.values()}, tmp_path


def test_an_observation_is_the_compact_summary_with_its_files(tools):
    by_name, out_dir = tools
    summary = by_name["learning_rate_scheduler"](**SHORT)
    # at most about 1,500 characters for the LM; the full Output and the figure beside it, relative to out_dir
    assert len(json.dumps(summary, separators=(",", ":"))) <= 1500
    assert summary["decision"].startswith("peak lr") and not Path(summary["files"]["json"]).is_absolute()
    full = json.loads((out_dir / summary["files"]["json"]).read_text())
    assert len(full["sweep"]["lrs"]) == summary["sweep_steps"]
    assert (out_dir / summary["files"]["png"]).stat().st_size > 0


def test_acall_keeps_the_loop_free_and_a_cancelled_call_stops(tools):
    by_name, _ = tools
    tool = by_name["learning_rate_scheduler"]

    async def main():
        ticks = 0

        async def heartbeat():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        long = asyncio.create_task(tool.acall(**LONG))
        short = await tool.acall(**SHORT)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        beat.cancel()
        return short, ticks

    short, ticks = asyncio.run(main())
    # the short call answered while the long one trained; the loop ticked throughout (less often on a loaded machine)
    assert short["checks"][0]["steps"] == SHORT["check_steps"] and ticks >= 5


def test_offline_chat_does_not_import_the_offline_engine():
    # the engine lists the chat's handlers; the chat module must not import the engine back (no cycle)
    tree = ast.parse((AGENT / "offline_chat.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any("offline_engine" in (name or "") or name == "trainopt.agent.lm" for name in imported)
