"""Meta-optimizers vs simple schedules: ExpertGraph on scikit-learn digits, same step budget for all.

Contenders (AdamW underneath every one, same model init, batches and step budget per seed):
constant LR, torch ReduceLROnPlateau, cosine decay, each meta-optimizer through OptimizerWrapper,
RLMetaOptimizer with a policy trained first over several episodes (on development seeds 1000+,
never an evaluation seed; its cost is reported beside it), and the same RL meta-optimizer with a
uniformly random policy over the same actions.

The RL policy (``reward="episode"``): actions multiply the LR by 0.9 or 1, so it never goes above the
start LR (the top of the safe range every contender starts from) and decides when to decay; state features
include progress and the loss trend; the reward is the whole episode's score, minus the log of the
loss on a held-out 20% of the *training* split at the end of the run (the episodes train on the
other 80%), compared within a group of ``--group-size`` episodes on the same seed.
Every decision-maker (meta-optimizers and ReduceLROnPlateau) decides at steps 0, f, 2f, ...
(``f = --decide-every``), before that step's update, from the same signal: the mean training loss
of the steps since the last decision (the current batch included), plus gradient norm, weight norm,
routing statistics and progress. Nothing reads the validation set before the final evaluation.

Target: the trained policy's mean val loss within 5% of the best simple schedule's on the
evaluation seeds (the mean ratio and its 90% t-interval over seeds are printed), and no seed diverging
(val loss not finite or above ln 10, the loss of a uniform guess).

Writes bench/results/meta_optimizers.json, .md and meta_optimizers_lr.png.

    python3 bench/meta_optimizers.py            # the full run (README table)
    python3 bench/meta_optimizers.py --quick    # a smoke run for development
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from doc_block import write_doc_block  # noqa: E402  # bench/doc_block.py (the script's folder is on sys.path)
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from trainopt.ars.meta import (  # noqa: E402
    AdvancedPlateauMetaOptimizer,
    ExpertGateMetaOptimizer,
    ExpertGraph,
    MetaOptimizer,
    OptimizerWrapper,
    PlateauMetaOptimizer,
    RLMetaOptimizer,
    SmartExpertGateMetaOptimizer,
)
from trainopt.tools.workloads.digits import digits_split  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).parent.parent / "docs" / "benchmarks" / "meta_optimizers.md"
SIMPLE = ("constant", "reduce_on_plateau", "cosine")
META = ("plateau", "expert_gate", "advanced_plateau", "smart_expert_gate", "rl_trained", "rl_trained_greedy")
CONTROLS = ("rl_random",)


@dataclass
class Setup:
    """Everything a run needs besides the contender; the same for every contender."""

    steps: int  # optimizer steps per run (the budget)
    batch_size: int
    lr: float  # AdamW LR every contender starts from
    weight_decay: float
    decide_every: int  # steps between meta-optimizer / ReduceLROnPlateau decisions
    num_experts: int
    hidden: int
    top_k: int
    data: tuple = field(repr=False, default=None)


@dataclass
class RunResult:
    val_loss: float
    val_accuracy: float
    wall_s: float
    lr_trace: list[float]  # expert (reference) group LR at every step
    gate_lr_trace: list[float]  # gate group LR at every step


DIVERGED_LOSS = math.log(10)  # cross-entropy of a uniform guess over the 10 classes


def rl_meta(seed: int, max_lr: float, group_size: int = 4) -> RLMetaOptimizer:
    """The RL meta-optimizer every RL contender uses: episode reward, LR x 0.9 or x 1 (it decides when to
    decay; 0.8 / 1 / 1.25 measured worse: its random walk stays near the cap, like a constant LR), LR <= max_lr."""
    # policy Adam LR 3e-3, entropy 0.05, one step per group: at 3e-2 (two steps per group) one noisy group
    # made the policy always answer x 1 after three groups, and identical episodes then taught it nothing
    return RLMetaOptimizer(lr_factors=(0.9, 1.0), wd_deltas=(0.0,), hidden=32, entropy_weight=0.05,
                           policy_lr=3e-3, seed=seed, reward="episode", max_lr=max_lr, group_size=group_size,
                           episode_updates=1)


def uniform_policy(meta: RLMetaOptimizer) -> RLMetaOptimizer:
    """Zero the policy's last layer: softmax of zeros is uniform over the same actions; freeze it."""
    with torch.no_grad():
        meta.policy[-1].weight.zero_()
        meta.policy[-1].bias.zero_()
    meta.learning = False
    return meta


