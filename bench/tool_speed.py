"""How long each probe tool takes on digits-mlp with its default settings.

Target (issue 5): the batch-size probe, the LR range test (LearningRateScheduler, schedule checks
included) and the gradient analysis together finish in under 60 s on this 2-core machine. Every tool
runs in this one process on the same warmed workload (the one-time data load and imports are timed
separately); wall time and this process's CPU time are both reported, with the machine's load
average, since other processes share the cores.

    python3 bench/tool_speed.py                 # all registered tools
    python3 bench/tool_speed.py --quick         # only the three probe tools of the target
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
TARGET_TOOLS = ["batch_size_optimizer", "learning_rate_scheduler", "gradient_analyzer"]
TARGET_S = 60.0


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the three tools of the target")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: tiny models)")
    parser.add_argument("--workload", default="digits-mlp")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def setup():
        from trainopt.tools import TOOL_CLASSES, get_tool
        from trainopt.tools.workloads import get_workload

        get_workload(args.workload).describe()  # loads the data, builds the model once
        return TOOL_CLASSES, get_tool

    (tool_classes, get_tool), setup_wall, setup_cpu = timed(setup)
    names = TARGET_TOOLS if args.quick else [*TARGET_TOOLS, *(n for n in tool_classes if n not in TARGET_TOOLS)]
    rows = []
    for name in names:
        try:
            tool = get_tool(name)(workload=args.workload, device="cpu")
            _, wall, cpu = timed(lambda tool=tool: tool())
            rows.append({"tool": name, "wall_s": wall, "cpu_s": cpu, "error": None})
        except Exception as error:  # a tool that fails is reported, the others still run
            rows.append({"tool": name, "wall_s": None, "cpu_s": None, "error": f"{type(error).__name__}: {error}"})
        print(f"{name}: {rows[-1]}", flush=True)
    target_rows = [r for r in rows if r["tool"] in TARGET_TOOLS]
    ok = all(r["error"] is None for r in target_rows)
    total_wall = sum(r["wall_s"] for r in target_rows) if ok else None
    total_cpu = sum(r["cpu_s"] for r in target_rows) if ok else None
    load = os.getloadavg()
    lines = ["| tool | wall (s) | CPU (s) |", "|---|---|---|"]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['tool']} | failed: {r['error'][:80]} | |")
        else:
            lines.append(f"| {r['tool']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    if ok:
        lines.append(f"| **batch + LR + gradients** | **{total_wall:.1f}** | **{total_cpu:.1f}** |")
    lines.append("")
    lines.append(f"{args.workload}, default settings, CPU, torch {torch.__version__}, {args.threads} thread(s), "
                 f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end of the run; one-time data load "
                 f"and imports before the tools: {setup_wall:.1f} s wall, not counted.")
    table = "\n".join(lines)
    verdict = "holds" if ok and total_wall < TARGET_S else "falls short"
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "tool_speed_quick" if args.quick else "tool_speed"
    (RESULTS / f"{stem}.json").write_text(json.dumps({
        "workload": args.workload, "threads": args.threads, "torch": torch.__version__,
        "cpu_count": os.cpu_count(), "load_average": load, "platform": platform.platform(),
        "setup_wall_s": setup_wall, "setup_cpu_s": setup_cpu, "tools": rows,
        "target_tools": TARGET_TOOLS, "target_s": TARGET_S, "total_wall_s": total_wall,
        "total_cpu_s": total_cpu, "target": verdict}, indent=2))
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    print(table)
    print(f"target: batch-size probe + LR range test + gradient analysis < {TARGET_S:g} s wall: {verdict}"
          + (f" ({total_wall:.1f} s wall, {total_cpu:.1f} s CPU)" if ok else ""))


if __name__ == "__main__":
    main()
