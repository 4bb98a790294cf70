"""The contenders of bench/at_horizon.py and the training they do: each chooses a configuration for the
workload's horizon H within a budget of training examples, and ``evaluate`` trains a choice at H.

H is in steps at the workload's default batch (``horizon_steps``); a configuration at batch B trains
H x default batch / B steps of it (``at_horizon``), so every contender and every evaluation is at equal
examples. ``ExampleCounter`` counts what a task really trained. ``outcome(task, workload)`` runs one task of
the benchmark; this module (with the workloads) is what decides a cached task's outcome, so its source is
part of every cache key.

    >>> horizon_steps(load_workload("wine-small")[0])
    500
"""

from __future__ import annotations

import functools
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling modules, also in spawned workers

from held_out_workloads import HELD_OUT_WORKLOADS  # noqa: E402
from public_workloads import PUBLIC_WORKLOADS  # noqa: E402

SEARCH_SEED = 0  # every search trial and the LR range test select on this seed
# the space every searcher shares (the agent's TrainingConfig says the same)
LR_RANGE = (1e-4, 0.3)
WEIGHT_DECAY_RANGE = (0.0, 0.1)
BATCH_SIZES = [16, 32, 64, 128]
OPTIMIZERS = ["adamw", "sgd"]
SCHEDULES = ["constant", "cosine", "one_cycle"]
SCHEDULEFREE = {"optimizer": "schedulefree", "lr": 0.0025, "weight_decay": 0.0, "schedule": "constant",
                "warmup_steps": 0}  # AdamWScheduleFree's own defaults
AGENTS = {"agent": "planner", "agent-random": "random", "agent-none": "none"}  # contender -> proposals
VALIDATIONS = 10  # a search trial validates every steps // 10 (TrialConfig's default)


# ---- workloads and their horizon ---------------------------------------------------------------------


_WORKLOADS: dict = {}


def load_workload(name: str):
    """(workload, fingerprint): a built-in, a public or a held-out workload, built once per process; the
    fingerprint is taken before the example counter wraps its loss."""
    if name not in _WORKLOADS:
        if name in PUBLIC_WORKLOADS:
            workload = PUBLIC_WORKLOADS[name]()
        elif name in HELD_OUT_WORKLOADS:
            workload = HELD_OUT_WORKLOADS[name]()
        else:
            from trainopt.tools.workloads import get_workload

            workload = get_workload(name)
        _WORKLOADS[name] = (workload, workload.fingerprint())
    return _WORKLOADS[name]


def horizon_steps(workload) -> int:
    """H in steps at the default batch: the workload's ``default_config["steps"]`` (300 when it names none)."""
    return int(workload.default_config.get("steps", 300))


def default_batch(workload) -> int:
    return min(int(workload.default_config.get("batch_size", 64)), workload.num_train)


def default_config(workload, horizon: int) -> dict:
    """The default configuration as a TrialConfig of H steps on seed 0 (what the agent calls the baseline)."""
    from trainopt.tools.trial_config import TrialConfig

    fields = {"optimizer": "adamw", "lr": 1e-3, "schedule": "constant",
              **{k: v for k, v in workload.default_config.items() if k != "epochs"}}
    fields.update(steps=horizon, seed=SEARCH_SEED, warmup_steps=0, batch_size=default_batch(workload))
    return TrialConfig(**fields).model_dump(mode="json")


def batch_sizes(workload) -> list[int]:
    return [b for b in BATCH_SIZES if b <= workload.num_train]


def at_horizon(config: dict, horizon: int, batch: int, seed: int) -> dict:
    """``config`` trained on H examples (``horizon`` steps at ``batch``) at its own batch, validated once."""
    from trainopt.agent.horizon import at_examples
    from trainopt.tools.trial_config import TrialConfig

    return at_examples(TrialConfig(**config), horizon, batch, seed=seed, evals=1).model_dump(mode="json")


# ---- counting training examples -----------------------------------------------------------------------


class ExampleCounter:
    """Training examples that went into an optimizer step: a training forward pass of the workload's loss
    notes its batch's examples, the next optimizer step (a global post-step hook) adds them. The LR tool's
    schedule tracer (an optimizer stepped with no forward pass) and validation (eval mode) add nothing."""

    def __init__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.examples = self.steps = self._pending = 0
        self.active = False
        register_optimizer_step_post_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs) -> None:
        if self.active and self._pending:
            self.examples += self._pending
            self.steps += 1
            self._pending = 0

    def wrap(self, workload) -> None:
        """Count through ``workload.loss_fn`` (once per workload object)."""
        if getattr(workload.loss_fn, "_counted", False):
            return
        inner = workload.loss_fn

        def counted(model, batch):
            if self.active and model.training:
                self._pending = batch_examples(batch)
            return inner(model, batch)

        counted._counted = True
        workload.loss_fn = counted

    @contextmanager
    def counting(self):
        """Count inside the block; yields a dict filled with examples, optimizer steps and wall seconds."""
        before, started, out = (self.examples, self.steps), time.perf_counter(), {}
        self.active, self._pending = True, 0
        try:
            yield out
        finally:
            self.active = False
            out.update(examples=self.examples - before[0], optimizer_steps=self.steps - before[1],
                       wall_s=round(time.perf_counter() - started, 2))


