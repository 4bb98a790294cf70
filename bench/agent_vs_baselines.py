"""trainopt's agent against seeded baselines, under one probe budget counted in training steps.

For each workload, in one process:

1. agent      TrainingOptimizationAgent with the offline planner, given a step budget
              (``constraints.step_budget``) and no time budget: the step plan is the same on every
              machine and no wall-clock guard skips or shortens anything. Everything it trains counts: the
              calibration trials, the probes (LR range test, schedule checks, batch-size probe,
              gradient analysis), every candidate, and its own confirm runs.
2. default    the workload's default configuration (AdamW 1e-3, constant LR, batch 64; 32 for
              char-gpt); no search.
3. lr-finder  the LR range test (tools.lr_range, default sweep) read with the LR tool's default
              rule, applied to the default configuration.
4. random     Optuna RandomSampler over lr (log), weight decay, batch, optimizer and schedule; the
              default configuration is enqueued first (a seeded baseline, DESIGN.md pitfalls).
5. tpe        HyperparameterSuggester: Optuna TPE + successive halving, warm-started with the default
              configuration (its convergence-forecast pruner is off: standard Optuna TPE + pruning,
              and the forecast's bootstrap fits cost more wall time than the trials on these models).

random and tpe get exactly the optimizer steps the agent spent (S), and trials as long as the
agent's candidate trials. Steps are *counted*, not planned: a wrapper on the workload's loss
counts training forward passes, and a global optimizer-step hook counts every optimizer step that
follows one while a contender searches (pruned and truncated trials included). Each contender's winner is
then trained for the same final budget (the agent's confirm length F) on the same seeds; the table
reports mean final validation loss and metric, the ratio to the best contender, and wall time.

Search outcomes are cached in bench/.cache/agent_vs_baselines (gitignored) with their counted
steps and wall times, and final runs live in a trial store there, so a rerun is fast.

    python3 bench/agent_vs_baselines.py            # full run: 4 workloads, 3 seeds
    python3 bench/agent_vs_baselines.py --quick    # digits-mlp, 2 seeds, small budgets
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from trainopt.agent import OptimizationRequest, TrainingConfig, TrainingOptimizationAgent
from trainopt.tools import get_tool
from trainopt.tools.lr_range import lr_range_test
from trainopt.tools.lr_scheduler import DEFAULT_RULE
from trainopt.tools.lr_suggest import suggest_lr
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import get_workload

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).parent / ".cache" / "agent_vs_baselines"
# The search space every searcher shares (the agent's TrainingConfig says the same).
LR_RANGE = (1e-4, 0.3)
WEIGHT_DECAY_RANGE = (0.0, 0.1)
BATCH_SIZES = [16, 32, 64, 128]
OPTIMIZERS = ["adamw", "sgd"]
SCHEDULES = ["constant", "cosine", "one_cycle"]
# planned agent steps per workload (the agent's own split: ~30% probes, ~35% candidates, ~35% confirm)
FULL = {"digits-mlp": 1500, "digits-cnn": 1000, "moe-digits": 1200, "char-gpt": 400}
QUICK = {"digits-mlp": 700}
CONTENDERS = ["default", "lr-finder", "random", "tpe", "agent"]


# ---- counting what is trained ---------------------------------------------------------------------


class StepCounter:
    """Optimizer steps (a global post-step hook) and training forward passes (the workload's loss)."""

    def __init__(self):
        self.steps = 0
        self.forwards = 0
        self._forwards_at_step = 0
        self.active = False
        register_optimizer_step_post_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs) -> None:
        # a training step is an optimizer step after a training forward pass; this leaves out the LR
        # tool's schedule tracer (an SGD over one scalar stepped through the schedule, nothing trained)
        if self.active and self.forwards > self._forwards_at_step:
            self.steps += 1
            self._forwards_at_step = self.forwards

    def wrap(self, workload) -> None:
        if getattr(workload.loss_fn, "_counted", False):
            return
        inner = workload.loss_fn

        def counted(model, batch):
            if self.active and model.training:
                self.forwards += 1
            return inner(model, batch)

        counted._counted = True
        workload.loss_fn = counted

    @contextmanager
    def counting(self):
        """Count inside the block; yields a dict filled with steps, forwards and wall seconds."""
        before, started, out = (self.steps, self.forwards), time.perf_counter(), {}
        self.active = True
        try:
            yield out
        finally:
            self.active = False
            out.update(
                optimizer_steps=self.steps - before[0],
                forward_passes=self.forwards - before[1],
                wall_s=round(time.perf_counter() - started, 2),
            )


# ---- contenders -------------------------------------------------------------------------------------