def meta_factories() -> dict[str, Callable[[], MetaOptimizer]]:
    """The hand-written meta-optimizers, each called once per decision (every --decide-every steps)."""
    return {
        "plateau": lambda: PlateauMetaOptimizer(patience=3, lr_factor=0.5, min_lr=1e-6),
        "expert_gate": lambda: ExpertGateMetaOptimizer(gate_lr_factor=0.1, entropy_threshold=0.5),
        "advanced_plateau": lambda: AdvancedPlateauMetaOptimizer(patience=3, lr_factor=0.5, min_lr=1e-7,
                                                                 warmup_steps=5, trend_window=5),
        "smart_expert_gate": lambda: SmartExpertGateMetaOptimizer(),
    }


def train_run(setup: Setup, seed: int, contender: str, meta: MetaOptimizer | None = None,
              data: tuple | None = None) -> RunResult:
    """One training run of ``setup.steps`` AdamW steps under ``contender``; evaluate on the validation set
    (``data`` replaces ``setup.data``: the RL episodes train and score on a split of the training set)."""
    (x_train, y_train), (x_val, y_val) = data or setup.data
    torch.manual_seed(seed)
    model = ExpertGraph(x_train.shape[1], 10, num_experts=setup.num_experts, hidden=setup.hidden,
                        top_k=setup.top_k)
    optimizer = torch.optim.AdamW(model.param_groups(setup.lr, setup.weight_decay))
    wrapper = OptimizerWrapper(optimizer, meta)
    scheduler = None
    if contender == "reduce_on_plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    elif contender == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=setup.steps)
    batches = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(len(x_train), generator=batches), 0
    window: dict[str, list] = {"loss": [], "grad_norm": [], "gate_entropy": [], "routing_sparsity": [],
                               "expert_usage": []}
    lr_trace, gate_lr_trace = [], []
    params = list(model.parameters())
    start = time.perf_counter()
    for step in range(setup.steps):
        if cursor + setup.batch_size > len(order):
            order, cursor = torch.randperm(len(x_train), generator=batches), 0
        idx = order[cursor:cursor + setup.batch_size]
        cursor += setup.batch_size
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        wrapper.zero_grad()
        loss.backward()
        grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params if p.grad is not None))
        window["loss"].append(loss.item())
        window["grad_norm"].append(grad_norm.item())
        for key in ("gate_entropy", "routing_sparsity", "expert_usage"):
            window[key].append(model.routing_stats[key])
        if step % setup.decide_every == 0:  # decide at steps 0, f, 2f, ... before that step's update
            metrics = decision_metrics(window, params, progress=step / setup.steps)
            if contender == "reduce_on_plateau":
                scheduler.step(metrics["loss"])
            wrapper.update_hyperparameters(metrics)
            window = {key: [] for key in window}
        gate_lr_trace.append(optimizer.param_groups[0]["lr"])
        lr_trace.append(optimizer.param_groups[1]["lr"])
        wrapper.step()
        if contender == "cosine":
            scheduler.step()
    wall = time.perf_counter() - start
    with torch.no_grad():
        logits = model(x_val)
        val_loss = F.cross_entropy(logits, y_val).item()
        val_accuracy = (logits.argmax(-1) == y_val).float().mean().item()
    return RunResult(val_loss, val_accuracy, wall, lr_trace, gate_lr_trace)


def decision_metrics(window: dict[str, list], params: list[torch.Tensor], progress: float) -> dict:
    """Means over the last decision window: what every meta-optimizer (and ReduceLROnPlateau) reads."""
    usage = [statistics.fmean(column) for column in zip(*window["expert_usage"], strict=True)]
    with torch.no_grad():
        weight_norm = math.sqrt(sum(float((p ** 2).sum()) for p in params))
    return {"loss": statistics.fmean(window["loss"]), "grad_norm": statistics.fmean(window["grad_norm"]),
            "weight_norm": weight_norm, "gate_entropy": statistics.fmean(window["gate_entropy"]),
            "routing_sparsity": statistics.fmean(window["routing_sparsity"]), "expert_usage": usage,
            "progress": progress}