def batch_examples(batch) -> int:
    """Examples in a batch: the length of its first tensor."""
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return len(first)


@functools.cache
def counter() -> ExampleCounter:
    return ExampleCounter()


# ---- contenders: each returns {"config": TrialConfig dict, ...} --------------------------------------------


def default_params(workload, horizon: int) -> dict:
    base = default_config(workload, horizon)
    return {k: base[k] for k in ("lr", "weight_decay", "batch_size", "optimizer", "schedule")}


def choose_random(workload, horizon: int, trials: int) -> dict:
    """Optuna RandomSampler, the default enqueued first; ``trials`` runs of H examples each, at their own
    batch, validated once at the end; the lowest final validation loss wins."""
    import optuna

    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    batch = default_batch(workload)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEARCH_SEED))
    study.enqueue_trial(default_params(workload, horizon))
    best, best_loss = None, math.inf
    for _ in range(trials):
        trial = study.ask()
        size = trial.suggest_categorical("batch_size", batch_sizes(workload))
        steps = max(1, round(horizon * batch / size))
        config = TrialConfig(
            lr=trial.suggest_float("lr", *LR_RANGE, log=True),
            weight_decay=trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE),
            batch_size=size, optimizer=trial.suggest_categorical("optimizer", OPTIMIZERS),
            schedule=trial.suggest_categorical("schedule", SCHEDULES),
            steps=steps, seed=SEARCH_SEED, eval_every=steps,
        )
        result = run_trial(workload, config, device="cpu")
        study.tell(trial, result.score)
        if result.score < best_loss:
            best, best_loss = result.config, result.score
    chosen = best.model_dump(mode="json") if best is not None else default_config(workload, horizon)
    return {"config": chosen, "trials": len(study.trials), "best_search_loss": best_loss}


def hpo_input(workload, horizon: int, budget_steps: int, pruner: str) -> dict:
    """The HyperparameterSuggester's arguments shared by both TPE contenders (steps are baseline steps)."""
    return dict(lr_range=LR_RANGE, weight_decay_range=WEIGHT_DECAY_RANGE, batch_sizes=batch_sizes(workload),
                optimizers=OPTIMIZERS, meta_optimizers=[None], schedules=SCHEDULES, max_steps=horizon,
                baseline_batch=default_batch(workload), pruner=pruner, convergence_pruning=False,
                seed=SEARCH_SEED, study_name=f"bench-{pruner}-{workload.name}-{budget_steps}-{horizon}")


def choose_tpe(workload, horizon: int, trials: int) -> dict:
    """Seeded TPE: the default enqueued first, ``trials`` full runs of H (pruner "none")."""
    from trainopt.tools import get_tool

    hpo = get_tool("hyperparameter_suggester")(workload, device="cpu")
    out = hpo(**hpo_input(workload, horizon, trials * horizon, "none"), n_trials=trials,
              candidates=[default_params(workload, horizon)])
    return {"config": out.best_config, "trials": len(out.trials), "best_search_loss": out.best_value}


def choose_tpe_hyperband(workload, horizon: int, budget_steps: int) -> dict:
    """TPE with Optuna's HyperbandPruner (max resource H) until ``budget_steps`` are spent; the default
    enqueued first when one run of H fits. Without a finished trial (a budget under H), the best at the furthest
    rung two trials shared (``shared_rung_pick``)."""
    import optuna

    from trainopt.errors import HyperparameterError
    from trainopt.tools import get_tool

    fits = budget_steps >= horizon
    with tempfile.TemporaryDirectory() as scratch:
        storage = f"sqlite:///{Path(scratch) / 'hpo.db'}"
        args = hpo_input(workload, horizon, budget_steps, "hyperband")
        hpo = get_tool("hyperparameter_suggester")(workload, device="cpu")
        try:
            out = hpo(**args, n_trials=10 * math.ceil(budget_steps / horizon * 9), total_steps=budget_steps,
                      candidates=[default_params(workload, horizon)] if fits else [], storage=storage)
        except HyperparameterError:  # no trial reached H
            study = optuna.load_study(study_name=args["study_name"], storage=storage)
            config, loss, trials = shared_rung_pick(study), None, len(study.trials)
            return {"config": config, "trials": trials, "best_search_loss": loss, "finished_h": False,
                    "note": "no trial reached H: the best at the furthest rung two trials shared"}
    pruned = sum(t.state == "PRUNED" for t in out.trials)
    return {"config": out.best_config, "trials": len(out.trials), "pruned_trials": pruned,
            "best_search_loss": out.best_value, "finished_h": True}


