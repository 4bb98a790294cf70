"""Characters an LLM reads per tool call: the whole Output (before) against the compact summary (after).

    python3 bench/tool_summaries.py            # every tool once on digits-mlp (a few minutes on 2 cores)

Each tool runs once, through its LangChain StructuredTool with ``compact=False`` (what the model got
before: the Output as JSON); the compact summary (``trainopt.tools.summaries``) is built from the same
Output, and both go through the same StructuredTool formatting, so the figures are the lengths of the
ToolMessage contents a LangChain agent hands its model. Settings are each tool's defaults except where
SETTINGS says (the search and the ONNX export are cut to keep the run short; they do not change what
the summary holds). Writes bench/results/tool_summaries.json and .md.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainopt.tools.langchain import as_langchain_tools
from trainopt.tools.summaries import MAX_CHARS, summarize, write_full_output

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOAD = "digits-mlp"
SETTINGS: dict[str, dict] = {
    "learning_rate_scheduler": {},
    "batch_size_optimizer": {},
    "gradient_analyzer": {},
    "convergence_predictor": {},
    "hyperparameter_suggester": {"n_trials": 6, "max_steps": 90},
    "onnx_optimizer": {"config": {"steps": 100}, "repeats": 50},
}
TARGET = MAX_CHARS


def content_chars(tool, value) -> int:
    """Length of the ToolMessage content LangChain builds from ``value`` (a dict, formatted as it formats)."""
    from langchain_core.tools import StructuredTool

    echo = StructuredTool.from_function(func=lambda: value, name=tool.name, description="echo",
                                        args_schema=None, infer_schema=True)
    message = echo.invoke({"name": tool.name, "args": {}, "id": "bench", "type": "tool_call"})
    return len(message.content)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        tools = {t.name: t for t in as_langchain_tools(workload=WORKLOAD, device="cpu", compact=False, out_dir=None)}
        for name, args in SETTINGS.items():
            tool = tools[name]
            started = time.perf_counter()
            full = tool.invoke({"name": name, "args": args, "id": name, "type": "tool_call"})
            wall = time.perf_counter() - started
            assert full.status == "success", full.content
            instance = _tool_class(name)(WORKLOAD, device="cpu")
            output = instance.Output.model_validate_json(full.content)
            files = write_full_output(instance, output, Path(out) / "tools", plot=True)
            files = {k: f"trainopt-out/tools/{Path(v).name}" for k, v in files.items()}  # as a user's run shows them
            summary = summarize(name, output, workload=WORKLOAD, files=files)
            before, after = len(full.content), content_chars(tool, summary)
            rows.append({"tool": name, "settings": args, "before_chars": before, "after_chars": after,
                         "ratio": round(after / before, 4), "fits": after <= TARGET, "tool_wall_s": round(wall, 1),
                         "truncated_lists": summary.get("truncated", [])})
            print(f"{name}: {before} -> {after} chars ({wall:.1f} s)", flush=True)
    meta = {"workload": WORKLOAD, "target_chars": TARGET, "torch": torch.__version__, "threads": 1,
            "python": platform.python_version(), "command": "python3 bench/tool_summaries.py"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tool_summaries.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (RESULTS / "tool_summaries.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


def _tool_class(name: str):
    from trainopt.tools import get_tool
    from trainopt.tools.onnx_optimizer import ONNXOptimizer

    return ONNXOptimizer if name == ONNXOptimizer.name else get_tool(name)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"| tool | before: whole Output (chars) | after: compact summary (chars) | after / before | <= {TARGET} |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['before_chars']:,} | {r['after_chars']:,} | {r['ratio']:.3f} | "
                     f"{'holds' if r['fits'] else 'falls short'} |")
    before, after = sum(r["before_chars"] for r in rows), sum(r["after_chars"] for r in rows)
    lines.append(f"| **all {len(rows)} tools** | **{before:,}** | **{after:,}** | **{after / before:.3f}** | |")
    held = all(r["fits"] for r in rows)
    lines += ["", f"ToolMessage content length on {meta['workload']}, each tool's default settings except "
              "hyperparameter_suggester (6 trials of up to 90 steps) and onnx_optimizer (100 training steps, 50 "
              f"timed calls); CPU, torch {meta['torch']}, 1 thread; `{meta['command']}`.", "",
              f"- every summary within {TARGET} characters: **{'holds' if held else 'falls short'}**"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
