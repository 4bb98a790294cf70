"""A LangChain tool-calling agent over the trainopt tools: the setup to copy.

    # offline, no API key: a scripted chat model plays the LLM (same tool calls every run)
    python3 examples/langchain_agent.py --offline                  # langchain.agents.create_agent
    python3 examples/langchain_agent.py --offline --loop           # the hand-written tool-calling loop

    # a real tool-calling chat model (needs `pip install "trainopt[langchain]" langchain-openai` and a key)
    OPENAI_API_KEY=... python3 examples/langchain_agent.py --model openai:gpt-4o-mini

A package it needs and cannot import (langchain for create_agent and real models, the provider's
langchain-<provider> for a real model) is one line with the pip command that installs it, and exit 1.

The model sees each trainopt tool's pydantic Input as its argument schema, calls the tools, and
reads back a compact summary (the decision, the key numbers, the paths of the full Output and
figure). Every number it can quote comes from a real probe run. ``create_agent`` is LangChain's
standard agent (a LangGraph graph); ``run_tool_calling_loop`` is the same loop written out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from trainopt.tools.langchain import as_langchain_tools, run_tool_calling_loop

SYSTEM = "You help tune PyTorch training runs. Quote only numbers the tools measured."
PROMPT = ("Train digits-mlp for 60 steps at lr 3e-3, observe the first 30, and tell me the validation "
          "loss to expect at step 60 and whether the run should go on.")


class ScriptedChatModel(GenericFakeChatModel):
    """A stand-in for a tool-calling LLM: replies with the scripted messages in order."""

    def bind_tools(self, tools, **kwargs):
        return self  # the script already names the tools it calls


def scripted_model() -> ScriptedChatModel:
    """One tool call (the convergence predictor on a real 30-step run), then a closing answer."""
    call = {"name": "convergence_predictor", "id": "call-1",
            "args": {"config": {"steps": 60, "lr": 3e-3}, "observe_steps": 30, "n_bootstrap": 20}}
    return ScriptedChatModel(messages=iter([
        AIMessage(content="", tool_calls=[call]),
        AIMessage(content="The forecast above comes from the measured first 30 steps."),
    ]))


def real_model(name: str):
    from langchain.chat_models import init_chat_model

    return init_chat_model(name, temperature=0)


def needed_packages(offline: bool, loop: bool, model: str) -> list[tuple[str, str]]:
    """(module, pip install argument) of each optional package this run imports."""
    needed = [] if offline and loop else [("langchain", '"trainopt[langchain]"')]
    if not offline:  # init_chat_model("openai:...") imports langchain_openai
        provider = model.split(":")[0] if ":" in model else "openai"
        needed.append((f"langchain_{provider.replace('-', '_')}", f"langchain-{provider.replace('_', '-')}"))
    return needed


def require(needed: list[tuple[str, str]]) -> None:
    """Exit 1 with one line naming the pip command, before any work, if a needed package is missing."""
    missing = []
    for module, package in needed:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append((module, package))
    if missing:
        print(f"this example needs {', '.join(m for m, _ in missing)}: pip install {' '.join(p for _, p in missing)}",
              file=sys.stderr)
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offline", action="store_true", help="use the scripted chat model (no network)")
    parser.add_argument("--model", default="openai:gpt-4o-mini", help="provider:model for init_chat_model")
    parser.add_argument("--workload", default="digits-mlp")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--loop", action="store_true", help="the hand-written loop instead of create_agent")
    args = parser.parse_args()
    require(needed_packages(args.offline, args.loop, args.model))

    tools = as_langchain_tools(workload=args.workload, device="auto")
    print("tools:", ", ".join(t.name for t in tools))
    model = scripted_model() if args.offline else real_model(args.model)
    if args.loop:
        messages = run_tool_calling_loop(model, tools, args.prompt)
    else:
        from langchain.agents import create_agent  # pip install "trainopt[langchain]"

        agent = create_agent(model, tools, system_prompt=SYSTEM)
        messages = agent.invoke({"messages": [{"role": "user", "content": args.prompt}]})["messages"]
    for message in messages:
        kind = type(message).__name__
        if getattr(message, "tool_calls", None):
            for call in message.tool_calls:
                print(f"[{kind}] calls {call['name']}({json.dumps(call['args'])})")
        elif kind == "ToolMessage":
            result = json.loads(message.content) if message.status == "success" else message.content
            shown = {k: result[k] for k in ("predicted_loss", "interval", "verdict", "reason")} \
                if isinstance(result, dict) and "verdict" in result else result
            print(f"[{kind} {message.name}] {shown}")
        else:
            print(f"[{kind}] {message.content}")


if __name__ == "__main__":
    main()
