"""trainopt's agent against seeded baselines: every choice scored on evaluation seeds no contender saw.

Each contender chooses one training configuration per workload with the same budget of S training
steps and its own selection seeds; then every chosen configuration is retrained at one evaluation
length L (the agent's confirm length, ``response.gain.steps``) on evaluation seeds disjoint from
every seed any contender used, paired with the workload's default configuration on the same seeds.

Contenders (all on the same S; steps are counted, see StepCounter):
    default        the workload's default configuration (AdamW 1e-3, constant LR, unless the workload says
                   otherwise); no search.
    random         Optuna RandomSampler, the default enqueued first; S // L trials of L steps on seed 0.
    tpe, tpe-4x    the HyperparameterSuggester (Optuna TPESampler + successive halving), the default
                   enqueued first, trials of at most L steps on seed 0, S and 4 S steps.
    lr-finder      the default configuration at the LR the LR range test suggests (the LearningRateScheduler
                   tool's rule, seed 0).
    schedulefree   schedule-free AdamW at its own defaults (lr 0.0025, no warmup, no weight decay).
    agent          TrainingOptimizationAgent, offline planner, ``constraints={"step_budget": S}``; its own
                   selection seeds (request.seeds, [0, 1, 2]) and held-out confirm seeds (1000, ...).
    agent-random   the same with ``proposals="random"`` (uniform draws inside the probed safe ranges),
    agent-none     ... and ``proposals="none"`` (probes, then the seeded search alone).

Seeds: searches use seed 0 (< 100); the agent 0, 1, 2 and 1000+; evaluation 100_000, 100_001, ...
(``--dev``: the development seeds 500, 501, ... for tuning trainopt's own rules, so the evaluation
seeds stay unseen by whoever tunes the planner; 20_000+ served the same purpose for the confirm's
interval). Retired evaluation seeds, each set after its calibration misses led to a rule change, so no
longer unseen: 10_000+ (the run's spread pooled into the confirm's interval), 30_000+ (the log-normal
fresh-seeds interval), and 70_000+, whose agent / TPE misses (cancer-high-lr above 1 on every draw) led to
the finals' LR walk (docs/decisions.md). bench/calibration.py
uses 120_000+ (40_000+ until they chose the log-normal rule, 80_000+ for the run before the walk),
bench/tpe_ratio.py 110_000+ (90_000+ before the walk); 60_000+ went into a diagnosis of cancer-high-lr's
claims.

Figures per workload: mean relative validation-loss reduction against the default, r_i = (b_i - c_i) / b_i
over evaluation seeds i, with a 90% paired t interval (scipy.stats.t); "no significant difference" when
the interval contains zero.

Results are cached in bench/.cache/agent_vs_baselines (gitignored), keyed by the workload's fingerprint,
a hash of the code the contender runs (agent/, tools/, ars/, prompts/ for the agent; tools/ and ars/
for the others) and the contender's settings: a rerun after a planner change reruns the agent only.

    python3 bench/agent_vs_baselines.py --jobs 2                 # full run (8 workloads)
    python3 bench/agent_vs_baselines.py --quick                  # smoke run: 2 workloads, small S, 3 seeds
    python3 bench/agent_vs_baselines.py --jobs 14 --out DIR      # on a bigger machine; results in DIR
    python3 bench/agent_vs_baselines.py --render DIR/agent_vs_baselines.json   # tables + docs page from a run
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import heapq
import itertools
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # public_workloads, also in spawned workers

from public_workloads import PUBLIC_WORKLOADS  # noqa: E402

RESULTS = HERE / "results"
CACHE = HERE / ".cache" / "agent_vs_baselines"
DOCS = ROOT / "docs" / "benchmarks" / "agent_vs_baselines.md"
BENCH_VERSION = 1  # bump when a contender's procedure here changes (part of every cache key)

BUILTIN = ["char-gpt", "digits-cnn", "digits-mlp", "moe-digits"]
# S per workload: training steps each contender may spend choosing (slowest first: they start first)
FULL = {"char-gpt": 500, "digits-cnn": 1500, "waveform-conv1d": 1500, "digits-mlp": 1500, "moe-digits": 1500,
        "diabetes-mlp": 3000, "wine-small": 3000, "cancer-high-lr": 3000}
QUICK = {"digits-mlp": 400, "wine-small": 400}
EVAL_SEED_START, DEV_SEED_START = 100_000, 500
EVAL_SEEDS, QUICK_EVAL_SEEDS = 5, 3
LEVEL = 0.9  # interval level everywhere
SEARCH_SEED = 0  # seed of every search trial (selection seeds of the searches are < 100)
# the search space every searcher shares (the agent's TrainingConfig says the same)
LR_RANGE = (1e-4, 0.3)
WEIGHT_DECAY_RANGE = (0.0, 0.1)
BATCH_SIZES = [16, 32, 64, 128]
OPTIMIZERS = ["adamw", "sgd"]
SCHEDULES = ["constant", "cosine", "one_cycle"]
SCHEDULEFREE = {"optimizer": "schedulefree", "lr": 0.0025, "weight_decay": 0.0, "schedule": "constant",
                "warmup_steps": 0}  # AdamWScheduleFree's own defaults
AGENT_VARIANTS = {"agent": "planner", "agent-random": "random", "agent-none": "none"}
CONTENDERS = ["default", "random", "tpe", "tpe-4x", "lr-finder", "schedulefree", *AGENT_VARIANTS]
SEARCHES = {"random": 1, "tpe": 1, "tpe-4x": 4}  # contender -> multiple of S


# ---- workloads and keys -----------------------------------------------------------------------------


_WORKLOADS: dict = {}


def load_workload(name: str):
    """A built-in by name, or one of bench/public_workloads.py (built once per process)."""
    if name not in _WORKLOADS:
        if name in PUBLIC_WORKLOADS:
            _WORKLOADS[name] = PUBLIC_WORKLOADS[name]()
        else:
            from trainopt.tools.workloads import get_workload

            _WORKLOADS[name] = get_workload(name)
    return _WORKLOADS[name]


def fingerprint(workload) -> str:
    """``Workload.fingerprint()``; on a trainopt without it, a hash of name, defaults, model size and data."""
    if hasattr(workload, "fingerprint"):
        return workload.fingerprint()
    digest = hashlib.sha256(json.dumps([workload.name, workload.default_config], sort_keys=True).encode())
    with torch.random.fork_rng():
        digest.update(str(sum(p.numel() for p in workload.make_model().parameters())).encode())
    for data in (workload.train_data, workload.val_data):
        for tensor in data if isinstance(data, list | tuple) else ():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def code_version(folders: tuple[str, ...]) -> str:
    """A hash of the sources (*.py, *.md) under ``folders`` of the repository: what a contender runs.

    Computed once per process, before the process imports the agent: a worker keys every task with the
    code it has loaded, even when the files change while it runs.
    """
    return _code_version(str(ROOT), folders)


@functools.lru_cache
def _code_version(root: str, folders: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((Path(root) / folder).rglob("*")):
            if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def git_commit() -> str | None:
    """HEAD of the repository, with "+changes" when agent/, tools/ or ars/ differ from it (None outside git)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "agent", "tools", "ars", "prompts"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