def default_config(workload) -> TrialConfig:
    """What the agent calls the baseline: AdamW 1e-3, constant LR, the workload's default batch."""
    fields = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "schedule": "constant", **workload.default_config}
    return TrialConfig(**{**fields, "warmup_steps": 0, "seed": 0})


def search_params(config: TrialConfig) -> dict:
    keys = ("lr", "weight_decay", "batch_size", "optimizer", "schedule")
    return {k: getattr(config, k) for k in keys}


def run_agent(name: str, planned_steps: int, tag: str) -> dict:
    """The agent with the offline planner and a step budget of ``planned_steps`` (no time budget).

    Its trial store is a fresh file: trials read back from an earlier run would cost no counted steps
    and shrink the budget the searchers get."""
    path = (CACHE / "agent-out" / tag / name / "trials.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    storage = f"sqlite:///{path}"
    space = TrainingConfig(batch_size_range=(min(BATCH_SIZES), max(BATCH_SIZES)), learning_rate_range=LR_RANGE,
                           optimizer_options=OPTIMIZERS)
    agent = TrainingOptimizationAgent(space, lm="offline", storage=storage, out_dir=path.parent,
                                      device="cpu")
    response = agent.optimize_training(OptimizationRequest(workload=name, seeds=[0],
                                                           constraints={"step_budget": planned_steps}))
    budget = response.evidence["budget"]
    return {
        "winner": response.recommended.model_dump(mode="json"),
        "final_steps": response.gain.steps,
        "trial_steps": budget["candidate_steps"],
        "budget": budget,
        "agent_gain": response.gain.relative_loss_reduction,
        "notes": response.notes,
        "lm": response.lm.model_dump(),
        "claimed_steps": _agent_claimed_steps(response),
    }


def _agent_claimed_steps(response) -> int:
    """Steps the agent's evidence accounts for (trials + LR sweep + schedule checks + gradient run)."""
    ev = response.evidence
    total = sum(t["steps_run"] for t in ev["trials"])
    lr = ev["tools"].get("learning_rate_scheduler")
    if lr:
        total += len(lr["sweep"]["lrs"]) + sum(c["steps"] for c in lr["checks"])
    grad = ev["tools"].get("gradient_analyzer")
    if grad:
        total += grad["steps_run"]
    return total


def run_lr_finder(name: str) -> dict:
    workload = get_workload(name)
    sweep = lr_range_test(workload, device="cpu")
    lr = suggest_lr(sweep, DEFAULT_RULE)
    winner = default_config(workload).model_copy(update={"lr": float(f"{lr:.4g}")})
    return {"winner": winner.model_dump(mode="json"), "claimed_steps": len(sweep.lrs), "rule": DEFAULT_RULE}


def run_random(name: str, budget: int, trial_steps: int) -> dict:
    """Optuna RandomSampler, default enqueued first; trials until ``budget`` optimizer steps are spent."""
    workload = get_workload(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(search_params(default_config(workload)))
    spent, best, trials = 0, None, 0
    while spent < budget:
        trial = study.ask()
        config = TrialConfig(
            lr=trial.suggest_float("lr", *LR_RANGE, log=True),
            weight_decay=trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE),
            batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
            optimizer=trial.suggest_categorical("optimizer", OPTIMIZERS),
            schedule=trial.suggest_categorical("schedule", SCHEDULES),
            steps=trial_steps, seed=0,
        )
        left = budget - spent
        result = run_trial(workload, config, device="cpu", report=lambda step, _loss, left=left: step >= left)
        spent += result.steps_run
        trials += 1
        if result.pruned:  # cut by the budget: not a finished evaluation
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, result.score if math.isfinite(result.score) else float("inf"))
        if math.isfinite(result.score) and (best is None or result.score < best.score):
            best = result
    return {"winner": best.config.model_dump(mode="json"), "claimed_steps": spent, "trials": trials,
            "best_short_loss": best.score}


