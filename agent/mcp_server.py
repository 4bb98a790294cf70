"""trainopt as an MCP server (official ``mcp`` Python SDK, low-level ``Server``, stdio transport).

Tools, each with its JSON schema taken from the same pydantic model the Python API validates with:

  <probe tool>   every tool of ``trainopt.tools.TOOL_CLASSES``: the tool's ``Input`` schema plus an
                 optional ``workload``; the result is the compact summary (``trainopt.tools.summaries``)
                 with the paths of the full Output (JSON) and the figure (PNG) under ``out_dir/tools``.
  optimize       the whole agent run, long-running: ``OptimizationRequest``'s schema (the fields a
                 JSON client can send); progress notifications per phase; the result is the compact
                 response (``trainopt.agent.response_summary``) with the path of report.html.

A bad argument or a failed probe comes back as a tool error (``isError``) whose text names the bad
value; it never ends the server. Training runs in a worker thread (the server keeps answering);
a request the client cancels stops at the next training step (``trainopt.tools.cancellation``).

    trainopt mcp --workload digits-mlp          # then point an MCP client at this command
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

import trainopt
from trainopt.errors import OptimizationError
from trainopt.tools import TOOL_CLASSES, get_tool
from trainopt.tools.base import parse_input
from trainopt.tools.cancellation import CancelToken, run_in_worker
from trainopt.tools.store import DEFAULT_OUT_DIR
from trainopt.tools.summaries import summarize, write_full_output
from trainopt.tools.workloads import DEFAULT_WORKLOAD, get_workload, workload_names

OPTIMIZE = "optimize"
# OptimizationRequest fields a JSON client cannot send (Python callables and tensors)
_PYTHON_ONLY = ("model_factory", "train_data", "val_data", "loss_fn", "metric_fn")
_PROGRESS_EVERY_S = 0.2  # at most this often per call, plus the last step


class ProgressRelay:
    """Sends ``notifications/progress`` from the worker thread through the event loop, throttled."""

    def __init__(self, session, loop: asyncio.AbstractEventLoop):
        self.session, self.loop, self.last, self.sent = session, loop, 0.0, -1.0

    def __call__(self, progress: float, total: float | None, message: str | None = None) -> None:
        now = time.monotonic()
        final = total is not None and progress >= total
        if progress <= self.sent or (now - self.last < _PROGRESS_EVERY_S and not final):
            return  # progress must increase; a notification per training step would flood the client
        self.last, self.sent = now, progress
        asyncio.run_coroutine_threadsafe(self.session.report_progress(progress, total, message), self.loop)


def _workload_property(default: str) -> dict[str, Any]:
    return {"type": "string", "enum": workload_names(), "default": default,
            "description": "the workload to probe (a built-in name)"}


def tool_schema(name: str, default_workload: str) -> dict[str, Any]:
    """A probe tool's JSON schema: its pydantic Input's, with ``workload`` added."""
    schema = get_tool(name).Input.model_json_schema()
    schema["properties"] = {"workload": _workload_property(default_workload), **schema.get("properties", {})}
    return schema


def optimize_schema(default_workload: str) -> dict[str, Any]:
    """OptimizationRequest's JSON schema without the fields only Python can send."""
    from trainopt.agent.schemas import OptimizationRequest

    schema = OptimizationRequest.model_json_schema()
    properties = {k: v for k, v in schema["properties"].items() if k not in _PYTHON_ONLY}
    properties["workload"] = _workload_property(default_workload)
    return {**schema, "properties": properties, "additionalProperties": False}


