"""Overhead of the probe engine: run_trial against a bare hand-written PyTorch loop.

Both train the same workload with the same model, data order, optimizer and step count, in
this one process. run_trial records the loss and LR every step, gradient statistics every 20
steps and the peak memory of the first step; both validate once at the end (loss and metric).

Design: rounds of bare, trial, trial, bare and trial, bare, bare, trial in turn (ABBA/BAAB, so
a drift in machine speed and a position effect cancel); each round gives a paired ratio (trial
time / bare time of the same round), and the overhead is the median paired ratio minus 1, with
its interquartile range. The same design run on bare against bare (an A/A control) shows the
noise floor of the machine in the same run.

    python3 bench/probe_overhead.py            # full run
    python3 bench/probe_overhead.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import get_workload

RESULTS = Path(__file__).parent / "results"
TARGET = 0.05  # overhead <= 5%


def bare_loop(workload, config: TrialConfig) -> float:
    """The loop a user would write by hand; returns seconds per step (validation included)."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = workload.make_model()
    params = (workload.param_groups(model, config.lr, config.weight_decay) if workload.param_groups
              else model.parameters())  # the same parameter groups run_trial builds (moe-digits: gate/expert)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    batches = workload.train_batches(config.batch_size, torch.Generator().manual_seed(config.seed),
                                     torch.device("cpu"))
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = workload.loss(model, next(batches))
        loss.backward()
        optimizer.step()
        loss.item()
    with torch.no_grad():
        model.eval()
        for batch, _ in workload.val_batches(torch.device("cpu")):
            workload.loss(model, batch).item()
            if workload.metric_fn is not None:
                workload.metric_fn(model, batch)
    return (time.perf_counter() - started) / config.steps


def probe_loop(workload, config: TrialConfig) -> float:
    started = time.perf_counter()
    run_trial(workload, config, device="cpu")
    return (time.perf_counter() - started) / config.steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps and repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=10, help="ABBA/BAAB rounds per workload")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for probe_overhead.json/.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    plan = {"digits-mlp": 300, "digits-cnn": 300, "moe-digits": 200, "char-gpt": 40}
    if args.quick:
        plan = {name: max(10, steps // 10) for name, steps in plan.items()}

    rows = []
    for name, steps in plan.items():
        workload = get_workload(name)
        config = TrialConfig(**{**workload.default_config, "steps": steps, "eval_every": steps})
        bare_loop(workload, config), probe_loop(workload, config)  # warm-up: imports, allocator
        bare, probe = partial(bare_loop, workload, config), partial(probe_loop, workload, config)
        trial, control = abba(bare, probe, repeats), abba(bare, bare, repeats)
        overhead = trial["ratio"] - 1
        rows.append({"workload": name, "steps": steps, "batch_size": config.batch_size,
                     "bare_ms_per_step": 1e3 * trial["a_median"], "run_trial_ms_per_step": 1e3 * trial["b_median"],
                     "overhead": overhead, "overhead_iqr": [q - 1 for q in trial["ratio_iqr"]],
                     "noise_floor": control["ratio"] - 1, "noise_floor_iqr": [q - 1 for q in control["ratio_iqr"]],
                     "holds": overhead <= TARGET})
        print(f"{name:>11}: bare {rows[-1]['bare_ms_per_step']:.3f} ms/step, run_trial "
              f"{rows[-1]['run_trial_ms_per_step']:.3f} ms/step, overhead {overhead:+.1%} "
              f"(A/A noise floor {rows[-1]['noise_floor']:+.1%})", flush=True)

    table = ["| workload | steps | batch | bare loop (ms/step) | run_trial (ms/step) | overhead (IQR) "
             "| A/A control: bare vs bare (IQR) | target <= 5% |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    table += [f"| {r['workload']} | {r['steps']} | {r['batch_size']} | {r['bare_ms_per_step']:.3f} | "
              f"{r['run_trial_ms_per_step']:.3f} | {_pct(r['overhead'], r['overhead_iqr'])} | "
              f"{_pct(r['noise_floor'], r['noise_floor_iqr'])} | {'holds' if r['holds'] else 'falls short'} |"
              for r in rows]
    footer = (f"\nCPU, torch {torch.__version__}, {args.threads} thread(s), {repeats} ABBA/BAAB rounds, median "
              f"paired ratio; `python3 bench/probe_overhead.py{' --quick' if args.quick else ''}`.")
    markdown = "\n".join(table) + footer + "\n"
    print("\n" + markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": args.threads, "repeats": repeats, "cpus": os.cpu_count(),
            "quick": args.quick}
    _write(args.out / "probe_overhead.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    _write(args.out / "probe_overhead.md", markdown)
    held = all(r["holds"] for r in rows)
    print(f"target overhead <= {TARGET:.0%}: {'holds' if held else 'falls short'}")
    return 0


def abba(a, b, rounds: int) -> dict:
    """Rounds of a, b, b, a and b, a, a, b in turn: medians of each, median paired ratio (b / a), its IQR.

    Alternating the two orders cancels a position effect (a run in the middle of a round being
    faster or slower than one at its ends) as well as a drift in machine speed.
    """
    a_times, b_times, ratios = [], [], []
    for index in range(rounds):
        if index % 2 == 0:
            a1, b1, b2, a2 = a(), b(), b(), a()
        else:
            b1, a1, a2, b2 = b(), a(), a(), b()
        a_times += [a1, a2]
        b_times += [b1, b2]
        ratios.append((b1 + b2) / (a1 + a2))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {"a_median": statistics.median(a_times), "b_median": statistics.median(b_times),
            "ratio": statistics.median(ratios), "ratio_iqr": [quartiles[0], quartiles[2]]}


def _pct(value: float, iqr: list[float]) -> str:
    return f"{value:+.1%} ({iqr[0]:+.1%} .. {iqr[1]:+.1%})"


def _write(path: Path, text: str) -> None:
    """Write atomically: a temp file, then rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