AGENT_CODE = ("agent", "tools", "ars", "prompts")
BASELINE_CODE = ("tools", "ars")


def default_config(workload) -> dict:
    """What the agent calls the baseline: AdamW 1e-3, constant LR, the workload's default batch."""
    fields = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "schedule": "constant", **workload.default_config}
    fields.update(warmup_steps=0, seed=0, batch_size=min(fields["batch_size"], workload.num_train))
    fields.pop("steps", None)
    return config_fields(fields)


def config_fields(config: dict) -> dict:
    """A TrialConfig's settings without its length, seed and validation interval (what a contender chose)."""
    from trainopt.tools.trial_config import TrialConfig

    config = dict(config)
    steps = config.setdefault("steps", 1000)
    if "warmup_fraction" in config:
        config["warmup_steps"] = min(steps - 1, round(config.pop("warmup_fraction") * steps))
    full = TrialConfig(**config).model_dump(mode="json")
    warmup_fraction = full["warmup_steps"] / full["steps"]
    for key in ("steps", "seed", "eval_every", "warmup_steps"):
        full.pop(key)
    return {**full, "warmup_fraction": round(warmup_fraction, 6)}


def at_length(config: dict, steps: int, seed: int):
    """The chosen settings as a TrialConfig of ``steps`` steps on ``seed`` (warmup scaled, one validation)."""
    from trainopt.tools.trial_config import TrialConfig

    fields = {k: v for k, v in config.items() if k != "warmup_fraction"}
    warmup = min(steps - 1, round(config["warmup_fraction"] * steps))
    return TrialConfig(**fields, steps=steps, seed=seed, warmup_steps=warmup, eval_every=steps)


def batch_sizes(workload) -> list[int]:
    return [b for b in BATCH_SIZES if b <= workload.num_train]


# ---- counting what is trained -----------------------------------------------------------------------


class StepCounter:
    """Optimizer steps (a global post-step hook) and training forward passes (the workload's loss)."""

    def __init__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.steps = self.forwards = self._forwards_at_step = 0
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
            out.update(optimizer_steps=self.steps - before[0], forward_passes=self.forwards - before[1],
                       wall_s=round(time.perf_counter() - started, 2))


_COUNTER: list[StepCounter] = []


def counter() -> StepCounter:
    if not _COUNTER:
        _COUNTER.append(StepCounter())
    return _COUNTER[0]


# ---- contenders: each returns {"config": chosen settings, ...} ----------------------------------------


def choose_agent(name: str, workload, budget: int, proposals: str, out: Path) -> dict:
    """The agent with the offline planner and ``constraints.step_budget`` (no time budget), a fresh trial store."""
    from trainopt.agent import OptimizationRequest, TrainingConfig, TrainingOptimizationAgent

    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.db").unlink(missing_ok=True)
    space = TrainingConfig(batch_size_range=(min(BATCH_SIZES), min(max(BATCH_SIZES), workload.num_train)),
                           learning_rate_range=LR_RANGE, optimizer_options=OPTIMIZERS)
    agent = TrainingOptimizationAgent(space, lm="offline", storage=f"sqlite:///{(out / 'trials.db').resolve()}",
                                      out_dir=out, device="cpu")
    fields = {"workload": workload, "constraints": {"step_budget": budget}}
    if proposals != "planner":
        fields["proposals"] = proposals
    request = OptimizationRequest(**fields)
    response = agent.optimize_training(request)
    gain = response.gain
    challenger = challenger_config(response)
    return {
        "config": config_fields(response.recommended.model_dump(mode="json")),
        "challenger": None if challenger is None else config_fields(challenger),
        "baseline": config_fields(response.baseline.model_dump(mode="json")),
        "selection_seeds": list(request.seeds),
        "gain": gain.model_dump(mode="json"),
        "eval_steps": gain.steps,
        "budget": response.evidence.get("budget"),
        "notes": response.notes,
    }


def challenger_config(response) -> dict | None:
    """The race winner the response's gain is about (``response.challenger``; on a trainopt without it, the
    recommendation when adopted); None when no candidate reached the confirm runs."""
    challenger = getattr(response, "challenger", None)
    if challenger is not None:
        return challenger.model_dump(mode="json")
    if not hasattr(response, "challenger") and getattr(response.gain, "adopted", True):
        return response.recommended.model_dump(mode="json")
    return None


def choose_lr_finder(workload) -> dict:
    """The default configuration at the LR range test's suggestion (the LR tool's default rule)."""
    from trainopt.tools.lr_range import lr_range_test
    from trainopt.tools.lr_scheduler import DEFAULT_RULE
    from trainopt.tools.lr_suggest import suggest_lr

    base = default_config(workload)
    sweep = lr_range_test(workload, optimizer=base["optimizer"], batch_size=base["batch_size"],
                          weight_decay=base["weight_decay"], seed=SEARCH_SEED, device="cpu")
    lr = float(f"{suggest_lr(sweep, DEFAULT_RULE):.4g}")
    return {"config": {**base, "lr": lr}, "rule": DEFAULT_RULE}