class TrainoptMCP:
    """The tools bound to a default workload, device and output folder; ``server()`` serves them."""

    def __init__(self, workload: str = DEFAULT_WORKLOAD, device: str = "auto",
                 out_dir: str | Path = DEFAULT_OUT_DIR / "mcp", storage: str | None = None, lm: Any = None,
                 plots: bool = True):
        self.workload = get_workload(workload).name
        self.device, self.out_dir, self.storage, self.lm, self.plots = device, Path(out_dir), storage, lm, plots
        self._trial_store = None

    def tools(self) -> list[types.Tool]:
        probes = [types.Tool(name=name, description=get_tool(name).description,
                             input_schema=tool_schema(name, self.workload)) for name in TOOL_CLASSES]
        optimize = types.Tool(
            name=OPTIMIZE, input_schema=optimize_schema(self.workload),
            description="The whole optimization (long-running, minutes; progress per phase): profile, probe, "
                        "propose candidates, race them on selection seeds, confirm the winner against the "
                        "default configuration on held-out seeds. Returns the recommendation, the held-out "
                        "gain with its 90% interval, and the path of report.html.")
        return [*probes, optimize]

    async def list_tools(self, ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools())

    async def call_tool(self, ctx, params) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        relay = ProgressRelay(ctx.session, asyncio.get_running_loop())
        try:
            if params.name == OPTIMIZE:
                summary = await run_in_worker(lambda token: self._optimize(arguments, token, relay))
            elif params.name in TOOL_CLASSES:
                summary = await run_in_worker(lambda token: self._probe(params.name, arguments, token, relay))
            else:
                return _error(f"unknown tool {params.name!r}; tools: {', '.join([*TOOL_CLASSES, OPTIMIZE])}")
        except (OptimizationError, ValueError) as error:
            return _error(f"{params.name} failed: {error}")
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(summary))],
                                    structured_content=summary)

    def _probe(self, name: str, arguments: dict[str, Any], token: CancelToken, relay: ProgressRelay) -> dict:
        cls = get_tool(name)
        workload = get_workload(arguments.pop("workload", None) or self.workload)
        input = parse_input(cls.Input, arguments, name)
        tool = cls(workload, device=self.device, store=self._store(),
                   progress=token.progress(name, lambda done, total: relay(done, total, f"{name}: step {done}")))
        output = tool.run(input)
        files = write_full_output(tool, output, self.out_dir / "tools", plot=self.plots)
        return summarize(name, output, workload=workload.name, files=files)

    def _optimize(self, arguments: dict[str, Any], token: CancelToken, relay: ProgressRelay) -> dict:
        from trainopt.agent.agent import TrainingOptimizationAgent
        from trainopt.agent.response_summary import summarize_response
        from trainopt.agent.schemas import OptimizationRequest

        extra = sorted(set(arguments) - set(optimize_schema(self.workload)["properties"]))
        if extra:
            raise ValueError(f"unknown argument(s) {extra} for {OPTIMIZE}")
        request = OptimizationRequest.model_validate({"workload": self.workload, **arguments})
        phases: list[str] = []

        def progress(phase: str, done: int, total: int, message: str) -> None:
            token.check(OPTIMIZE, done, total)
            if phase not in phases:
                phases.append(phase)
            # progress counts phases: phase k at done/total reads k + done/total
            relay(len(phases) - 1 + (done / total if total else 0.0), None, f"{phase}: {message}"[:120])

        agent = TrainingOptimizationAgent(lm=self.lm, storage=self.storage, device=self.device,
                                          out_dir=self.out_dir / request_name(request), progress=progress)
        return summarize_response(agent.optimize_training(request))

    def _store(self):
        """One trial store for every probe call: a repeated probe reads its trials back."""
        from trainopt.tools.store import TrialStore

        if self._trial_store is None:
            self._trial_store = TrialStore(self.storage, out_dir=self.out_dir)
        return self._trial_store

    def server(self) -> Server:
        return Server("trainopt", version=trainopt.__version__, on_list_tools=self.list_tools,
                      on_call_tool=self.call_tool)

    async def serve_stdio(self) -> None:
        server = self.server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def request_name(request) -> str:
    """The folder of one optimize call's report: the workload's name."""
    return get_workload(request.workload).name if isinstance(request.workload, str) else "workload"


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
