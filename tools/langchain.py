"""The trainopt tools as LangChain ``StructuredTool``s, with the same pydantic Input schemas.

Every tool in ``trainopt.tools.FRAMEWORK_TOOLS`` (the probe tools, then the ONNX tool: the list
``trainopt mcp`` serves too) becomes a StructuredTool whose ``args_schema`` is the tool's ``Input``.
The model gets a compact summary of the tool's Output
(``trainopt.tools.summaries``: the decision, the key numbers, the findings, at most about 1,500
characters) with the paths of the full Output as JSON and the tool's figure as PNG under
``out_dir``; ``compact=False`` returns the whole Output as a JSON-able dict instead.
A bad argument or a failed probe comes back to the model as the error's text (``ToolException``,
``handle_tool_error=True``), never as a crash of the agent loop. Tools whose module is not
installed yet are skipped, so the list follows the registry.

``ainvoke`` trains in a worker thread, so the event loop stays free; cancelling the awaiting task
stops the probe at its next training step (``trainopt.tools.cancellation``).

    >>> from trainopt.tools.langchain import as_langchain_tools
    >>> tools = as_langchain_tools(workload="digits-mlp", device="cpu")
    >>> "convergence_predictor" in {t.name for t in tools}
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel

from trainopt.errors import OptimizationError
from trainopt.tools import FRAMEWORK_TOOLS, get_framework_tool
from trainopt.tools.base import Tool
from trainopt.tools.cancellation import CancelToken, run_in_worker
from trainopt.tools.store import DEFAULT_OUT_DIR, TrialStore
from trainopt.tools.summaries import summarize, write_full_output
from trainopt.tools.workloads import DEFAULT_WORKLOAD, Workload

logger = logging.getLogger(__name__)
DEFAULT_TOOLS_DIR = DEFAULT_OUT_DIR / "tools"  # full Outputs (JSON) and figures (PNG) of compact calls


def tool_classes() -> list[type[Tool]]:
    """The classes of ``FRAMEWORK_TOOLS`` (the registered tools, then the ONNX tool) that can be imported now."""
    classes = []
    for name in FRAMEWORK_TOOLS:
        try:
            classes.append(get_framework_tool(name))
        except ImportError as error:  # a tool still being built: leave it out, say so in the log
            logger.info("tool %r is not available: %s", name, error)
    return classes


class TrainoptTool(StructuredTool):
    """A StructuredTool whose arguments may include a field named ``config``.

    ``StructuredTool._run`` takes a keyword ``config`` (the RunnableConfig), so LangChain drops a
    tool argument of that name (measured with langchain-core 1.8.3). Several trainopt Inputs
    have one (the TrialConfig to run), so ``_run`` here passes every argument to the function.
    """

    def _run(self, *args: Any, run_manager=None, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    async def _arun(self, *args: Any, run_manager=None, **kwargs: Any) -> Any:
        return await self.coroutine(*args, **kwargs)


def as_langchain_tool(tool: Tool, compact: bool = True, out_dir: str | Path | None = DEFAULT_TOOLS_DIR,
                      plot: bool = True) -> StructuredTool:
    """One trainopt tool as a StructuredTool: same schema, errors as observations.

    ``compact``: return ``summarize(...)`` of the Output (with the paths of the full JSON and PNG
    written under ``out_dir``, unless it is None) instead of the whole Output as a dict.
    """

    def work(token: CancelToken | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        runner = tool if token is None else type(tool)(
            workload=tool.workload, device=tool.device, store=tool.store,
            progress=token.progress(tool.name, tool.progress))
        try:
            output = runner(**kwargs)
        except (OptimizationError, ValueError) as error:
            raise ToolException(f"{tool.name} failed: {error}") from error
        if not compact:
            return output.model_dump(mode="json") if isinstance(output, BaseModel) else output
        files = None if out_dir is None else write_full_output(tool, output, out_dir, plot=plot)
        return summarize(tool.name, output, workload=tool.workload.name, files=files)

    def call(**kwargs: Any) -> dict[str, Any]:
        return work(None, kwargs)

    async def acall(**kwargs: Any) -> dict[str, Any]:
        return await run_in_worker(lambda token: work(token, kwargs))

    return TrainoptTool.from_function(
        func=call, coroutine=acall, name=tool.name, description=tool.description, args_schema=tool.Input,
        handle_tool_error=True, handle_validation_error=_describe_validation_error,
    )


def _describe_validation_error(error: Exception) -> str:
    """The schema's complaint, field by field, as the tool's observation."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in errors())
        return f"invalid arguments: {problems}"
    return f"invalid arguments: {error}"


def as_langchain_tools(
    workload: Workload | str = DEFAULT_WORKLOAD,
    device: str = "auto",
    store: TrialStore | None = None,
    progress: Callable[[int, int], None] | None = None,
    compact: bool = True,
    out_dir: str | Path | None = DEFAULT_TOOLS_DIR,
    plot: bool = True,
) -> list[StructuredTool]:
    """Every available trainopt tool, bound to ``workload`` and ``device``, as LangChain tools
    (compact summaries with the full Output and figure under ``out_dir``; see ``as_langchain_tool``)."""
    return [as_langchain_tool(cls(workload=workload, device=device, store=store, progress=progress),
                              compact=compact, out_dir=out_dir, plot=plot)
            for cls in tool_classes()]


def run_tool_calling_loop(
    chat_model, tools: Sequence[StructuredTool], prompt: str | list[BaseMessage], max_turns: int = 6
) -> list[BaseMessage]:
    """The plain LangChain loop: the model asks for tools, we run them, until it answers in text.

    ``chat_model`` is any tool-calling chat model (``bind_tools``). Returns the whole conversation;
    the last message is the model's answer. Bounded by ``max_turns`` model calls.
    """
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1 but got {max_turns=}")
    by_name = {tool.name: tool for tool in tools}
    bound = chat_model.bind_tools(list(tools))
    messages: list[BaseMessage] = [HumanMessage(prompt)] if isinstance(prompt, str) else list(prompt)
    for _ in range(max_turns):
        reply: AIMessage = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return messages
        for call in reply.tool_calls:
            if call["name"] not in by_name:
                messages.append(ToolMessage(f"unknown tool {call['name']!r}; tools: {sorted(by_name)}",
                                            tool_call_id=call["id"], status="error"))
                continue
            messages.append(by_name[call["name"]].invoke(call))  # a ToolCall in -> a ToolMessage out
    return messages
