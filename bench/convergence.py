"""Convergence prediction: forecast the final validation loss of full runs from their first 20%.

Full runs: 14 constant-LR runs of 300 steps (the workloads' default length) on digits-mlp and
digits-cnn, varying optimizer (AdamW, Adam, SGD, schedule-free, ARS), lr, batch size and seed,
validated every 5 steps (60 points). The predicted quantity is the **validation loss** at step
300 (TrialResult.final_val_loss), predicted from the validation points of the first 20% of the
run (12 points, steps 5..60). Contenders, all on the same curves in one process:

    fit (tool)     fit_loss_curve: the family with the lowest held-out error (last 25% of the points)
    power law      L = a t^-b + c only
    exponential    L = a exp(-b t) + c only
    log-logistic   L = c + (a - c) / (1 + (t / tau)^b) only
    last value     the last observed validation loss (no extrapolation)

Figure: median absolute percentage error (MdAPE) over the runs; also at 30% and 50% observed,
and the coverage of the tool's 90% interval. Target: MdAPE <= 5% at 20%.
Runs are kept in a TrialStore under bench/.cache (gitignored), so reruns only refit.

    python3 bench/convergence.py           # all 14 runs (about 10 minutes on 2 busy cores, first time)
    python3 bench/convergence.py --quick   # 4 runs of 100 steps
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from trainopt.errors import ConvergenceError
from trainopt.tools.curve_fit import ALL_MODELS, fit_loss_curve
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig

CACHE_DIR = Path(__file__).parent / ".cache"  # gitignored
RESULTS = Path(__file__).parent / "results"
FULL_STEPS = 300  # the workloads' default run length
EVAL_EVERY = 5  # a validation point every 5 steps
FRACTIONS = (0.2, 0.3, 0.5)  # observed share of the run; 0.2 is the target's
TARGET_MDAPE = 0.05
LEVEL = 0.9
N_BOOTSTRAP = 100

# (workload, TrialConfig overrides); constant LR throughout (the curve models assume no decay)
RUNS: list[tuple[str, dict]] = [
    ("digits-mlp", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "seed": 0}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 64, "seed": 1}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 3e-4, "batch_size": 32, "seed": 2}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 128, "seed": 3, "weight_decay": 0.01}),
    ("digits-mlp", {"optimizer": "adam", "lr": 5e-4, "batch_size": 64, "seed": 4}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "seed": 5}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "seed": 6}),
    ("digits-mlp", {"optimizer": "schedulefree", "lr": 2e-3, "batch_size": 64, "seed": 7}),
    ("digits-mlp", {"optimizer": "ars", "lr": 1e-3, "batch_size": 64, "seed": 8}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "seed": 0}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 128, "seed": 1}),
    ("digits-cnn", {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "seed": 2}),
    ("digits-cnn", {"optimizer": "adam", "lr": 3e-4, "batch_size": 32, "seed": 3}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 4}),
]
CONTENDERS = ("fit (tool)", "power law", "exponential", "log-logistic", "last value")


def run_config(overrides: dict, steps: int) -> TrialConfig:
    return TrialConfig(steps=steps, eval_every=max(1, steps * EVAL_EVERY // FULL_STEPS), **overrides)


def predict(contender: str, steps: np.ndarray, losses: np.ndarray, horizon: float):
    """(point prediction, the tool's 90% interval, the bootstrap-only 90% interval) at ``horizon``."""
    if contender == "last value":
        return float(losses[-1]), None, None
    models = {"fit (tool)": ALL_MODELS, "power law": ("power_law",), "exponential": ("exponential",),
              "log-logistic": ("log_logistic",)}[contender]
    n_bootstrap = N_BOOTSTRAP if contender == "fit (tool)" else 0
    try:
        fit = fit_loss_curve(steps, losses, n_bootstrap=n_bootstrap, models=models)
    except ConvergenceError:
        return float(losses[-1]), None, None  # no fit: the last value stands in (its error counts)
    if not n_bootstrap:
        return fit.predict(horizon), None, None
    boot = np.quantile([fit._curve(horizon, p) for p in fit.bootstrap], [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return fit.predict(horizon), fit.predict_interval(horizon, LEVEL), (float(boot[0]), float(boot[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 runs of 100 steps (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: be a good neighbour
    steps_full = 100 if args.quick else FULL_STEPS
    runs = RUNS[:4] if args.quick else RUNS
    CACHE_DIR.mkdir(exist_ok=True)
    store = TrialStore(out_dir=CACHE_DIR)

    started = time.perf_counter()
    curves = []
    for i, (workload, overrides) in enumerate(runs):
        result = store.run(workload, run_config(overrides, steps_full), device="cpu")
        print(f"[{i + 1}/{len(runs)}] {workload} {overrides}: final val {result.final_val_loss:.4f}"
              f"{' (stored)' if result.from_store else ''}", flush=True)
        curves.append((workload, overrides, result))

    rows, errors, covered, covered_boot = [], {}, {}, {}
    for workload, overrides, result in curves:
        if result.diverged:
            raise SystemExit(f"{workload} {overrides} diverged: choose another setting for the benchmark")
        steps, losses = np.array(result.val_steps, float), np.array(result.val_losses, float)
        final = result.final_val_loss
        row = {"workload": workload, **overrides, "final_val_loss": final}
        for fraction in FRACTIONS:
            n = int(round(len(steps) * fraction))
            for contender in CONTENDERS:
                point, interval, boot = predict(contender, steps[:n], losses[:n], float(steps[-1]))
                ape = abs(point - final) / final
                errors.setdefault((fraction, contender), []).append(ape)
                if interval is not None:
                    covered.setdefault(fraction, []).append(interval[0] <= final <= interval[1])
                    covered_boot.setdefault(fraction, []).append(boot[0] <= final <= boot[1])
                if contender == "fit (tool)":
                    row[f"pred@{fraction:.0%}"] = point
                    row[f"ape@{fraction:.0%}"] = ape
                    row[f"interval@{fraction:.0%}"] = interval
        rows.append(row)

    summary = [{"observed": f"{f:.0%}", "contender": c, "mdape": statistics.median(errors[(f, c)]),
                "mean_ape": statistics.fmean(errors[(f, c)]),
                "coverage_90": (statistics.fmean(covered[f]) if c == "fit (tool)" else None),
                "coverage_90_bootstrap_only": (statistics.fmean(covered_boot[f]) if c == "fit (tool)" else None)}
               for f in FRACTIONS for c in CONTENDERS]
    headline = statistics.median(errors[(0.2, "fit (tool)")])
    verdict = "holds" if headline <= TARGET_MDAPE else "falls short"
    md = _markdown(summary, rows, headline, verdict, len(curves), steps_full)
    print(md)
    print(f"target: MdAPE <= {TARGET_MDAPE:.0%} from the first 20% -> {headline:.1%}: {verdict}")
    name = "convergence_quick" if args.quick else "convergence"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({
        "settings": {"runs": len(curves), "steps": steps_full, "eval_every": EVAL_EVERY * steps_full // FULL_STEPS,
                     "predicted": "final validation loss (TrialResult.final_val_loss)",
                     "fractions": FRACTIONS, "level": LEVEL, "n_bootstrap": N_BOOTSTRAP,
                     "interval": "residual bootstrap widened by the held-out error scaled to the horizon"},
        "summary": summary, "runs": rows,
        "target": {"mdape_at_20pct": headline, "threshold": TARGET_MDAPE, "verdict": verdict},
        "wall_time_s": time.perf_counter() - started,
    }, indent=2))
    (RESULTS / f"{name}.md").write_text(md + "\n")


def _markdown(summary, rows, headline, verdict, n_runs, steps) -> str:
    lines = [f"Final validation loss of {n_runs} full runs ({steps} steps, digits-mlp / digits-cnn) predicted "
             f"from the first part of their validation curve; MdAPE = median absolute percentage error, "
             f"coverage = share of runs whose final loss lies in the tool's 90% interval (residual bootstrap "
             f"widened by the held-out error scaled to the horizon; in brackets: the bootstrap alone).", "",
             "| observed | contender | MdAPE | mean APE | 90% coverage |", "|---|---|---:|---:|---:|"]
    for s in summary:
        coverage = "" if s["coverage_90"] is None else (
            f"{s['coverage_90']:.0%} ({s['coverage_90_bootstrap_only']:.0%})")
        lines.append(f"| {s['observed']} | {s['contender']} | {s['mdape']:.1%} | {s['mean_ape']:.1%} | {coverage} |")
    lines += ["", "| workload | optimizer | lr | batch | seed | final val loss | predicted @20% | APE @20% | "
              "APE @50% |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['optimizer']} | {r['lr']:g} | {r['batch_size']} | {r['seed']} | "
                     f"{r['final_val_loss']:.4f} | {r['pred@20%']:.4f} | {r['ape@20%']:.1%} | {r['ape@50%']:.1%} |")
    lines += ["", f"Target MdAPE <= {TARGET_MDAPE:.0%} from the first 20%: {headline:.1%}, **{verdict}**."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