def policy_split(setup: Setup, holdout: float = 0.2) -> tuple:
    """The RL episodes' data: 80% of the training split to train on, 20% to score the episode (fixed split)."""
    (x_train, y_train), _ = setup.data
    perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(12345))
    cut = int(len(x_train) * (1 - holdout))
    return (x_train[perm[:cut]], y_train[perm[:cut]]), (x_train[perm[cut:]], y_train[perm[cut:]])


def train_rl_policy(setup: Setup, episodes: int, seed_offset: int, group_size: int,
                    advance: Callable[[], None]) -> tuple:
    """Train the RL policy over ``episodes`` runs, ``group_size`` per development seed ``seed_offset + g``."""
    meta = rl_meta(seed=seed_offset, max_lr=setup.lr, group_size=group_size)
    data = policy_split(setup)
    start = time.perf_counter()
    episode_results = []
    for episode in range(episodes):
        meta.reset()
        result = train_run(setup, seed_offset + episode // group_size, "rl_trained", meta, data=data)
        score = -math.log(result.val_loss) if math.isfinite(result.val_loss) and result.val_loss > 0 else -math.inf
        meta.end_episode(score)
        episode_results.append({"episode": episode, "seed": seed_offset + episode // group_size,
                                "holdout_loss": result.val_loss, "holdout_accuracy": result.val_accuracy})
        advance()
    cost = {"episodes": episodes, "group_size": group_size, "wall_s": time.perf_counter() - start,
            "steps": episodes * setup.steps, "policy_updates": meta.policy_updates,
            "per_episode": episode_results}
    return meta, cost


def summarize(runs: dict[str, list[RunResult]]) -> dict[str, dict]:
    out = {}
    for name, results in runs.items():
        losses = [r.val_loss for r in results]
        accs = [r.val_accuracy for r in results]
        out[name] = {"val_loss_mean": statistics.fmean(losses), "val_loss_std": statistics.pstdev(losses),
                     "val_accuracy_mean": statistics.fmean(accs), "val_accuracy_std": statistics.pstdev(accs),
                     "wall_s_mean": statistics.fmean(r.wall_s for r in results),
                     "val_loss": losses, "val_accuracy": accs}
    return out


def markdown_table(summary: dict[str, dict], kinds: dict[str, str]) -> str:
    lines = ["| contender | kind | val loss (mean ± std) | val accuracy (mean ± std) | wall s / run |",
             "|---|---|---|---|---|"]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["val_loss_mean"]):
        lines.append(f"| {name} | {kinds[name]} | {s['val_loss_mean']:.4f} ± {s['val_loss_std']:.4f} | "
                     f"{100 * s['val_accuracy_mean']:.2f}% ± {100 * s['val_accuracy_std']:.2f} | "
                     f"{s['wall_s_mean']:.2f} |")
    return "\n".join(lines)