def tpe_trials(budget: int, trial_steps: int) -> int:
    """Trials for the suggester: 4x what the budget buys unpruned, so the step budget is what stops it.

    The suggester's TPE samples at random for its first n_trials / 4 trials (its startup), which is
    then about the number of full-length trials the budget affords.
    """
    return max(8, 4 * budget // trial_steps)


def run_tpe(name: str, budget: int, trial_steps: int) -> dict:
    workload = get_workload(name)
    hpo = get_tool("hyperparameter_suggester")(workload, device="cpu")
    out = hpo(
        lr_range=LR_RANGE, weight_decay_range=WEIGHT_DECAY_RANGE, batch_sizes=BATCH_SIZES, optimizers=OPTIMIZERS,
        meta_optimizers=[None], schedules=SCHEDULES, n_trials=tpe_trials(budget, trial_steps),
        total_steps=budget, max_steps=trial_steps,
        pruner="successive_halving", convergence_pruning=False,
        candidates=[search_params(default_config(workload))], seed=0,
        study_name=f"bench-tpe-{name}-{budget}-{trial_steps}",
    )
    pruned = sum(t.state == "PRUNED" for t in out.trials)
    return {"winner": out.best_config, "claimed_steps": out.steps_spent, "trials": len(out.trials),
            "pruned_trials": pruned, "best_short_loss": out.best_value}


# ---- final training ---------------------------------------------------------------------------------


def final_config(winner: dict, steps: int, seed: int) -> TrialConfig:
    """The winner at the final length: warmup scaled with it, validation every steps // 25."""
    config = TrialConfig(**winner)
    warmup = min(steps - 1, round(config.warmup_steps / config.steps * steps))
    return config.model_copy(update={"steps": steps, "seed": seed, "warmup_steps": warmup,
                                     "eval_every": max(1, steps // 25)})


def train_final(store: TrialStore, name: str, winner: dict, steps: int, seeds: list[int]) -> dict:
    started = time.perf_counter()
    runs = [store.run(name, final_config(winner, steps, s), device="cpu") for s in seeds]
    losses = [r.final_val_loss for r in runs]
    metrics = [r.final_val_metric for r in runs]
    return {
        "val_losses": losses,
        "val_loss": statistics.fmean(losses),
        "val_loss_sd": statistics.stdev(losses) if len(losses) > 1 else 0.0,
        "val_metric": statistics.fmean(metrics) if all(m is not None for m in metrics) else None,
        "diverged": sum(r.diverged for r in runs),
        "final_wall_s": round(time.perf_counter() - started, 2),
        "final_from_store": sum(r.from_store for r in runs),
    }


# ---- one workload -----------------------------------------------------------------------------------


def cached(path: Path, compute) -> dict:
    """The search outcome stored at ``path`` (with its counted steps), or computed and stored."""
    if path.is_file():
        return {**json.loads(path.read_text()), "from_cache": True}
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return {**value, "from_cache": False}


def measure(name: str, planned: int, seeds: list[int], counter: StepCounter, tag: str) -> dict:
    workload = get_workload(name)
    counter.wrap(workload)
    CACHE.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(CACHE / f'trials-{tag}.db').resolve()}"
    store = TrialStore(storage)
    key = CACHE / tag / name

    def counted(run):
        def compute():
            with counter.counting() as count:
                outcome = run()
            return {**outcome, **count}
        return compute

    print(f"[{name}] agent ({planned} planned steps)", flush=True)
    agent = cached(key / "agent.json", counted(lambda: run_agent(name, planned, tag)))
    budget, trial_steps, final_steps = agent["optimizer_steps"], agent["trial_steps"], agent["final_steps"]
    print(f"[{name}] agent spent {budget} steps; final budget {final_steps}; trials of {trial_steps}", flush=True)
    outcomes = {"agent": agent}
    outcomes["default"] = {"winner": default_config(workload).model_dump(mode="json"), "optimizer_steps": 0,
                           "forward_passes": 0, "claimed_steps": 0, "wall_s": 0.0}
    print(f"[{name}] lr-finder", flush=True)
    outcomes["lr-finder"] = cached(key / "lr-finder.json", counted(lambda: run_lr_finder(name)))
    print(f"[{name}] random search ({budget} steps)", flush=True)
    outcomes["random"] = cached(key / f"random-{budget}.json", counted(lambda: run_random(name, budget, trial_steps)))
    print(f"[{name}] TPE ({budget} steps)", flush=True)
    outcomes["tpe"] = cached(key / f"tpe-{budget}.json", counted(lambda: run_tpe(name, budget, trial_steps)))
    rows = {}
    for contender in CONTENDERS:
        outcome = outcomes[contender]
        print(f"[{name}] final training: {contender}", flush=True)
        final = train_final(store, name, outcome["winner"], final_steps, seeds)
        rows[contender] = {**outcome, **final, "search_wall_s": outcome["wall_s"]}
    best = min(r["val_loss"] for r in rows.values())
    for row in rows.values():
        row["ratio_to_best"] = row["val_loss"] / best
    return {"workload": name, "final_steps": final_steps, "trial_steps": trial_steps, "budget_steps": budget,
            "seeds": seeds, "contenders": rows}


# ---- report -------------------------------------------------------------------------------------------


def short(winner: dict) -> str:
    text = f"{winner['optimizer']} lr={winner['lr']:.3g} b={winner['batch_size']} {winner['schedule']}"
    if winner.get("weight_decay"):
        text += f" wd={winner['weight_decay']:.2g}"
    if winner.get("grad_clip"):
        text += f" clip={winner['grad_clip']:.3g}"
    return text


def markdown(results: list[dict]) -> str:
    lines = [
        "| workload | contender | search steps (counted) | fwd passes | final val loss (mean ± sd) | metric "
        "| ratio to best | search s | final s | winner |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for res in results:
        for contender in CONTENDERS:
            r = res["contenders"][contender]
            metric = "n/a" if r["val_metric"] is None else f"{r['val_metric']:.4f}"
            lines.append(
                f"| {res['workload']} | {contender} | {r['optimizer_steps']} | {r['forward_passes']} "
                f"| {r['val_loss']:.4f} ± {r['val_loss_sd']:.4f} | {metric} | {r['ratio_to_best']:.3f} "
                f"| {r['search_wall_s']:.1f} | {r['final_wall_s']:.1f} | {short(r['winner'])} |"
            )
    return "\n".join(lines)


def targets(results: list[dict]) -> list[tuple[str, bool, str]]:
    beats_default = [
        (res["workload"], res["contenders"]["agent"]["val_loss"] < res["contenders"]["default"]["val_loss"])
        for res in results
    ]
    vs_tpe = [
        (res["workload"], res["contenders"]["agent"]["val_loss"] / res["contenders"]["tpe"]["val_loss"])
        for res in results
    ]
    matches = sum(ratio <= 1.0 for _, ratio in vs_tpe)
    return [
        ("the agent beats the default configuration on every workload", all(ok for _, ok in beats_default),
         ", ".join(f"{w}: {'yes' if ok else 'no'}" for w, ok in beats_default)),
        ("the agent matches or beats TPE (ratio <= 1.00) on most workloads", matches > len(vs_tpe) / 2,
         f"{matches}/{len(vs_tpe)}: " + ", ".join(f"{w} {r:.3f}" for w, r in vs_tpe)),
    ]


def budget_lines(results: list[dict]) -> list[str]:
    """Counted optimizer steps per contender; random and TPE must match the agent within 5%."""
    lines = []
    for res in results:
        c = res["contenders"]
        agent = c["agent"]["optimizer_steps"]
        equal = all(abs(c[k]["optimizer_steps"] - agent) <= 0.05 * agent for k in ("random", "tpe"))
        lines.append(
            f"{res['workload']}: optimizer steps counted: agent {agent} (its evidence accounts for "
            f"{c['agent']['claimed_steps']}), random {c['random']['optimizer_steps']} "
            f"({c['random']['trials']} trials), tpe {c['tpe']['optimizer_steps']} ({c['tpe']['trials']} trials, "
            f"{c['tpe']['pruned_trials']} pruned), lr-finder {c['lr-finder']['optimizer_steps']}, default 0 -> "
            f"{'equal within 5%' if equal else 'NOT equal'}; final {res['final_steps']} steps x {len(res['seeds'])} "
            f"seeds"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits-mlp, 2 seeds, a small budget")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    parser.add_argument("--workloads", nargs="*", help="a subset of the workloads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = QUICK if args.quick else FULL
    if args.workloads:
        plan = {w: plan[w] for w in args.workloads}
    seeds = [0, 1] if args.quick else [0, 1, 2]
    tag = "quick" if args.quick else "full"
    counter = StepCounter()
    started = time.perf_counter()
    results = [measure(name, planned, seeds, counter, tag) for name, planned in plan.items()]
    wall = time.perf_counter() - started
    table = markdown(results)
    checks = targets(results)
    budgets = budget_lines(results)
    name = "agent_vs_baselines" + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({
        "config": {"seeds": seeds, "threads": args.threads, "lr_range": LR_RANGE,
                   "weight_decay_range": WEIGHT_DECAY_RANGE, "batch_sizes": BATCH_SIZES, "optimizers": OPTIMIZERS,
                   "schedules": SCHEDULES, "planned_agent_steps": plan, "lm": "offline"},
        "results": results,
        "budgets": budgets,
        "targets": [{"target": t, "holds": ok, "detail": d} for t, ok, d in checks],
        "wall_s": round(wall, 1),
    }, indent=2))
    footer = [""] + [f"- {line}" for line in budgets] + [""] + [
        f"- {t}: **{'holds' if ok else 'falls short'}** ({d})" for t, ok, d in checks
    ]
    (RESULTS / f"{name}.md").write_text(table + "\n" + "\n".join(footer) + "\n")
    print(table)
    print("\n".join(footer))
    print(f"wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
