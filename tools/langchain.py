"""The trainopt tools as LangChain ``StructuredTool``s, with the same pydantic Input schemas.

Every tool in ``trainopt.tools.TOOL_CLASSES`` (plus the ONNX tool) becomes a StructuredTool whose
``args_schema`` is the tool's ``Input``; it returns the tool's ``Output`` as a JSON-able dict.
A bad argument or a failed probe comes back to the model as the error's text (``ToolException``,
``handle_tool_error=True``), never as a crash of the agent loop. Tools whose module is not
installed yet are skipped, so the list follows the registry.

    >>> from trainopt.tools.langchain import as_langchain_tools
    >>> tools = as_langchain_tools(workload="digits-mlp", device="cpu")
    >>> "convergence_predictor" in {t.name for t in tools}
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel

from trainopt.errors import OptimizationError
from trainopt.tools import TOOL_CLASSES, get_tool
from trainopt.tools.base import Tool
from trainopt.tools.store import TrialStore
from trainopt.tools.workloads import DEFAULT_WORKLOAD, Workload

logger = logging.getLogger(__name__)


def tool_classes() -> list[type[Tool]]:
    """The registered tool classes that can be imported now, then the ONNX tool."""
    classes = []
    for name in TOOL_CLASSES:
        try:
            classes.append(get_tool(name))
        except ImportError as error:  # a tool still being built: leave it out, say so in the log
            logger.info("tool %r is not available: %s", name, error)
    from trainopt.tools.onnx_optimizer import ONNXOptimizer

    return [*classes, ONNXOptimizer]


class TrainoptTool(StructuredTool):
    """A StructuredTool whose arguments may include a field named ``config``.

    ``StructuredTool._run`` takes a keyword ``config`` (the RunnableConfig), so LangChain drops a
    tool argument of that name (measured with langchain-core 1.8.3). Several trainopt Inputs
    have one (the TrialConfig to run), so ``_run`` here passes every argument to the function.
    """

    def _run(self, *args: Any, run_manager=None, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def as_langchain_tool(tool: Tool) -> StructuredTool:
    """One trainopt tool as a StructuredTool: same schema, dict output, errors as observations."""

    def call(**kwargs: Any) -> dict[str, Any]:
        try:
            output = tool(**kwargs)
        except (OptimizationError, ValueError) as error:
            raise ToolException(f"{tool.name} failed: {error}") from error
        return output.model_dump(mode="json") if isinstance(output, BaseModel) else output

    return TrainoptTool.from_function(
        func=call, name=tool.name, description=tool.description, args_schema=tool.Input,
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
) -> list[StructuredTool]:
    """Every available trainopt tool, bound to ``workload`` and ``device``, as LangChain tools."""
    return [as_langchain_tool(cls(workload=workload, device=device, store=store, progress=progress))
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
