"""Which LR range test rule finds the best LR? Measured against a grid on the built-in workloads.

For each workload: one LR range test (tools.lr_range defaults), the peak LR by each rule (steepest,
valley, minimum/10), and a grid of LRs spaced by 2x, each trained for the workload's default
steps on ``--seeds`` seeds. The best grid LR has the lowest mean validation loss. A rule "lands"
when its LR is within 2x of the best grid LR (docs/architecture.md, known pitfalls); we also train at each rule's
LR and report its val loss against the best grid point's (regret). The winner is the rule that
lands on most workloads (ties: smallest mean |log2(rule / best)|); it becomes
tools.lr_scheduler.DEFAULT_RULE.

    python3 bench/lr_rules.py            # full run
    python3 bench/lr_rules.py --quick    # digits-mlp only, short trials, for development
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from trainopt.tools.lr_range import lr_range_test
from trainopt.tools.lr_suggest import RULES, suggest_lr
from trainopt.tools.probe_setup import probe_config
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import get_workload, workload_names

RESULTS = Path(__file__).parent / "results"
CANDIDATES = ["digits-mlp", "digits-cnn", "char-gpt", "moe-digits"]
# char-gpt takes about 0.5 s a step on 2 shared cores: shorter trials, one seed, a narrower grid.
NEAR_OPTIMAL = 0.05  # a rule's LR is near-optimal when its val loss is within 5% of the best grid point's
REDUCED = {"char-gpt": {"steps": 100, "seeds": 1, "grid": slice(1, 10)}}


def mean_val_loss(workload, lr: float, steps: int, seeds: list[int]) -> float:
    """Mean final validation loss over seeds (inf when any seed diverged)."""
    scores = [run_trial(workload, probe_config(workload, lr=lr, steps=steps, seed=s,
                                               schedule="constant", warmup_steps=0)).score
              for s in seeds]
    return statistics.fmean(scores)


def measure(name: str, grid: list[float], steps: int | None, seeds: list[int]) -> dict:
    workload = get_workload(name)
    steps = steps or workload.default_config.get("steps", 300)
    started = time.perf_counter()
    sweep = lr_range_test(workload)
    rules = {rule: suggest_lr(sweep, rule) for rule in RULES}
    grid_losses = {lr: mean_val_loss(workload, lr, steps, seeds) for lr in grid}
    best_lr = min(grid_losses, key=grid_losses.get)
    rows = {}
    for rule, lr in rules.items():
        loss = mean_val_loss(workload, lr, steps, seeds)
        rows[rule] = {"lr": lr, "ratio_to_best": lr / best_lr, "within_2x": 0.5 <= lr / best_lr <= 2.0,
                      "val_loss": loss, "regret": loss / grid_losses[best_lr] - 1}
    return {"workload": name, "steps": steps, "seeds": seeds, "optimizer": sweep.optimizer,
            "sweep_steps": len(sweep.lrs), "sweep_stop": sweep.stop_reason, "best_grid_lr": best_lr,
            "best_grid_val_loss": grid_losses[best_lr],
            "grid": [{"lr": lr, "val_loss": loss} for lr, loss in grid_losses.items()],
            "rules": rows, "seconds": time.perf_counter() - started}


def winner(results: list[dict]) -> tuple[str, dict]:
    summary = {}
    for rule in RULES:
        hits = sum(r["rules"][rule]["within_2x"] for r in results)
        near = sum(r["rules"][rule]["regret"] <= NEAR_OPTIMAL for r in results)
        spread = statistics.fmean(abs(math.log2(r["rules"][rule]["ratio_to_best"])) for r in results)
        regret = statistics.fmean(r["rules"][rule]["regret"] for r in results)
        summary[rule] = {"within_2x": hits, "of": len(results), "mean_abs_log2_ratio": spread,
                         "mean_regret": regret, "near_optimal": near}
    best = min(RULES, key=lambda k: (-summary[k]["within_2x"], summary[k]["mean_abs_log2_ratio"]))
    return best, summary


def markdown(results: list[dict], summary: dict, best: str) -> str:
    header = " | ".join(f"{r} LR (x best, val-loss regret)" for r in RULES)
    lines = [f"| workload | best grid LR | {header} |",
             "|---|---|" + "---|" * len(RULES)]
    for r in results:
        cells = []
        for rule in RULES:
            row = r["rules"][rule]
            mark = "**within 2x**" if row["within_2x"] else "off"
            cells.append(f"{row['lr']:.2g} ({row['ratio_to_best']:.2f}x, {row['regret']:+.1%}) {mark}")
        lines.append(f"| {r['workload']} | {r['best_grid_lr']:.2g} | " + " | ".join(cells) + " |")
    lines.append("| **lands within 2x** | | " + " | ".join(
        f"{summary[k]['within_2x']}/{summary[k]['of']} "
        f"(mean abs log2 ratio {summary[k]['mean_abs_log2_ratio']:.2f})"
        for k in RULES) + " |")
    lines.append(f"| **val loss within {NEAR_OPTIMAL:.0%} of the best grid point** | | " + " | ".join(
        f"{summary[k]['near_optimal']}/{summary[k]['of']} (mean regret {summary[k]['mean_regret']:+.1%})"
        for k in RULES) + " |")
    lines.append("")
    lines.append(f"Winner (default rule of LearningRateScheduler): **{best}**")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits-mlp only, 60-step trials, 1 seed")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per grid point")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny models: 1 is fastest)")
    parser.add_argument("--rerender", action="store_true",
                        help="rewrite the table and verdict from bench/results/lr_rules.json (no training)")
    args = parser.parse_args()
    if args.rerender:
        payload = json.loads((RESULTS / "lr_rules.json").read_text())
        report(payload["workloads"], payload, "lr_rules")
        return
    torch.set_num_threads(args.threads)
    names = ["digits-mlp"] if args.quick else [n for n in CANDIDATES if n in workload_names()]
    grid = [1e-4 * 2**k for k in range(0, 11, 3 if args.quick else 1)]  # 1e-4 ... 0.1, factor 2
    steps = 60 if args.quick else None
    seeds = list(range(1 if args.quick else args.seeds))
    results: list[dict] = []
    for name in names:
        reduced = {} if args.quick else REDUCED.get(name, {})
        results.append(measure(name, grid[reduced.get("grid", slice(None))], reduced.get("steps", steps),
                               seeds[: reduced.get("seeds", len(seeds))]))
        print(f"{name}: best grid LR {results[-1]['best_grid_lr']:.3g}, "
              + ", ".join(f"{k} {v['lr']:.3g}" for k, v in results[-1]["rules"].items()), flush=True)
    payload = {"grid": grid, "reduced": str(REDUCED), "threads": args.threads, "torch": torch.__version__,
               "quick": args.quick}
    report(results, payload, "lr_rules_quick" if args.quick else "lr_rules")


def report(results: list[dict], payload: dict, stem: str) -> None:
    """Winner, markdown table, target verdict; writes bench/results/<stem>.json and .md."""
    best, summary = winner(results)
    table = markdown(results, summary, best)
    hits = summary[best]["within_2x"]
    verdict = "holds" if hits > len(results) / 2 else "falls short"
    target = (f"target: the default rule ({best}) lands within 2x of the best grid LR on most workloads: "
              f"{verdict} ({hits}/{len(results)})")
    payload = {**payload, "workloads": results, "summary": summary, "winner": best, "target": target}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{stem}.md").write_text(table + "\n\n" + target + "\n")
    print(table)
    print(target)


if __name__ == "__main__":
    main()
