"""Convergence prediction: forecast the best validation loss of full runs from their first 20%.

Full runs: 24 runs on all five built-in workloads, long enough to be near convergence (1500 steps
on digits-mlp / digits-cnn / moe-digits / diffusion-2d, i.e. 60-130 epochs on digits; 600 on char-gpt,
about 0.25 s/step here), varying optimizer (AdamW, Adam, SGD, schedule-free), lr, batch size, weight
decay, schedule (constant or cosine) and seed, validated every 1% of the run (100 points).

What is predicted, and why. Training loss on digits goes to ~1e-4 in these runs (memorised), so a
percentage error on it means nothing; the final validation loss on digits rises again late in a
long run (overfitting), which no monotone curve family can forecast. The headline target is
therefore the **best validation loss the run reaches** (the minimum of the 5-point trailing mean of
the validation loss over the whole run): the loss the run delivers with checkpoint selection, and
the quantity an HPO pruner compares. The final validation loss (5-point trailing mean at the end)
is scored too. The prediction of a contender is min(its curve at the last step, the best loss
already observed), from the raw validation points of the first 20% (also 30% and 50%).

A run whose best loss already lies inside the observed part makes the headline easy (the
"observed best" baseline, no extrapolation at all, gets it exactly), so the MdAPE is also given on
the runs that still improve after the observed part: the genuine extrapolations.

Contenders, all on the same curves in one process:

    ensemble + training curve (tool)   fit_with_training_curve: the three families below and the two
                      training-curve members, equal weights (members within 100x the lowest held-out
                      error); what ConvergencePredictor does when it runs the trial itself
    ensemble, val only     fit_loss_curve, equal weights: the tool on a curve it is given
    ensemble, held-out weights (old tool)   fit_loss_curve weighted by 1 / (held-out error)^2
    held-out choice   the one family with the lowest held-out error (the tool's rule before the ensemble)
    power law         L = a t^-b + c only                   (each family: its member of the same fit,
    exponential       L = a exp(-b t) + c only               refitted on all observed points)
    log-logistic      L = c + (a - c) / (1 + (t / tau)^b) only
    train shift       the fitted training curve plus the train/val gap measured at the end (alone)
    train link        alpha + k * the fitted training curve, least squares on the later val points (alone)
    LR-area ensemble  the val-only ensemble fitted against the learning-rate area sum_i lr_i / lr_peak
                      instead of the step (Tissue et al. 2024): the schedule is known in advance
    observed best     the best (5-point trailing mean) validation loss seen so far
    last value        the last 5-point trailing mean of the validation loss

How the method was chosen: on DEV_RUNS, 28 other runs of the same workloads (other seeds, learning
rates, optimizers, schedules; ``--dev``), never on the 24 benchmark runs. There, from the first 20%,
the held-out weighting scored 9.7% MdAPE, equal weights over the three families 7.3%, the same fitted
against the LR area 7.3% (no gain), and equal weights over the families plus the two training-curve
members 5.1% (weights by held-out error, to the power 1, 2 or 4, and a held-out tail of 25% or 50%
all did worse; bench/results/convergence_dev.md). That method became the tool's; the benchmark
figures are its first run on the benchmark runs.

Figure: median absolute percentage error (MdAPE) over the runs, and the coverage of the tool's
90% interval. Target: MdAPE <= 5% at 20%.
Runs are kept in a TrialStore under bench/.cache (gitignored), so reruns only refit.

    python3 bench/convergence.py           # 24 runs: ~28 min of training on 2 busy cores, then a few min of fits
    python3 bench/convergence.py --dev     # the 28 development runs the method was chosen on
    python3 bench/convergence.py --quick   # 4 runs of a tenth of the length (a smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from trainopt.errors import ConvergenceError
from trainopt.tools.curve_fit import fit_loss_curve
from trainopt.tools.curve_linked import fit_with_training_curve, train_linked_members
from trainopt.tools.optim_factory import lr_multiplier
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig

CACHE_DIR = Path(__file__).parent / ".cache"  # gitignored
RESULTS = Path(__file__).parent / "results"
FRACTIONS = (0.2, 0.3, 0.5)  # observed share of the run; 0.2 is the target's
SMOOTH = 5  # trailing-mean window (validation points) for the targets and the baselines
TARGET_MDAPE = 0.05
LEVEL = 0.9
N_BOOTSTRAP = 30

# full-run length per workload: long enough to be near convergence (digits: 60-130 epochs),
# char-gpt shorter (about 0.25 s/step here)
FULL_STEPS_BY_WORKLOAD = {"digits-mlp": 1500, "digits-cnn": 1500, "moe-digits": 1500, "diffusion-2d": 1500,
                          "char-gpt": 600}
POINTS = 100  # validation points per run (eval_every = steps / POINTS)

# (workload, TrialConfig overrides): optimizer, lr, batch, schedule and seed varied
RUNS: list[tuple[str, dict]] = [
    ("digits-mlp", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "seed": 0}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "seed": 1}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 3e-4, "batch_size": 32, "seed": 2, "weight_decay": 0.01}),
    ("digits-mlp", {"optimizer": "schedulefree", "lr": 2e-3, "batch_size": 64, "seed": 3}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 128, "seed": 4, "schedule": "cosine"}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "seed": 5}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 1e-4, "batch_size": 64, "seed": 6}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "seed": 0}),
    ("digits-cnn", {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "seed": 1}),
    ("digits-cnn", {"optimizer": "adam", "lr": 3e-4, "batch_size": 32, "seed": 2}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 128, "seed": 3, "schedule": "cosine"}),
    ("digits-cnn", {"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "seed": 4}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 5, "weight_decay": 0.01}),
    ("moe-digits", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "seed": 0}),
    ("moe-digits", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 32, "seed": 1}),
    ("moe-digits", {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "seed": 2, "schedule": "cosine"}),
    ("moe-digits", {"optimizer": "adam", "lr": 3e-4, "batch_size": 64, "seed": 3}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "seed": 0}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 5e-4, "batch_size": 128, "seed": 1}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "seed": 2, "schedule": "cosine"}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 1e-4, "batch_size": 256, "seed": 3}),
    ("char-gpt", {"optimizer": "adamw", "lr": 3e-3, "batch_size": 32, "seed": 0}),
    ("char-gpt", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 2}),
    ("char-gpt", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 1, "schedule": "cosine"}),
]
# development runs: the method was chosen on these (other seeds and settings than RUNS)
DEV_RUNS: list[tuple[str, dict]] = [
    ("digits-mlp", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 64, "seed": 10}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 5e-4, "batch_size": 64, "seed": 10}),
    ("moe-digits", {"optimizer": "adamw", "lr": 5e-4, "batch_size": 32, "seed": 10}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 256, "seed": 10}),
    ("char-gpt", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 32, "seed": 10}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.03, "batch_size": 32, "seed": 11, "schedule": "cosine"}),
    ("digits-cnn", {"optimizer": "sgd", "lr": 0.02, "batch_size": 64, "seed": 11}),
    ("moe-digits", {"optimizer": "sgd", "lr": 0.02, "batch_size": 64, "seed": 11}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 3e-4, "batch_size": 128, "seed": 11, "schedule": "cosine"}),
    ("char-gpt", {"optimizer": "adamw", "lr": 5e-4, "batch_size": 32, "seed": 11, "schedule": "cosine"}),
    ("digits-mlp", {"optimizer": "adam", "lr": 5e-4, "batch_size": 64, "seed": 12}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 64, "seed": 12, "schedule": "cosine"}),
    ("moe-digits", {"optimizer": "adamw", "lr": 2e-3, "batch_size": 64, "seed": 12, "schedule": "cosine"}),
    ("diffusion-2d", {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "seed": 12}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 3e-4, "batch_size": 128, "seed": 13, "weight_decay": 0.01}),
    ("digits-cnn", {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "seed": 13}),
    ("digits-mlp", {"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "seed": 20}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 3e-4, "batch_size": 64, "seed": 20, "weight_decay": 0.01}),
    ("moe-digits", {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "seed": 20}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 5e-3, "batch_size": 256, "seed": 20}),
    ("char-gpt", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 20, "schedule": "cosine"}),
    ("digits-mlp", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "seed": 21, "schedule": "cosine"}),
    ("digits-cnn", {"optimizer": "sgd", "lr": 0.05, "batch_size": 32, "seed": 21, "schedule": "cosine"}),
    ("moe-digits", {"optimizer": "adamw", "lr": 2e-4, "batch_size": 64, "seed": 21}),
    ("diffusion-2d", {"optimizer": "adamw", "lr": 2e-4, "batch_size": 256, "seed": 21}),
    ("digits-mlp", {"optimizer": "schedulefree", "lr": 1e-3, "batch_size": 32, "seed": 22}),
    ("digits-cnn", {"optimizer": "adamw", "lr": 1e-3, "batch_size": 128, "seed": 22}),
    ("moe-digits", {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "seed": 22}),
]
TOOL = "ensemble + training curve (tool)"
CONTENDERS = (TOOL, "ensemble, val only", "ensemble, held-out weights (old tool)", "held-out choice", "power law",
              "exponential", "log-logistic", "train shift", "train link", "LR-area ensemble", "observed best",
              "last value")
_MEMBER_CONTENDER = {"power_law": "power law", "exponential": "exponential", "log_logistic": "log-logistic",
                     "train_shift": "train shift", "train_link": "train link"}
TARGETS = ("best", "final")


def run_config(workload: str, overrides: dict, quick: bool = False) -> TrialConfig:
    steps = FULL_STEPS_BY_WORKLOAD[workload] // (10 if quick else 1)
    return TrialConfig(steps=steps, eval_every=max(1, steps // POINTS), **overrides)


def trailing_mean(values: np.ndarray, window: int = SMOOTH) -> np.ndarray:
    """Mean of each point and the window - 1 before it (fewer at the start): no look-ahead."""
    cumulative = np.cumsum(np.r_[0.0, values])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(0, end - window)
    return (cumulative[end] - cumulative[start]) / (end - start)


def lr_area(config: TrialConfig) -> np.ndarray:
    """S(t) = sum_{i<t} lr_i / lr_peak for t = 0..steps: the learning-rate area after t steps, known
    before the run from its schedule (Tissue et al. 2024, "Scaling law with learning rate annealing")."""
    multiplier = lr_multiplier(config) if config.optimizer != "schedulefree" else (lambda _t: 1.0)
    return np.r_[0.0, np.cumsum([multiplier(t) for t in range(config.steps)])]


def predict_all(steps: np.ndarray, losses: np.ndarray, train_losses: np.ndarray, config: TrialConfig,
                horizon: float) -> tuple[dict[str, float], tuple | None]:
    """Each contender's predicted best loss by ``horizon``, and the tool's 90% interval (or None).

    The families are the members of the old tool's fit (each refitted on all points), "held-out
    choice" its chosen family alone; the training-curve members are computed alone as well."""
    smoothed = trailing_mean(losses)
    best = float(smoothed.min())
    points = dict.fromkeys(CONTENDERS, best)  # a contender with no fit: the observed best stands in
    points["last value"] = float(smoothed[-1])
    try:
        tool = fit_with_training_curve(steps, losses, train_losses, n_bootstrap=N_BOOTSTRAP)
    except ConvergenceError:
        return points, None
    points[TOOL] = min(tool.predict(horizon), best)
    points["ensemble, val only"] = min(fit_loss_curve(steps, losses, n_bootstrap=0).predict(horizon), best)
    old = fit_loss_curve(steps, losses, n_bootstrap=0, weighting="inverse_square")
    points["ensemble, held-out weights (old tool)"] = min(old.predict(horizon), best)
    points["held-out choice"] = min(old.predict_family(horizon), best)
    members = list(old.members)
    with contextlib.suppress(ConvergenceError):
        members += train_linked_members(steps, losses, train_losses)
    for member in members:
        points[_MEMBER_CONTENDER[member.model]] = min(member.predict(horizon), best)
    area = lr_area(config)
    with contextlib.suppress(ConvergenceError):
        by_area = fit_loss_curve(area[steps.astype(int)], losses, n_bootstrap=0)
        points["LR-area ensemble"] = min(by_area.predict(float(area[int(horizon)])), best)
    low, high = tool.predict_interval(horizon, LEVEL)
    return points, (min(low, best), min(high, best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 runs of a tenth of the length (a smoke run)")
    parser.add_argument("--dev", action="store_true", help="the development runs the method was chosen on")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: be a good neighbour
    runs = DEV_RUNS if args.dev else RUNS
    runs = runs[:4] if args.quick else runs
    CACHE_DIR.mkdir(exist_ok=True)
    store = TrialStore(out_dir=CACHE_DIR)

    started = time.perf_counter()
    curves = []
    for i, (workload, overrides) in enumerate(runs):
        result = store.run(workload, run_config(workload, overrides, args.quick), device="cpu")
        print(f"[{i + 1}/{len(runs)}] {workload} {overrides}: final val {result.final_val_loss:.4f}"
              f"{' (stored)' if result.from_store else ''}", flush=True)
        if result.diverged:
            raise SystemExit(f"{workload} {overrides} diverged: choose another setting for the benchmark")
        curves.append((workload, overrides, result, run_config(workload, overrides, args.quick)))

    rows, errors, covered = [], {}, {}
    for workload, overrides, result, config in curves:
        steps, losses = np.array(result.val_steps, float), np.array(result.val_losses, float)
        train_losses = np.array(result.train_losses, float)
        smoothed = trailing_mean(losses)
        truth = {"best": float(smoothed.min()), "final": float(smoothed[-1])}
        best_at = float(steps[int(np.argmin(smoothed))])
        row = {"workload": workload, **overrides, "steps": int(steps[-1]), "best_val_loss": truth["best"],
               "best_at_step": best_at, "final_val_loss": truth["final"]}
        for fraction in FRACTIONS:
            n = int(round(len(steps) * fraction))
            improving = best_at > steps[n - 1]  # the best loss still lies ahead of the observed part
            points, interval = predict_all(steps[:n], losses[:n], train_losses[:int(steps[n - 1])], config,
                                           float(steps[-1]))
            for contender, point in points.items():
                for target in TARGETS:
                    errors.setdefault((fraction, contender, target), []).append(
                        abs(point - truth[target]) / truth[target])
                if improving:
                    errors.setdefault((fraction, contender, "improving"), []).append(
                        abs(point - truth["best"]) / truth["best"])
            if interval is not None:
                covered.setdefault(fraction, []).append(interval[0] <= truth["best"] <= interval[1])
            point = points[TOOL]
            row[f"pred@{fraction:.0%}"] = point
            row[f"ape@{fraction:.0%}"] = abs(point - truth["best"]) / truth["best"]
            row[f"interval@{fraction:.0%}"] = interval
            row[f"improving_after@{fraction:.0%}"] = bool(improving)
        rows.append(row)

    def mdape(key):
        return statistics.median(errors[key]) if errors.get(key) else None

    summary = [{"observed": f"{f:.0%}", "contender": c, "mdape_best": mdape((f, c, "best")),
                "mean_ape_best": statistics.fmean(errors[(f, c, "best")]),
                "mdape_best_improving": mdape((f, c, "improving")),
                "n_improving": len(errors.get((f, c, "improving"), [])),
                "mdape_final": mdape((f, c, "final")),
                "coverage_90": statistics.fmean(covered[f]) if c == TOOL else None}
               for f in FRACTIONS for c in CONTENDERS]
    by_workload = {w: statistics.median([r["ape@20%"] for r in rows if r["workload"] == w])
                   for w in dict.fromkeys(r["workload"] for r in rows)}
    headline = mdape((0.2, TOOL, "best"))
    improving = mdape((0.2, TOOL, "improving"))
    final = mdape((0.2, TOOL, "final"))
    verdicts = {name: ("holds" if value is not None and value <= TARGET_MDAPE else "falls short")
                for name, value in (("best", headline), ("improving", improving), ("final", final))}
    md = _markdown(summary, rows, by_workload, headline, improving, final, verdicts, args.dev)
    print(md)
    print(f"target: MdAPE <= {TARGET_MDAPE:.0%} from the first 20%, best val loss -> {headline:.1%}: "
          f"{verdicts['best']}; on the runs still improving -> {_pct(improving)}: {verdicts['improving']}; "
          f"final val loss -> {final:.1%}: {verdicts['final']}")
    name = "convergence" + ("_dev" if args.dev else "") + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({
        "settings": {"runs": len(curves), "run_set": "development (DEV_RUNS)" if args.dev else "benchmark (RUNS)",
                     "steps": {w: run_config(w, {}, args.quick).steps
                                                    for w in dict.fromkeys(r["workload"] for r in rows)},
                     "points_per_run": POINTS, "smooth_window": SMOOTH,
                     "predicted": "best validation loss over the run (min of the 5-point trailing mean); "
                                  "final validation loss (5-point trailing mean at the end) scored too",
                     "fractions": FRACTIONS, "level": LEVEL, "n_bootstrap": N_BOOTSTRAP,
                     "interval": "bootstrap of the chosen family, widened by the held-out error scaled to "
                                 "the horizon, capped at the observed best",
                     "tool": "fit_with_training_curve: power law, exponential, log-logistic on the validation "
                             "points and train_shift / train_link on the training curve (40 bins), equal weights "
                             "over the members within 100x the lowest held-out error"},
        "summary": summary, "mdape_at_20pct_by_workload": by_workload, "runs": rows,
        "target": {"mdape_best_at_20pct": headline, "mdape_best_at_20pct_improving_runs": improving,
                   "mdape_final_at_20pct": final, "threshold": TARGET_MDAPE, "verdicts": verdicts},
        "wall_time_s": time.perf_counter() - started,
    }, indent=2))
    (RESULTS / f"{name}.md").write_text(md + "\n")


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _markdown(summary, rows, by_workload, headline, improving, final, verdicts, dev=False) -> str:
    n_improving = sum(r["improving_after@20%"] for r in rows)
    which = "development runs (the method was chosen on these)" if dev else "full runs"
    lines = [f"Best validation loss of {len(rows)} {which} on {len(by_workload)} workloads predicted from the "
             f"first part of their validation and training curves. MdAPE = median absolute percentage error; \"still "
             f"improving\" = the runs whose best loss lies after the observed part (the genuine "
             f"extrapolations; n in brackets); final = the same prediction scored against the final "
             f"validation loss; coverage = share of runs whose best loss lies in the tool's 90% interval.", "",
             "| observed | contender | MdAPE best | mean APE best | MdAPE best, still improving | "
             "MdAPE final | 90% coverage |", "|---|---|---:|---:|---:|---:|---:|"]
    for s in summary:
        coverage = "" if s["coverage_90"] is None else f"{s['coverage_90']:.0%}"
        lines.append(f"| {s['observed']} | {s['contender']} | {_pct(s['mdape_best'])} | {s['mean_ape_best']:.1%} | "
                     f"{_pct(s['mdape_best_improving'])} ({s['n_improving']}) | {_pct(s['mdape_final'])} | "
                     f"{coverage} |")
    lines += ["", "| workload | MdAPE best @20% (tool) |", "|---|---:|"]
    lines += [f"| {w} | {v:.1%} |" for w, v in by_workload.items()]
    lines += ["", "| workload | optimizer | lr | batch | schedule | seed | steps | best val loss (step) | "
              "final val loss | predicted @20% | APE @20% | APE @50% |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['optimizer']} | {r['lr']:g} | {r['batch_size']} | "
                     f"{r.get('schedule', 'constant')} | {r['seed']} | {r['steps']} | {r['best_val_loss']:.4f} "
                     f"({r['best_at_step']:g}) | {r['final_val_loss']:.4f} | {r['pred@20%']:.4f} | "
                     f"{r['ape@20%']:.1%}{'' if r['improving_after@20%'] else ' *'} | {r['ape@50%']:.1%} |")
    lines += ["", "\\* the best loss already lay inside the first 20% (no extrapolation needed).", "",
              f"Target MdAPE <= {TARGET_MDAPE:.0%} from the first 20%: best val loss {headline:.1%}, "
              f"**{verdicts['best']}**; on the {n_improving} runs still improving after 20% {_pct(improving)}, "
              f"**{verdicts['improving']}**; final val loss {final:.1%}, **{verdicts['final']}**."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