def choose_random(workload, budget: int, trial_steps: int) -> dict:
    """Optuna RandomSampler, default enqueued first; trials of ``trial_steps`` while a whole one fits in ``budget``.

    Each trial validates once, at its end (nothing is pruned), so its cost is its training steps.
    """
    import optuna

    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    base = default_config(workload)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEARCH_SEED))
    study.enqueue_trial({k: base[k] for k in ("lr", "weight_decay", "batch_size", "optimizer", "schedule")})
    best, best_loss = None, math.inf
    for _ in range(max(1, budget // trial_steps)):
        trial = study.ask()
        config = TrialConfig(
            lr=trial.suggest_float("lr", *LR_RANGE, log=True),
            weight_decay=trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE),
            batch_size=trial.suggest_categorical("batch_size", batch_sizes(workload)),
            optimizer=trial.suggest_categorical("optimizer", OPTIMIZERS),
            schedule=trial.suggest_categorical("schedule", SCHEDULES),
            steps=trial_steps, seed=SEARCH_SEED, eval_every=trial_steps,
        )
        result = run_trial(workload, config, device="cpu")
        study.tell(trial, result.score)
        if result.score < best_loss:
            best, best_loss = result.config, result.score
    chosen = best.model_dump(mode="json") if best is not None else {**base, "steps": trial_steps}
    return {"config": config_fields(chosen), "trials": len(study.trials), "best_search_loss": best_loss}


def choose_tpe(workload, budget: int, trial_steps: int) -> dict:
    """The HyperparameterSuggester (TPE + successive halving), default enqueued, ``budget`` steps, trials <= L."""
    from trainopt.tools import get_tool

    base = default_config(workload)
    hpo = get_tool("hyperparameter_suggester")(workload, device="cpu")
    out = hpo(
        lr_range=LR_RANGE, weight_decay_range=WEIGHT_DECAY_RANGE, batch_sizes=batch_sizes(workload),
        optimizers=OPTIMIZERS, meta_optimizers=[None], schedules=SCHEDULES,
        n_trials=max(8, 4 * budget // trial_steps),  # the step budget, not the trial count, stops it
        total_steps=budget, max_steps=trial_steps, pruner="successive_halving", convergence_pruning=False,
        candidates=[{k: base[k] for k in ("lr", "weight_decay", "batch_size", "optimizer", "schedule")}],
        seed=SEARCH_SEED, study_name=f"bench-tpe-{workload.name}-{budget}-{trial_steps}",
    )
    pruned = sum(t.state == "PRUNED" for t in out.trials)
    return {"config": config_fields({**out.best_config, "steps": trial_steps}), "trials": len(out.trials),
            "pruned_trials": pruned, "best_search_loss": out.best_value}


# ---- evaluation and statistics ------------------------------------------------------------------------


def evaluate(workload, config: dict, steps: int, seeds: list[int]) -> dict:
    """Train ``config`` for ``steps`` on every seed: final validation loss (inf when diverged) and metric."""
    from trainopt.tools.trials import run_trial

    runs = [run_trial(workload, at_length(config, steps, seed), device="cpu") for seed in seeds]
    return {"val_losses": [r.final_val_loss for r in runs], "val_metrics": [r.final_val_metric for r in runs],
            "diverged": [r.diverged for r in runs]}


def _seed_losses(job: tuple[str, dict, int, list[int]]) -> list[float]:
    torch.set_num_threads(1)
    workload, config, steps, seeds = job
    return evaluate(load_workload(workload), config, steps, seeds)["val_losses"]


def evaluate_all(wanted: dict, seeds: list[int], jobs: int) -> dict:
    """``evaluate``'s validation losses on ``seeds`` for every (workload, config, steps) of ``wanted`` (key ->
    job), in ``jobs`` worker processes of one torch thread each, under a progress bar: key -> losses."""
    from rich.progress import Progress

    losses = {}
    with Progress() as bar, ProcessPoolExecutor(max_workers=jobs) as pool:
        task = bar.add_task(f"{len(wanted)} configurations x {len(seeds)} seeds", total=len(wanted))
        tasks = [(*job, seeds) for job in wanted.values()]
        for key, values in zip(wanted, pool.map(_seed_losses, tasks), strict=True):
            losses[key] = values
            bar.advance(task)
    return losses


def write_results(out: Path, name: str, result: dict, text: str, page: str | None = None) -> None:
    """``out``/name.json and name.md, each written whole (atomic_write); and, given its text, the docs page
    docs/benchmarks/name.md."""
    from trainopt.agent.record import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{name}.json", json.dumps(result, indent=1) + "\n")
    atomic_write(out / f"{name}.md", text)
    if page is not None:
        atomic_write(DOCS.parent / f"{name}.md", page)


def relative_reduction(baseline: float, loss: float) -> float:
    """(b - c) / b, clipped to [-1, 1]: a diverged run (inf) is -1 against a finite default, +1 the other way."""
    if not math.isfinite(baseline) and not math.isfinite(loss):
        return 0.0
    if not math.isfinite(loss):
        return -1.0
    if not math.isfinite(baseline):
        return 1.0
    return max(-1.0, min(1.0, (baseline - loss) / baseline))


def paired_gain(baseline_losses: list[float], losses: list[float], level: float = LEVEL) -> dict:
    """Mean of r_i = (b_i - c_i) / b_i over paired seeds with the paired t interval mean +- t s / sqrt(n).

    Examples:
        >>> g = paired_gain([1.0, 1.0, 1.0], [0.9, 0.8, 0.85])
        >>> round(g["mean"], 3), g["verdict"]
        (0.15, 'better')
    """
    from scipy import stats

    r = [relative_reduction(b, c) for b, c in zip(baseline_losses, losses, strict=True)]
    mean = statistics.fmean(r)
    sd = statistics.stdev(r) if len(r) > 1 else math.inf
    half = stats.t.ppf((1 + level) / 2, len(r) - 1) * sd / math.sqrt(len(r)) if len(r) > 1 else math.inf
    lo, hi = mean - half, mean + half
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no significant difference"
    return {"mean": mean, "interval": [lo, hi], "per_seed": r, "level": level, "verdict": verdict,
            "wins": sum(x > 0 for x in r), "losses": sum(x < 0 for x in r)}


# ---- tasks (run in worker processes) ------------------------------------------------------------------


def task_code(task: dict) -> str:
    return code_version(AGENT_CODE if task["contender"] in AGENT_VARIANTS else BASELINE_CODE)


def task_key(task: dict, workload) -> str:
    """What decides a task's outcome: its settings, the workload's fingerprint and the code it runs."""
    identity = {**task, "fingerprint": fingerprint(workload), "code": task_code(task), "bench": BENCH_VERSION}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def run_task(task: dict) -> dict:
    """One (workload, contender) choice, or one evaluation; read back from the cache when its key is there."""
    torch.set_num_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workload = load_workload(task["workload"])
    cache = Path(task.pop("cache"))
    key = task_key(task, workload)
    path = cache / task["workload"] / f"{task['kind']}-{task['contender']}-{key}.json"
    if path.is_file():
        return {**json.loads(path.read_text()), "from_cache": True}
    count = counter()
    count.wrap(workload)
    with count.counting() as spent:
        outcome = _compute(task, workload, cache / task["workload"] / f"agent-out-{key}")
    value = {**outcome, **spent, "code": task_code(task)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")  # whole or absent: two runs may share the cache
    partial.write_text(json.dumps(value, indent=1))
    os.replace(partial, path)
    return {**value, "from_cache": False}


def _compute(task: dict, workload, agent_out: Path) -> dict:
    contender, budget = task["contender"], task.get("budget")
    if task["kind"] == "eval":
        return evaluate(workload, task["config"], task["steps"], task["seeds"])
    if contender in AGENT_VARIANTS:
        return choose_agent(task["workload"], workload, budget, AGENT_VARIANTS[contender], agent_out)
    if contender == "lr-finder":
        return choose_lr_finder(workload)
    if contender == "random":
        return choose_random(workload, budget * SEARCHES[contender], task["trial_steps"])
    if contender in ("tpe", "tpe-4x"):
        return choose_tpe(workload, budget * SEARCHES[contender], task["trial_steps"])
    raise AssertionError(f"no procedure for contender {contender!r}")


# ---- the run: choices first, then evaluations as soon as the evaluation length is known -----------------


class InlinePool:
    """``--jobs 1``: tasks run in this process, in submission order (same interface as the process pool)."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def agent_available(variant: str) -> bool:
    """Whether this trainopt's OptimizationRequest offers the variant's ``proposals`` setting."""
    if AGENT_VARIANTS[variant] == "planner":
        return True
    from trainopt.agent import OptimizationRequest

    return "proposals" in OptimizationRequest.model_fields


def run_benchmark(plan: dict[str, int], eval_seeds: list[int], jobs: int, log,
                  contenders: list[str] = CONTENDERS, cache: Path = CACHE) -> dict:
    """``contenders`` on every workload of ``plan`` (name -> S); returns the raw per-workload records."""
    contenders = [c for c in contenders if c not in AGENT_VARIANTS or agent_available(c)]
    pool = InlinePool() if jobs == 1 else ProcessPoolExecutor(jobs, mp_context=get_context("spawn"))
    records = {w: {"budget": s, "choices": {}, "evals": {}, "eval_steps": None, "eval_steps_from": None,
                   "errors": [], "failed": set()} for w, s in plan.items()}
    pending: dict[Future, tuple[str, str, dict]] = {}
    ready: list[tuple[float, int, str, str, dict]] = []  # (-estimated seconds, order, workload, kind, task)
    order = itertools.count()

    def submit(workload: str, kind: str, task: dict) -> None:
        """Queue a task; the longest ones start first (longest processing time first keeps the run short)."""
        task = {"kind": kind, "workload": workload, **task}
        heapq.heappush(ready, (-estimated_seconds(task, records[workload]), next(order), workload, kind, task))
        log.add_task()

    def start_ready() -> None:
        while ready and (len(pending) < jobs or jobs == 1):
            _, _, workload, kind, task = heapq.heappop(ready)
            pending[pool.submit(run_task, {**task, "cache": str(cache)})] = (workload, kind, task)

    def submit_evals(workload: str) -> None:
        """Evaluate what is chosen and not yet submitted: every choice (and the default) at the evaluation
        length, and each agent run's challenger with the default at that run's own confirm length."""
        rec = records[workload]
        for config, steps in wanted_evals(rec):
            ident = eval_ident(config, steps)
            if ident not in rec["evals"]:
                rec["evals"][ident] = None
                submit(workload, "eval", {"contender": "eval", "config": config, "steps": steps, "seeds": eval_seeds})

    for name, budget in plan.items():
        workload = load_workload(name)
        rec = records[name]
        rec["default"] = default_config(workload)
        rec["choices"]["default"] = {"config": rec["default"], "optimizer_steps": 0, "wall_s": 0.0}
        if "schedulefree" in contenders:
            sf = config_fields({**rec["default"], **SCHEDULEFREE, "steps": 1000})
            rec["choices"]["schedulefree"] = {"config": sf, "optimizer_steps": 0, "wall_s": 0.0}
        for contender in [c for c in contenders if c in AGENT_VARIANTS or c == "lr-finder"]:
            submit(name, "choose", {"contender": contender, "budget": budget})
    try:
        start_ready()
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                workload, kind, task = pending.pop(future)
                rec = records[workload]
                try:
                    result = future.result()
                except Exception as error:  # one failed task drops what depends on it, not the whole run
                    rec["errors"].append(f"{kind} {task['contender']}: {type(error).__name__}: {error}")
                    rec["failed"].add(task["contender"])
                    log.failed(f"{workload} {kind} {task['contender']}", error)
                else:
                    log.done(f"{workload} {kind} {task['contender']}", result)
                    if kind == "eval":
                        rec["evals"][eval_ident(task["config"], task["steps"])] = result
                    else:
                        rec["choices"][task["contender"]] = result
                if rec["eval_steps"] is None and (length := evaluation_length(rec)) is not None:
                    rec["eval_steps"], rec["eval_steps_from"] = length  # the searches can start
                    for search in [c for c in contenders if c in SEARCHES]:
                        submit(workload, "choose", {"contender": search, "budget": rec["budget"],
                                                    "trial_steps": rec["eval_steps"]})
                submit_evals(workload)
            start_ready()
    except BaseException:  # Ctrl-C: drop what has not started (running tasks finish, their results are cached)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return records


def evaluation_length(rec: dict) -> tuple[int, str] | None:
    """The agent's confirm length, or, when the agent (planner) failed, that of the first variant that did not."""
    if "agent" in rec["choices"]:
        return rec["choices"]["agent"]["eval_steps"], "agent"
    if "agent" in rec["failed"]:
        for variant in AGENT_VARIANTS:
            if variant in rec["choices"]:
                return rec["choices"][variant]["eval_steps"], variant
    return None


# rough seconds per training step on one unloaded core (only to start the longest tasks first)
STEP_SECONDS = {"char-gpt": 0.06, "digits-cnn": 0.007, "waveform-conv1d": 0.007, "digits-mlp": 0.004,
                "moe-digits": 0.004, "diabetes-mlp": 0.0015, "wine-small": 0.001, "cancer-high-lr": 0.001}


def estimated_seconds(task: dict, rec: dict) -> float:
    """A task's rough cost: its training steps times the workload's step time (plus the agent's fixed costs)."""
    per_step = STEP_SECONDS.get(task["workload"], 0.005)
    if task["kind"] == "eval":
        return len(task["seeds"]) * task["steps"] * per_step
    if task["contender"] in AGENT_VARIANTS:
        return rec["budget"] * per_step + 10.0
    if task["contender"] in SEARCHES:
        return SEARCHES[task["contender"]] * rec["budget"] * per_step
    return 100 * per_step + 1.0


def eval_ident(config: dict, steps: int) -> str:
    return json.dumps({"config": config, "steps": steps}, sort_keys=True)


def wanted_evals(rec: dict) -> list[tuple[dict, int]]:
    """(settings, steps) to evaluate: each choice and the default at the evaluation length (once known), and
    each agent run's challenger and the default at the run's confirm length (what its claim is about)."""
    wanted = []
    if rec["eval_steps"] is not None:
        wanted += [(rec["default"], rec["eval_steps"])]
        wanted += [(choice["config"], rec["eval_steps"]) for choice in rec["choices"].values()]
    for contender in AGENT_VARIANTS:
        choice = rec["choices"].get(contender)
        if choice is not None and choice.get("challenger") is not None:
            wanted += [(rec["default"], choice["eval_steps"]), (choice["challenger"], choice["eval_steps"])]
    return wanted


# ---- summary: per workload, per contender, against the default on the evaluation seeds ------------------


def summarise(records: dict, eval_seeds: list[int]) -> list[dict]:
    """Per workload: each contender's evaluation, its paired gain over the default, and the agent's claims."""
    rows = []
    for name, rec in records.items():
        evals, steps = rec["evals"], rec["eval_steps"]
        default = evals.get(eval_ident(rec["default"], steps))
        if default is None:
            continue  # the errors say why
        contenders = {}
        for contender in CONTENDERS:
            choice = rec["choices"].get(contender)
            ev = None if choice is None else evals.get(eval_ident(choice["config"], steps))
            if ev is None:
                continue
            row = {
                "config": choice["config"],
                "search_steps": choice.get("optimizer_steps", 0),
                "search_wall_s": choice.get("wall_s", 0.0),
                "val_losses": ev["val_losses"],
                "val_loss": _finite_mean(ev["val_losses"]),
                "val_metric": _mean_or_none(ev["val_metrics"]),
                "diverged": sum(ev["diverged"]),
                "gain": paired_gain(default["val_losses"], ev["val_losses"]),
                **{k: choice[k] for k in ("trials", "pruned_trials", "rule") if k in choice},
            }
            if contender in AGENT_VARIANTS:
                row["claim"] = agent_claim(choice, rec["default"], evals)
            contenders[contender] = row
        check_held_out(name, contenders, eval_seeds)
        rows.append({"workload": name, "budget": rec["budget"], "eval_steps": rec["eval_steps"],
                     "eval_steps_from": rec["eval_steps_from"], "eval_seeds": eval_seeds, "contenders": contenders,
                     "failed": sorted(rec["failed"])})
    return rows


def check_held_out(workload: str, contenders: dict, eval_seeds: list[int]) -> None:
    """No evaluation seed may be one a contender chose with (searches: SEARCH_SEED; agent: selection + confirm)."""
    used = {SEARCH_SEED}
    for c in contenders.values():
        if "claim" in c:
            used |= {*(c["claim"]["selection_seeds"] or ()), *c["claim"]["confirm_seeds"]}
    shared = sorted(used & set(eval_seeds))
    if shared:
        raise RuntimeError(f"{workload}: evaluation seeds {shared} were used to choose; use other evaluation seeds")


def agent_claim(choice: dict, default: dict, evals: dict) -> dict:
    """The agent's held-out claim beside what the evaluation seeds give for its challenger, at the claim's length.

    Two intervals from the response: ``interval`` (where the true mean gain lies, 90%) and, when the agent
    gives it, ``new_seeds_interval`` (where the mean over ``new_seeds`` fresh seeds lands, 90%): the second
    is the one a mean over the evaluation seeds should fall in, and the calibration target judges it.
    """
    gain, steps = choice["gain"], choice["eval_steps"]
    challenger = choice.get("challenger")
    realized = None
    if challenger is not None:
        realized = paired_gain(evals[eval_ident(default, steps)]["val_losses"],
                               evals[eval_ident(challenger, steps)]["val_losses"])

    def within(interval) -> bool | None:
        return None if realized is None or interval is None else interval[0] <= realized["mean"] <= interval[1]

    predicted = gain.get("new_seeds_interval")
    significant = gain.get("significant")
    return {
        "claimed": gain["relative_loss_reduction"],
        "interval": gain.get("interval"),
        "new_seeds_interval": predicted,
        "new_seeds": gain.get("new_seeds"),
        "significant": significant,
        "adopted": gain.get("adopted"),
        "reason": gain.get("reason"),
        "confirm_seeds": gain["seeds"],
        "confirm_steps": steps,
        "selection_seeds": choice.get("selection_seeds"),
        "baseline_is_default": choice.get("baseline") == default,
        "realized": None if realized is None else realized["mean"],
        "realized_interval": None if realized is None else realized["interval"],
        "inside_interval": within(gain.get("interval")),
        "inside": within(predicted if predicted is not None else gain.get("interval")),
        "reversed": bool(significant) and realized is not None and realized["mean"] < 0,
        "challenger": challenger,
    }


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if len(finite) == len(values) else math.inf


def _mean_or_none(values: list) -> float | None:
    return statistics.fmean(values) if values and all(v is not None for v in values) else None


# ---- targets --------------------------------------------------------------------------------------------


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with holds / falls short and the figures behind it."""
    agents = [(r["workload"], v, r["contenders"][v]["claim"]) for r in rows for v in AGENT_VARIANTS
              if v in r["contenders"]]
    judged = [(w, v, c) for w, v, c in agents if c["inside"] is not None]
    inside = sum(c["inside"] for _, _, c in judged)
    inside_ci = sum(bool(c["inside_interval"]) for _, _, c in judged)
    reversed_ = [(w, v) for w, v, c in agents if c["reversed"]]
    worse = [r["workload"] + ("" if "agent" in r["contenders"] else " (the agent failed)") for r in rows
             if "agent" not in r["contenders"] or r["contenders"]["agent"]["gain"]["verdict"] == "worse"]
    out = [
        _target("calibration: realized gain on evaluation seeds inside the agent's 90% interval on >= 90% of "
                "(workload, run) pairs", bool(judged) and inside >= 0.9 * len(judged),
                f"{inside}/{len(judged)} inside the interval for the mean of fresh seeds, {inside_ci}/{len(judged)} "
                f"inside the confidence interval of the mean"
                + (f"; {len(agents) - len(judged)} runs had no challenger" if len(judged) < len(agents) else "")),
        _target("claimed significant gains reversed by the evaluation seeds: 0", not reversed_,
                f"{len(reversed_)}" + (": " + ", ".join(f"{w} {v}" for w, v in reversed_) if reversed_ else "")),
        _target("agent worse than the default beyond seed noise: 0 workloads", not worse,
                f"{len(worse)}" + (": " + ", ".join(worse) if worse else "")),
    ]
    needed = math.ceil(0.75 * len(rows))
    for tpe, label in (("tpe", "agent / seeded TPE at equal steps"), ("tpe-4x", "stretch: agent / seeded TPE at 4x")):
        if not any(tpe in r["contenders"] for r in rows):
            continue
        ratios = [(r["workload"], ratio(r, "agent", tpe)) for r in rows]
        ok = sum(x is not None and x <= 1.0 for _, x in ratios)
        out.append(_target(f"{label} <= 1.00 on >= {needed} of {len(rows)} workloads", ok >= needed,
                           f"{ok}/{len(rows)}: " + ", ".join(f"{w} {'failed' if x is None else f'{x:.3f}'}"
                                                             for w, x in ratios)))
    return out


def ratio(row: dict, contender: str, other: str) -> float | None:
    """Mean evaluation loss of ``contender`` over ``other``'s (None when either failed)."""
    c = row["contenders"]
    return c[contender]["val_loss"] / c[other]["val_loss"] if contender in c and other in c else None


def _target(text: str, holds: bool, detail: str) -> dict:
    return {"target": text, "holds": bool(holds), "detail": detail}


# ---- markdown ---------------------------------------------------------------------------------------------


def short(config: dict) -> str:
    text = f"{config['optimizer']} lr={config['lr']:.3g} b={config['batch_size']} {config['schedule']}"
    if config.get("warmup_fraction"):
        text += f" warmup={config['warmup_fraction']:.0%}"
    if config.get("weight_decay"):
        text += f" wd={config['weight_decay']:.2g}"
    if config.get("grad_clip"):
        text += f" clip={config['grad_clip']:.3g}"
    return text


def pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def gain_cell(gain: dict) -> str:
    lo, hi = gain["interval"]
    verdict = {"better": "better", "worse": "**worse**", "no significant difference": "n.s."}[gain["verdict"]]
    return f"{pct(gain['mean'])} [{pct(lo)}, {pct(hi)}] {verdict}"


def main_table(rows: list[dict]) -> str:
    lines = [
        "| workload | contender | gain vs default, mean [90% CI] | wins/losses | val loss (mean) | metric "
        "| / tpe | search steps | search s | chosen |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        for contender, c in r["contenders"].items():
            to_tpe = ratio(r, contender, "tpe")
            to_tpe = "n/a" if to_tpe is None else f"{to_tpe:.3f}"
            metric = "n/a" if c["val_metric"] is None else f"{c['val_metric']:.4f}"
            gain = "(the baseline)" if contender == "default" else gain_cell(c["gain"])
            lines.append(
                f"| {r['workload']} | {contender} | {gain} | {c['gain']['wins']}/{c['gain']['losses']} "
                f"| {c['val_loss']:.4f} | {metric} | {to_tpe} | {c['search_steps']} "
                f"| {c['search_wall_s']:.0f} | {short(c['config'])} |")
        for contender in r.get("failed", []):
            lines.append(f"| {r['workload']} | {contender} | **failed** (see below) | | | | | | | |")
    return "\n".join(lines)


def claim_table(rows: list[dict]) -> str:
    lines = [
        "| workload | run | claimed gain [90% CI] (confirm seeds) | 90% interval for the mean of fresh seeds "
        "| adopted | realized on evaluation seeds [90% CI] | inside | reversed |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def span(interval) -> str:
        return "n/a" if interval is None else f"[{pct(interval[0])}, {pct(interval[1])}]"

    for r in rows:
        for v in AGENT_VARIANTS:
            if v not in r["contenders"]:
                continue
            c = r["contenders"][v]["claim"]
            seeds = f"n={len(c['confirm_seeds'])}, {c['confirm_steps']} steps"
            claimed = f"{pct(c['claimed'])} {span(c['interval'])} ({seeds})"
            fresh = span(c["new_seeds_interval"]) + (f" (n={c['new_seeds']})" if c["new_seeds"] else "")
            realized = "n/a (no challenger)" if c["realized"] is None else (
                f"{pct(c['realized'])} {span(c['realized_interval'])}")
            inside = "n/a" if c["inside"] is None else ("yes" if c["inside"] else "**no**")
            lines.append(f"| {r['workload']} | {v} | {claimed} | {fresh} | {c['adopted']} | {realized} | {inside} "
                         f"| {'**yes**' if c['reversed'] else 'no'} |")
    return "\n".join(lines)


def ablation_table(rows: list[dict]) -> str:
    """(a) planner, (b) random proposals, (c) no proposals: gain vs default, and (a) against (b) and (c)."""
    variants = [v for v in AGENT_VARIANTS if any(v in r["contenders"] for r in rows)]
    head = " | ".join(f"{v} vs default" for v in variants)
    versus = [v for v in variants if v != "agent"]
    lines = [f"| workload | {head} | " + " | ".join(f"agent vs {v}" for v in versus) + " |",
             "|---|" + "---|" * (len(variants) + len(versus))]
    for r in rows:
        c = r["contenders"]
        cells = [gain_cell(c[v]["gain"]) if v in c else "failed" for v in variants]
        cells += [gain_cell(paired_gain(c[v]["val_losses"], c["agent"]["val_losses"])) if v in c and "agent" in c
                  else "n/a" for v in versus]
        lines.append(f"| {r['workload']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(rows: list[dict]) -> list[str]:
    """Sentences built from the figures (nothing typed by hand)."""
    n = len(rows)
    out = []
    for contender in CONTENDERS[1:]:
        verdicts = [r["contenders"][contender]["gain"]["verdict"] for r in rows if contender in r["contenders"]]
        if verdicts:
            out.append(f"{contender} against the default on {len(verdicts)} workloads: better on "
                       f"{verdicts.count('better')}, no significant difference on "
                       f"{verdicts.count('no significant difference')}, worse on {verdicts.count('worse')}.")
    ran = [r for r in rows if "agent" in r["contenders"]]
    adopted = sum(bool(r["contenders"]["agent"]["claim"]["adopted"]) for r in ran)
    out.append(f"The agent (planner) recommended a change on {adopted} of {n} workloads, kept the default on "
               f"{len(ran) - adopted} and failed on {n - len(ran)}.")
    for v in ("agent-random", "agent-none"):
        pairs = [paired_gain(r["contenders"][v]["val_losses"], r["contenders"]["agent"]["val_losses"])["verdict"]
                 for r in ran if v in r["contenders"]]
        if pairs:
            out.append(f"Planner proposals against {v}: better on {pairs.count('better')}, no significant "
                       f"difference on {pairs.count('no significant difference')}, worse on {pairs.count('worse')} "
                       f"of {len(pairs)} workloads.")
    return out


def markdown(result: dict) -> str:
    rows, cfg = result["rows"], result["config"]
    lines = [main_table(rows), "", "Agent runs: the claim (held-out confirm seeds) against the evaluation seeds:", "",
             claim_table(rows), ""]
    if any("agent-random" in r["contenders"] for r in rows):
        lines += ["Planner ablation (gain in validation loss; agent vs X is the planner's gain over X):", "",
                  ablation_table(rows), ""]
    lines += [f"- {t['target']}: **{'holds' if t['holds'] else 'falls short'}** ({t['detail']})"
              for t in result["targets"]]
    lines += ["", *[f"- {s}" for s in reading(rows)]]
    missing = [w for w in FULL if w not in cfg["plan"]]
    if missing and not set(cfg["plan"]) - set(FULL):
        lines += [f"- Not in this run: {', '.join(missing)} (`--workloads` chose the others)."]
    if len(result.get("agent_codes_used", [])) > 1:
        lines += [f"- WARNING: the agent's code changed during the run; its runs used code hashes "
                  f"{', '.join(result['agent_codes_used'])}"]
    for workload, errors in result.get("errors", {}).items():
        lines += [f"- {workload}: failed: " + "; ".join(errors)]
    lines += ["", f"Evaluation seeds {cfg['eval_seeds']}; step budgets S {cfg['plan']}; evaluation length per "
                  f"workload = the agent's confirm length; {cfg['jobs']} worker processes, 1 torch thread each; "
                  f"wall time {result['wall_s']:.0f} s; the agent's runs used code hash "
                  f"{', '.join(result.get('agent_codes_used') or [cfg['agent_code']])}; repository at the end of the "
                  f"run: {cfg.get('commit')} (agent hash then {cfg['agent_code']}, "
                  f"baseline hash {cfg['baseline_code']})."]
    return "\n".join(lines) + "\n"


DOC_HEAD = """# Agent against seeded baselines, on evaluation seeds

**What it measures.** Each contender chooses one training configuration per workload with the same
budget of S training steps (counted: optimizer steps after a training forward pass) and its own
selection seeds. Every chosen configuration is then trained at one evaluation length, the agent's
confirm length (`response.gain.steps`), on evaluation seeds that no contender used, paired with
the workload's default configuration on the same seeds. A figure is the mean over evaluation
seeds of the relative validation-loss reduction against the default, r = (b - c) / b, with a 90%
paired t interval (scipy.stats.t); "n.s." (no significant difference) when the interval contains
zero. A diverged run counts as r = -1 (a diverged default as r = +1 for a run that did not).

**Workloads.** The four built-ins (digits-mlp, digits-cnn, moe-digits, char-gpt) and four defined
only through `Workload.from_callables` in bench/public_workloads.py: diabetes-mlp (regression,
MSE of a standardised target), wine-small (128 training examples: seed noise dominates),
waveform-conv1d (a 1-D CNN on generated noisy waveforms) and cancer-high-lr (default AdamW lr 0.3).

**Contenders.** default (no search); random search (Optuna RandomSampler) and seeded TPE (the
HyperparameterSuggester: TPESampler + successive halving), both with the default enqueued first
and trials of at most the evaluation length, at S steps, TPE also at 4 S (tpe-4x); lr-finder (the
LR range test's suggestion, the LearningRateScheduler tool's rule, on the default); schedulefree
(schedule-free AdamW at its own defaults); the agent with the offline planner and
`constraints={"step_budget": S}`, with its candidates proposed by the planner (agent), drawn
uniformly inside the probed safe ranges (agent-random) or not proposed at all, the seeded search
alone (agent-none).

**Seeds, never mixed.** Searches and the LR range test select on seed 0; the agent races on its
selection seeds 0, 1, 2 and confirms on held-out seeds 1000 and up; the evaluation seeds are 100000
and up, checked disjoint from all of these. Tuning trainopt's own rules (the planner, its
defaults) uses the development seeds 500 and up (`--dev`, results in agent_vs_baselines_dev.*) and
20000 and up, never the evaluation seeds. Three times a rule changed after the evaluation seeds'
misses, and each time those seeds were retired rather than reused to judge the change: 10000 and up
(the confirm's interval took the spread the whole run measures), 30000 and up (the fresh-seeds
interval became log-normal in the loss ratio; `git show a27fec9:bench/results/agent_vs_baselines.json`
is the last run on them), 70000 and up (agent / TPE fell short, cancer-high-lr above 1 on every draw;
the finals now walk the LR down while the lowest scores best; `git show
636136b:bench/results/agent_vs_baselines.json` is the last run on them).

**Calibration.** The agent's response carries a 90% interval for its gain from the held-out
confirm seeds, and a wider one for the mean a user will see over 5 fresh seeds. The realized gain
of the agent's challenger (the race winner the claim is about) over the default on the 5
evaluation seeds, at the claim's length, should fall in the second on at least 90% of the
(workload, run) pairs; a claimed significant gain whose realized mean is below zero is a reversal.
Five evaluation seeds are one draw of what a user sees; bench/calibration.py measures the chance of
landing inside each interval on 40 more fresh seeds, and the interval rules themselves on random
splits of those seeds (docs/benchmarks/calibration.md); bench/tpe_ratio.py trains the agent's and TPE's
choices on 40 more seeds, for the agent / TPE ratios with intervals (docs/benchmarks/tpe_ratio.md).

    python3 bench/agent_vs_baselines.py --jobs 2            # this page's run (results cached in bench/.cache)
    python3 bench/agent_vs_baselines.py --quick             # smoke run: 2 workloads, small S, 3 seeds
    python3 bench/agent_vs_baselines.py --jobs 14 --out DIR # elsewhere; then --render DIR/agent_vs_baselines.json

Everything below is the run's bench/results/agent_vs_baselines.md, written by the script.

## Results
"""


def write_outputs(result: dict, out: Path, name: str, docs: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    text = markdown(result)
    (out / f"{name}.md").write_text(text)
    if docs:
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        DOCS.write_text(DOC_HEAD + "\n" + text)


def _json_default(value):
    raise TypeError(f"not JSON: {value!r}")


# ---- command line ------------------------------------------------------------------------------------------


class Log:
    """A rich progress bar over the tasks, one printed line per finished task."""

    def __init__(self, progress):
        self.progress = progress
        self.bar = progress.add_task("tasks", total=0)

    def add_task(self) -> None:
        self.progress.update(self.bar, total=self.progress.tasks[0].total + 1)

    def failed(self, what: str, error: Exception) -> None:
        self.progress.advance(self.bar)
        self.progress.console.print(f"{what}: FAILED {type(error).__name__}: {error}")

    def done(self, what: str, result: dict) -> None:
        self.progress.advance(self.bar)
        cached = " (cached)" if result.get("from_cache") else ""
        self.progress.console.print(f"{what}: {result.get('optimizer_steps', 0)} steps, "
                                    f"{result.get('wall_s', 0):.0f} s{cached}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 workloads, small S, 3 evaluation seeds")
    parser.add_argument("--dev", action="store_true", help="development seeds (500+) instead of evaluation seeds")
    parser.add_argument("--workloads", nargs="*", help="a subset of the workloads")
    parser.add_argument("--budget", type=int, help="S for every workload (default: the plan's)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every S of the plan (e.g. 2 on 16 cores)")
    parser.add_argument("--eval-seeds", type=int, help="how many evaluation seeds")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1 torch thread each)")
    parser.add_argument("--contenders", nargs="*", choices=CONTENDERS,
                        help="a subset of the contenders (default, tpe and agent always run: the figures need them)")
    parser.add_argument("--out", type=Path, help="write the results here instead of bench/results (no docs page)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where finished tasks are kept")
    parser.add_argument("--render", type=Path, help="rewrite the .md and the docs page from a results JSON")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        name = args.render.stem
        if not name.startswith("agent_vs_baselines"):
            parser.error(f"--render takes a results JSON of this script (agent_vs_baselines*.json), not {name!r}")
        write_outputs(result, RESULTS, name, docs=name == "agent_vs_baselines")
        print(markdown(result))
        return
    torch.set_num_threads(1)
    plan = dict(QUICK if args.quick else FULL)
    if args.workloads:
        known = {**FULL, **QUICK}
        unknown = [w for w in args.workloads if w not in known]
        if unknown:
            parser.error(f"unknown workloads {unknown}; known: {sorted(known)}")
        plan = {w: plan.get(w, known[w]) for w in args.workloads}
    if args.budget:
        plan = dict.fromkeys(plan, args.budget)
    if args.scale <= 0:
        parser.error(f"--scale must be > 0 but got {args.scale}")
    plan = {w: max(100, round(s * args.scale)) for w, s in plan.items()}
    count = args.eval_seeds or (QUICK_EVAL_SEEDS if args.quick else EVAL_SEEDS)
    start = DEV_SEED_START if args.dev else EVAL_SEED_START
    eval_seeds = list(range(start, start + count))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        contenders = [c for c in CONTENDERS if c in {"default", "tpe", "agent", *(args.contenders or CONTENDERS)}]
        records = run_benchmark(plan, eval_seeds, args.jobs, Log(bar), contenders, args.cache)
    rows = summarise(records, eval_seeds)
    result = {
        "config": {"plan": plan, "eval_seeds": eval_seeds, "jobs": args.jobs, "level": LEVEL,
                   "lr_range": LR_RANGE, "weight_decay_range": WEIGHT_DECAY_RANGE, "batch_sizes": BATCH_SIZES,
                   "optimizers": OPTIMIZERS, "schedules": SCHEDULES, "search_seed": SEARCH_SEED, "lm": "offline",
                   "agent_code": code_version(AGENT_CODE), "baseline_code": code_version(BASELINE_CODE),
                   "commit": git_commit(),
                   "cpus": os.cpu_count()},
        "rows": rows,
        "agent_codes_used": sorted({c.get("code", "?") for rec in records.values()
                                    for k, c in rec["choices"].items() if k in AGENT_VARIANTS}),
        "errors": {w: rec["errors"] for w, rec in records.items() if rec["errors"]},
        "targets": targets(rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    name = "agent_vs_baselines" + ("_quick" if args.quick else "") + ("_dev" if args.dev else "")
    official = not (args.quick or args.dev or args.workloads or args.budget or args.eval_seeds or args.out
                    or args.contenders or args.scale != 1.0)
    write_outputs(result, args.out or RESULTS, name, docs=official)
    print(markdown(result))
    if args.out:
        print(f"to render the docs page from it: python3 bench/agent_vs_baselines.py --render {args.out / name}.json")


if __name__ == "__main__":
    main()
