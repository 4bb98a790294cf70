"""trainopt as an MCP server (official ``mcp`` Python SDK, low-level ``Server``, stdio transport).

Tools, each with its JSON schema taken from the same pydantic model the Python API validates with:

  <tool>         every tool of ``trainopt.tools.FRAMEWORK_TOOLS`` (the probe tools and the ONNX export: the
                 tools LangChain gets, ``trainopt.tools.langchain``): the tool's ``Input`` schema plus an
                 optional ``workload``; the result is the compact summary (``trainopt.tools.summaries``)
                 with the paths of the full Output (JSON) and the figure (PNG) under ``out_dir/tools``,
                 where the ONNX file goes too unless the call names a ``path``.
  optimize       the whole agent run, long-running: ``OptimizationRequest``'s schema (the fields a
                 JSON client can send); progress notifications with a total, in integers: PHASE_UNITS
                 per phase (``trainopt.agent.phases.PHASES``, and any further phase the run reports);
                 the result is the compact response (``trainopt.agent.response_summary``) with the path
                 of report.html.

A bad argument or a failed probe comes back as a tool error (``isError``) whose text names the bad
value (an argument the schema does not have: with the names it has); it never ends the server.
Training runs in a worker thread (the server keeps answering); a request the client cancels stops at
the next training step (``trainopt.tools.cancellation``).

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
from trainopt.tools import FRAMEWORK_TOOLS, get_framework_tool
from trainopt.tools.base import parse_input
from trainopt.tools.cancellation import CancelToken, run_in_worker
from trainopt.tools.store import DEFAULT_OUT_DIR
from trainopt.tools.summaries import summarize, write_full_output
from trainopt.tools.workloads import DEFAULT_WORKLOAD, get_workload, workload_names

OPTIMIZE = "optimize"
# OptimizationRequest fields a JSON client cannot send (Python callables and tensors)
_PYTHON_ONLY = ("model_factory", "train_data", "val_data", "loss_fn", "metric_fn")
_PROGRESS_EVERY_S = 0.2  # at most this often per call, plus the last step
PHASE_UNITS = 100  # optimize's progress: phase k (from 0) at done/total reads k * 100 + 100 * done // total


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
    """A tool's JSON schema: its pydantic Input's, with ``workload`` added and no other argument allowed."""
    schema = get_framework_tool(name).Input.model_json_schema()
    schema["properties"] = {"workload": _workload_property(default_workload), **schema.get("properties", {})}
    if name == "onnx_optimizer":  # the server writes the model beside its summaries (TrainoptMCP._probe)
        schema["properties"]["path"] = {**schema["properties"]["path"], "description": (
            "where to write the .onnx (default: tools/<workload>.onnx in the server's --out folder)")}
    return {**schema, "additionalProperties": False}


def reject_unknown(name: str, arguments: dict[str, Any], schema: dict[str, Any]) -> None:
    """A ValueError naming the arguments ``schema`` does not have, and the ones it has."""
    extra = sorted(set(arguments) - set(schema["properties"]))
    if extra:
        raise ValueError(f"unknown argument(s) {extra} for {name}; its arguments are: "
                         f"{', '.join(schema['properties'])}")


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
        probes = [types.Tool(name=name, description=get_framework_tool(name).description,
                             input_schema=tool_schema(name, self.workload)) for name in FRAMEWORK_TOOLS]
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
            elif params.name in FRAMEWORK_TOOLS:
                summary = await run_in_worker(lambda token: self._probe(params.name, arguments, token, relay))
            else:
                return _error(f"unknown tool {params.name!r}; tools: {', '.join([*FRAMEWORK_TOOLS, OPTIMIZE])}")
        except (OptimizationError, ValueError) as error:
            return _error(f"{params.name} failed: {error}")
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(summary))],
                                    structured_content=summary)

    def _probe(self, name: str, arguments: dict[str, Any], token: CancelToken, relay: ProgressRelay) -> dict:
        cls = get_framework_tool(name)
        reject_unknown(name, arguments, tool_schema(name, self.workload))
        workload = get_workload(arguments.pop("workload", None) or self.workload)
        if name == "onnx_optimizer" and arguments.get("path") is None:  # the model file beside the summaries
            arguments["path"] = str(self.out_dir / "tools" / f"{workload.name}.onnx")
        input = parse_input(cls.Input, arguments, name)
        tool = cls(workload, device=self.device, store=self._store(),
                   progress=token.progress(name, lambda done, total: relay(done, total, f"{name}: step {done}")))
        output = tool.run(input)
        files = write_full_output(tool, output, self.out_dir / "tools", plot=self.plots)
        return summarize(name, output, workload=workload.name, files=files)

    def _optimize(self, arguments: dict[str, Any], token: CancelToken, relay: ProgressRelay) -> dict:
        from trainopt.agent.agent import TrainingOptimizationAgent
        from trainopt.agent.phases import PHASES
        from trainopt.agent.response_summary import summarize_response
        from trainopt.agent.schemas import OptimizationRequest

        reject_unknown(OPTIMIZE, arguments, optimize_schema(self.workload))
        request = OptimizationRequest.model_validate({"workload": self.workload, **arguments})
        phases: list[str] = []  # in the order the run first reported them

        def units() -> int:  # the total: PHASES, or more when the run reports a phase not in it
            return PHASE_UNITS * max(len(PHASES), len(phases))

        def progress(phase: str, done: int, total: int, message: str) -> None:
            token.check(OPTIMIZE, done, total)
            if phase not in phases:
                phases.append(phase)
            # the newest phase k (from 0) at done/total; a phase come back to (race after refine) reads there too
            at = PHASE_UNITS * (len(phases) - 1) + (PHASE_UNITS * min(done, total) // total if total > 0 else 0)
            relay(at, units(), f"{phase}: {message}"[:120])

        agent = TrainingOptimizationAgent(lm=self.lm, storage=self.storage, device=self.device,
                                          out_dir=self.out_dir / request_name(request), progress=progress)
        response = agent.optimize_training(request)
        relay(units(), units(), "done")
        return summarize_response(response)

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