def plot_lr(runs: dict[str, list[RunResult]], path: Path, seed: int) -> None:
    import matplotlib.pyplot as plt

    fig, (ax_expert, ax_gate) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for name, results in runs.items():
        style = "--" if name in SIMPLE else ":" if name in CONTROLS else "-"
        color = plt.cm.tab10(list(runs).index(name) % 10)
        ax_expert.plot(results[0].lr_trace, style, label=name, linewidth=1.4, color=color)
        ax_gate.plot(results[0].gate_lr_trace, style, label=name, linewidth=1.4, color=color)
    for ax, title in ((ax_expert, "expert-group LR"), (ax_gate, "gate-group LR")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{title} (seed {seed})")
        ax.grid(alpha=0.3)
    ax_expert.set_ylabel("learning rate")
    handles, labels = ax_gate.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def simple_vs_meta_verdict(summary: dict[str, dict], best_simple: str, best_meta: str) -> str:
    """One plain sentence: does a simple schedule beat every meta-optimizer on mean val loss, by how much."""
    simple, meta = summary[best_simple], summary[best_meta]
    gap = abs(simple["val_loss_mean"] - meta["val_loss_mean"])
    noise = max(simple["val_loss_std"], meta["val_loss_std"])
    size = f"the gap {gap:.4f} is {'within' if gap <= noise else 'beyond'} one seed std ({noise:.4f})"
    if simple["val_loss_mean"] < meta["val_loss_mean"]:
        return (f"A simple schedule beats every meta-optimizer: {best_simple} "
                f"({simple['val_loss_mean']:.4f}) has a lower mean val loss than the best meta-optimizer, "
                f"{best_meta} ({meta['val_loss_mean']:.4f}); {size}.")
    return (f"The best meta-optimizer, {best_meta} ({meta['val_loss_mean']:.4f}), has a lower mean val loss "
            f"than the best simple schedule, {best_simple} ({simple['val_loss_mean']:.4f}); {size}.")


def ratio_interval(values: list[float], baseline: list[float], level: float = 0.90) -> dict:
    """Per-seed ratios values / baseline (paired by seed): mean and a ``level`` t-interval; ratio of means."""
    from scipy import stats

    ratios = [v / b for v, b in zip(values, baseline, strict=True)]
    mean = statistics.fmean(ratios)
    half = 0.0
    if len(ratios) > 1:
        half = stats.t.ppf(0.5 + level / 2, len(ratios) - 1) * statistics.stdev(ratios) / math.sqrt(len(ratios))
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": len(ratios), "level": level,
            "ratio_of_means": statistics.fmean(values) / statistics.fmean(baseline)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny run for development (2 seeds, 120 steps)")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds 0..N-1 (init and batches)")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per run, same for everyone")
    parser.add_argument("--episodes", type=int, default=48, help="RL policy training episodes (seeds 1000+)")
    parser.add_argument("--group-size", type=int, default=4, help="RL episodes per development seed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="starting AdamW LR for every contender")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--decide-every", type=int, default=10, help="steps between meta decisions")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this size)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON, markdown and PNG")
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; flags given explicitly still win
        for key, value in {"seeds": 2, "steps": 120, "episodes": 4, "group_size": 2}.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.group_size < 2:
        parser.error(f"--group-size must be >= 2 but got {args.group_size}")
    for key in ("seeds", "steps", "episodes", "batch_size", "decide_every", "threads"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1 but got {getattr(args, key)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    console = Console(width=140)
    setup = Setup(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                  decide_every=args.decide_every, num_experts=8, hidden=32, top_k=2, data=digits_split())
    seeds = list(range(args.seeds))
    factories = meta_factories()
    contenders = [*SIMPLE, *factories, "rl_trained", "rl_trained_greedy", "rl_random"]
    kinds = {**dict.fromkeys(SIMPLE, "simple schedule"), **dict.fromkeys(META, "meta-optimizer"),
             "rl_random": "control (uniform random policy)"}
    runs: dict[str, list[RunResult]] = {name: [] for name in contenders}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("RL policy training", total=args.episodes + len(seeds) * len(contenders))
        policy, rl_cost = train_rl_policy(setup, args.episodes, 1000, args.group_size,
                                          lambda: progress.advance(task))
        policy.learning = False  # evaluated frozen; rl_trained samples its actions like the random control
        trained_state = policy.state_dict()
        for seed in seeds:  # contenders interleaved per seed, so machine noise hits all of them alike
            for name in contenders:
                progress.update(task, description=f"seed {seed}: {name}")
                meta = None
                if name in factories:
                    meta = factories[name]()
                elif name.startswith("rl_trained"):
                    meta = rl_meta(seed=1000, max_lr=setup.lr, group_size=args.group_size)
                    meta.load_state_dict(trained_state)  # frozen: learning stays False
                    meta.reset()
                    meta.greedy = name == "rl_trained_greedy"  # the policy's most likely action
                    meta.generator.manual_seed(seed)
                elif name == "rl_random":
                    meta = uniform_policy(rl_meta(seed=1000, max_lr=setup.lr, group_size=args.group_size))
                    meta.generator.manual_seed(seed)
                runs[name].append(train_run(setup, seed, name, meta))
                progress.advance(task)

    summary = summarize(runs)
    table_md = markdown_table(summary, kinds)
    best_simple = min(SIMPLE, key=lambda n: summary[n]["val_loss_mean"])
    best_meta = min(META, key=lambda n: summary[n]["val_loss_mean"])
    simple_wins = summary[best_simple]["val_loss_mean"] < summary[best_meta]["val_loss_mean"]
    trained, random_ = summary["rl_trained"], summary["rl_random"]
    rl_holds = trained["val_loss_mean"] < random_["val_loss_mean"]
    rl_vs_simple = {name: ratio_interval(summary[name]["val_loss"], summary[best_simple]["val_loss"])
                    for name in ("rl_trained", "rl_trained_greedy", "rl_random")}
    targets = {"trained RL policy beats the random policy (mean val loss)": "holds" if rl_holds
               else "falls short"}
    for name in ("rl_trained", "rl_trained_greedy"):
        r = rl_vs_simple[name]
        diverged = sum(not math.isfinite(v) or v > DIVERGED_LOSS for v in summary[name]["val_loss"])
        targets[f"{name}: mean val loss within 5% of the best simple schedule ({best_simple}), no seed diverging"] = (
            "holds" if r["ratio_of_means"] <= 1.05 and diverged == 0 else "falls short")
        r["diverged_seeds"] = diverged
    verdict = simple_vs_meta_verdict(summary, best_simple, best_meta)
    rl_line = (f"RL policy training cost: {rl_cost['episodes']} episodes ({rl_cost['group_size']} per development "
               f"seed, seeds 1000+), {rl_cost['steps']} training steps, {rl_cost['policy_updates']} policy updates, "
               f"{rl_cost['wall_s']:.1f} s wall; one evaluation run costs {setup.steps} steps, "
               f"{trained['wall_s_mean']:.1f} s.")
    ratio_lines = "\n".join(
        f"- {name} / {best_simple}: ratio of mean val losses {r['ratio_of_means']:.3f}; per-seed ratio mean "
        f"{r['mean']:.3f}, 90% t-interval [{r['low']:.3f}, {r['high']:.3f}] over {r['seeds']} evaluation seeds "
        f"({'no significant difference' if r['low'] <= 1 <= r['high'] else 'significant'}); "
        f"diverged seeds: {r.get('diverged_seeds', '-')}" for name, r in rl_vs_simple.items())
    root = Path(__file__).resolve().parent.parent  # paths relative to the repository: no machine's paths in results
    config = {k: (str(v.resolve().relative_to(root)) if isinstance(v, Path) and v.resolve().is_relative_to(root)
                  else str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(num_experts=setup.num_experts, hidden=setup.hidden, top_k=setup.top_k,
                  train_size=len(setup.data[0][1]), val_size=len(setup.data[1][1]), torch=torch.__version__)
    report = {"config": config, "seeds": seeds, "summary": summary, "rl_training_cost": rl_cost,
              "rl_vs_best_simple": {"best_simple": best_simple, **rl_vs_simple},
              "targets": targets, "simple_schedule_beats_every_meta_optimizer": simple_wins,
              "verdict": verdict, "lr_trace_seed0": {n: r[0].lr_trace for n, r in runs.items()},
              "gate_lr_trace_seed0": {n: r[0].gate_lr_trace for n, r in runs.items()}}

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "meta_optimizers.json").write_text(json.dumps(report, indent=1))
    header = (f"ExpertGraph (E={setup.num_experts}, top-{setup.top_k}, hidden {setup.hidden}) on digits, "
              f"{args.steps} AdamW steps, batch {args.batch_size}, start LR {args.lr}, seeds {seeds}.\n\n")
    target_lines = "\n".join(f"- {k}: **{v}**" for k, v in targets.items())
    md = f"{header}{table_md}\n\n{rl_line}\n\n{ratio_lines}\n\n{verdict}\n\n{target_lines}\n"
    (args.out / "meta_optimizers.md").write_text(md)
    if not args.quick and args.out == RESULTS:
        write_doc_block(DOC, md, "meta_optimizers")
    plot_lr(runs, args.out / "meta_optimizers_lr.png", seeds[0])

    table = Table(title="Meta-optimizers on digits (sorted by mean val loss)")
    for column in ("contender", "kind", "val loss", "val acc", "wall s/run"):
        table.add_column(column)
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["val_loss_mean"]):
        table.add_row(name, kinds[name], f"{s['val_loss_mean']:.4f} ± {s['val_loss_std']:.4f}",
                      f"{100 * s['val_accuracy_mean']:.2f}% ± {100 * s['val_accuracy_std']:.2f}",
                      f"{s['wall_s_mean']:.2f}")
    console.print(table)
    console.print(rl_line)
    console.print(verdict)
    console.print(ratio_lines)
    for key, value in targets.items():
        console.print(f"target: {key}: {value}")
    console.print(f"wrote {args.out / 'meta_optimizers.json'}, .md and meta_optimizers_lr.png")
    return report


if __name__ == "__main__":
    main()