def shared_rung_pick(study) -> dict:
    """The configuration with the lowest validation loss at the furthest validation point that two or more
    trials reached (every trial validates at about every H/10 examples: its k-th validation is at about k H/10
    whatever its batch), as Hyperband compares trials at a rung; the only trial's, when there is one."""
    curves = [[t.intermediate_values[step] for step in sorted(t.intermediate_values)]
              for t in study.trials if t.intermediate_values and "config" in t.user_attrs]
    configs = [t.user_attrs["config"] for t in study.trials if t.intermediate_values and "config" in t.user_attrs]
    if not curves:
        raise RuntimeError(f"study {study.study_name!r}: no trial reported a validation loss")
    lengths = sorted((len(c) for c in curves), reverse=True)
    k = lengths[1] if len(lengths) > 1 else lengths[0]  # validation points at least two trials reached
    best = min((i for i, c in enumerate(curves) if len(c) >= k), key=lambda i: curves[i][k - 1])
    return configs[best]


def choose_lr_finder(workload, horizon: int) -> dict:
    """The default configuration at the LR range test's suggestion (the LR tool's default rule), seed 0."""
    from trainopt.tools.lr_range import lr_range_test
    from trainopt.tools.lr_scheduler import DEFAULT_RULE
    from trainopt.tools.lr_suggest import suggest_lr

    base = default_config(workload, horizon)
    sweep = lr_range_test(workload, optimizer=base["optimizer"], batch_size=base["batch_size"],
                          weight_decay=base["weight_decay"], seed=SEARCH_SEED, device="cpu")
    return {"config": {**base, "lr": float(f"{suggest_lr(sweep, DEFAULT_RULE):.4g}")}, "rule": DEFAULT_RULE}


def choose_agent(workload, horizon: int, budget_steps: int, proposals: str) -> dict:
    """The agent, offline rules, ``train_steps`` = H and ``step_budget`` = the budget, a fresh trial store."""
    from trainopt.agent import OptimizationRequest, TrainingConfig, TrainingOptimizationAgent

    space = TrainingConfig(batch_size_range=(min(BATCH_SIZES), min(max(BATCH_SIZES), workload.num_train)),
                           learning_rate_range=LR_RANGE, optimizer_options=OPTIMIZERS)
    request = OptimizationRequest(workload=workload, train_steps=horizon, proposals=proposals,
                                  constraints={"step_budget": budget_steps})
    with tempfile.TemporaryDirectory() as scratch:
        agent = TrainingOptimizationAgent(space, lm="offline", storage=f"sqlite:///{Path(scratch) / 'trials.db'}",
                                          out_dir=scratch, device="cpu")
        response = agent.optimize_training(request)
        notes = [note.replace(scratch, "<out>") for note in response.notes]
    gain = response.gain
    return {
        "config": response.recommended.model_dump(mode="json"),
        "challenger": None if response.challenger is None else response.challenger.model_dump(mode="json"),
        "baseline": response.baseline.model_dump(mode="json"),
        "gain": gain.model_dump(mode="json"),
        "claim_text": gain.claim_text(),
        "horizon": None if response.horizon is None else response.horizon.model_dump(mode="json"),
        "steps_spent": response.steps_spent,
        "selection_seeds": list(request.seeds),
        "notes": notes,
    }


# ---- evaluation -----------------------------------------------------------------------------------------


def evaluate(workload, config: dict, horizon: int, seeds: list[int]) -> dict:
    """``config`` trained at H on every seed: the final test loss (the validation loss for a workload with no
    test split), inf when diverged, and the test metric."""
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    batch = default_batch(workload)
    runs = [run_trial(workload, TrialConfig(**at_horizon(config, horizon, batch, seed)), device="cpu")
            for seed in seeds]
    return {"losses": [score(workload, r) for r in runs],
            "metrics": [r.final_test_metric if workload.test_data is not None else r.final_val_metric
                        for r in runs],
            "diverged": [r.diverged for r in runs], "seeds": seeds}


def score(workload, result) -> float:
    """The final test loss; the validation loss for a workload without a test split; inf when diverged."""
    loss = result.final_test_loss if workload.test_data is not None else result.final_val_loss
    return math.inf if loss is None or result.diverged else loss


# ---- one task -----------------------------------------------------------------------------------------------


def outcome(task: dict, workload) -> dict:
    """What one task of the benchmark returns: an evaluation, or a contender's choice at its budget."""
    contender, horizon = task["contender"], task["horizon"]
    if task["kind"] == "eval":
        return evaluate(workload, task["config"], horizon, task["seeds"])
    budget_steps = task.get("budget_steps")
    if contender in AGENTS:
        return choose_agent(workload, horizon, budget_steps, AGENTS[contender])
    if contender == "lr-finder":
        return choose_lr_finder(workload, horizon)
    if contender == "random":
        return choose_random(workload, horizon, budget_steps // horizon)
    if contender == "tpe":
        return choose_tpe(workload, horizon, budget_steps // horizon)
    if contender == "tpe-hyperband":
        return choose_tpe_hyperband(workload, horizon, budget_steps)
    raise AssertionError(f"no procedure for contender {contender!r}")
