"""trainopt's agent against the usual ways of choosing training settings, at the user's horizon H.

A recommendation is for a training run of H examples (docs: "The horizon"), so every contender here
is given the same budget of training examples to choose with, and every chosen configuration is then
trained at H (H examples at its own batch: a larger batch trains fewer steps) on evaluation seeds that no
contender chose with, and scored on the workload's test split, which no selection reads.

H per workload: its ``default_config["steps"]`` at its default batch (the built-ins: 300 steps; the public
and held-out workloads: see bench/public_workloads.py and bench/held_out_workloads.py, each measured).
Budgets: 0.5 H, 4 H and 10 H of training examples (``--stretch`` adds 0.1 H), counted here as examples that
went into an optimizer step, and written in baseline steps (examples / the default batch), as
``step_budget`` counts them.

Contenders (each trial one full run of H, where a contender trains full runs):
    default        the workload's default configuration; nothing spent.
    random         Optuna RandomSampler, the default enqueued first, floor(budget / H) trials of H.
    tpe            the HyperparameterSuggester (TPE, seeded), the default enqueued first, pruner "none",
                   floor(budget / H) trials of H, ``baseline_batch`` set (a bigger batch trains fewer steps).
    tpe-hyperband  the same with Optuna's HyperbandPruner (max resource H) and ``total_steps`` = the budget; the
                   default enqueued first when one run of H fits.
    lr-finder      the default at the LR range test's suggestion (the LearningRateScheduler tool's rule).
    schedulefree   schedule-free AdamW at its own defaults (lr 0.0025, no warmup, no weight decay).
    agent          TrainingOptimizationAgent with the offline rules (no LLM ran), ``train_steps`` = H,
                   ``step_budget`` = the budget; agent-random and agent-none: ``proposals="random"`` / ``"none"``.
Below one H of budget random and TPE cannot finish one trial: they keep the default (the table says so);
TPE + Hyperband runs what fits, and with no trial at H picks the lowest validation loss at the furthest
validation point that two or more of its trials reached.

Seeds: every search and the LR range test select on seed 0; the agent on 0, 1, 2 and its confirm seeds
1000+; evaluation 200_000+ (``--dev``, and ``--quick``: the development seeds 250_000+); the
``--calibration-seeds`` 220_000+. All checked disjoint (tests/bench/test_at_horizon.py).

Figures (bench/horizon_stats.py): per workload and budget, each contender's mean test loss over the
evaluation seeds and its ratio to the default's, with a 90% paired bootstrap interval ("better" / "worse" /
"n.s."); the headline agent / best baseline, where the best baseline is the lowest mean of random, tpe and
tpe-hyperband at that budget (picked on the evaluation seeds, which favours the baselines); and each agent
claim's interval for a user's mean gain over 5 fresh seeds against the mean gain realized on the evaluation
seeds, measured and predicted claims counted apart.

The contenders and the training they do are in bench/horizon_contenders.py, the statistics in
bench/horizon_stats.py; this script runs the tasks, sums them up and writes the tables. Finished tasks are
cached in bench/.cache/at_horizon (gitignored), keyed by the workload's fingerprint, a hash of the benchmark
code that decides a task (horizon_contenders.py and the workload files), of the trainopt code the contender
runs (agent/, tools/, ars/, prompts/ for the agent; tools/ and ars/ for the rest), the torch and optuna
versions and the task's settings: a rerun after an agent change reruns the agent and what it chose only.

    python3 bench/at_horizon.py --jobs 2                        # the full run (8 workloads + 3 held out)
    python3 bench/at_horizon.py --jobs 2 --stretch --calibration-seeds 20   # + 0.1 H, + 20 seeds per claim
    python3 bench/at_horizon.py --quick                         # smoke run: wine-small, H = 200 steps, 3 dev seeds
    python3 bench/at_horizon.py --workloads digits-mlp,wine-small --budgets 4 --dev   # development seeds
    python3 bench/at_horizon.py --jobs 14 --out DIR             # elsewhere; then --render DIR/at_horizon.json
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
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the sibling modules, also in spawned workers

import horizon_contenders as hc  # noqa: E402
import horizon_stats as hs  # noqa: E402
from held_out_workloads import HELD_OUT_WORKLOADS  # noqa: E402
from horizon_contenders import AGENTS, SEARCH_SEED, load_workload  # noqa: E402
from public_workloads import PUBLIC_WORKLOADS  # noqa: E402

NAME = "at_horizon"
RESULTS = HERE / "results"
CACHE = HERE / ".cache" / NAME
DOCS = ROOT / "docs" / "benchmarks" / f"{NAME}.md"
# what decides a task's outcome (part of every cache key); the figures and tables are computed afresh each run
OUTCOME_FILES = ("horizon_contenders.py", "public_workloads.py", "held_out_workloads.py")

BUILTIN = ["char-gpt", "digits-cnn", "digits-mlp", "moe-digits"]
MAIN = BUILTIN + list(PUBLIC_WORKLOADS)  # the eight the targets are judged on
HELD_OUT = list(HELD_OUT_WORKLOADS)  # no rule of the agent was developed on these
BUDGETS = (0.5, 4.0, 10.0)  # multiples of H
STRETCH_BUDGET = 0.1
QUICK = {"workloads": ["wine-small"], "horizon": 200, "budgets": (0.5, 4.0), "eval_seeds": 3}
EVAL_SEED_START, DEV_SEED_START, CALIBRATION_SEED_START = 200_000, 250_000, 220_000
EVAL_SEEDS = 5
SEARCHES = ("random", "tpe", "tpe-hyperband")  # the baselines the headline takes the best of
CONTENDERS = ["default", *SEARCHES, "lr-finder", "schedulefree", *AGENTS]
LABELS = {name: f"{name} (offline rules)" for name in AGENTS}  # no LLM ran
AGENT_CODE = ("agent", "tools", "ars", "prompts")
BASELINE_CODE = ("tools", "ars")
# seconds per step at the default batch on one core of the loaded 2-core machine, from one run of H each
# (only to start the longest tasks first)
STEP_SECONDS = {"char-gpt": 0.06, "gru-adding": 0.0123, "digits-cnn": 0.0068, "waveform-conv1d": 0.0054,
                "moe-digits": 0.0046, "digits-mlp": 0.0014, "cancer-high-lr": 0.0011}


def eval_ident(config: dict, horizon: int, batch: int) -> str:
    """Configurations equal at H (steps, seed and validation aside) are trained once."""
    return json.dumps(hc.at_horizon(config, horizon, batch, seed=0), sort_keys=True)


def allowed_steps(contender: str, budget_steps: int, horizon: int) -> int | None:
    """Baseline steps a contender may spend: the budget plus one validation interval of a run of H (a search
    stops at the validation point that crosses its budget); the agent also its calibration runs, which its
    ``step_budget`` states come on top. None: a contender with no budget (its cost is stated beside it)."""
    if contender in ("default", "schedulefree", "lr-finder"):
        return None
    extra = math.ceil(horizon / hc.VALIDATIONS)
    if contender in AGENTS:
        from trainopt.agent.budget import CALIBRATION_STEPS

        extra += sum(CALIBRATION_STEPS)
    return budget_steps + extra


# ---- tasks, the cache and the worker side -------------------------------------------------------------------


@functools.cache
def code_version(folders: tuple[str, ...], root: str = str(ROOT)) -> str:
    """A hash of the sources (*.py, *.md) under ``folders``; computed once per process, so a worker keys every
    task with the code it has loaded, even when the files change while it runs."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((Path(root) / folder).rglob("*")):
            if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def bench_version() -> str:
    """A hash of the benchmark's code that decides a task's outcome: its contenders and its workloads."""
    digest = hashlib.sha256()
    for name in OUTCOME_FILES:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def versions() -> dict:
    import optuna

    return {"torch": torch.__version__, "optuna": optuna.__version__}


def task_code(task: dict) -> str:
    return code_version(AGENT_CODE if task["contender"] in AGENTS else BASELINE_CODE)


def task_key(task: dict, fingerprint: str) -> str:
    """What decides a task's outcome: its settings, the workload, this benchmark's code, the trainopt code
    it runs and the versions of torch and optuna."""
    identity = {**task, "fingerprint": fingerprint, "code": task_code(task), "bench": bench_version(),
                "versions": versions()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def run_task(task: dict, cache: str) -> dict:
    """One choice or one evaluation, in a worker process; read back from the cache when its key is there."""
    torch.set_num_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workload, fingerprint = load_workload(task["workload"])
    key = task_key(task, fingerprint)
    path = Path(cache) / task["workload"] / f"{task['kind']}-{task['contender']}-{key}.json"
    if path.is_file():
        return {**json.loads(path.read_text()), "from_cache": True}
    count = hc.counter()
    count.wrap(workload)
    with count.counting() as spent:
        outcome = hc.outcome(task, workload)
    value = {**outcome, **spent, "code": task_code(task)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")  # whole or absent: two runs may share the cache
    partial.write_text(json.dumps(value, indent=1))
    os.replace(partial, path)
    return {**value, "from_cache": False}


class InlinePool:
    """``--jobs 1``: tasks run in this process, in submission order (the process pool's interface)."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # noqa: BLE001 (handed to the caller, as a process pool does)
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


# ---- the run ------------------------------------------------------------------------------------------------


def budget_steps_of(multiple: float, horizon: int) -> int:
    return max(1, round(multiple * horizon))


def choice_tasks(name: str, horizon: int, budgets: list[float], contenders: list[str]) -> list[dict]:
    """The choose tasks of a workload: the LR finder once, each search and agent at each budget (random and
    TPE only where one run of H fits)."""
    tasks = [{"kind": "choose", "workload": name, "contender": "lr-finder", "horizon": horizon}] \
        if "lr-finder" in contenders else []
    for multiple in budgets:
        steps = budget_steps_of(multiple, horizon)
        for contender in [c for c in contenders if c in SEARCHES or c in AGENTS]:
            if contender in ("random", "tpe") and steps < horizon:
                continue  # keeps the default (fixed_choices)
            tasks.append({"kind": "choose", "workload": name, "contender": contender, "horizon": horizon,
                          "budget": multiple, "budget_steps": steps})
    return tasks


def fixed_choices(workload, horizon: int, budgets: list[float], contenders: list[str]) -> dict:
    """(contender, budget) -> choice for what needs no run: the default, schedule-free AdamW, and random and
    TPE below one H (they keep the default)."""
    base = hc.default_config(workload, horizon)
    fixed = {}
    for multiple in budgets:
        fixed[("default", multiple)] = {"config": base, "examples": 0}
        if "schedulefree" in contenders:
            fixed[("schedulefree", multiple)] = {"config": {**base, **hc.SCHEDULEFREE}, "examples": 0}
        for search in ("random", "tpe"):
            if search in contenders and budget_steps_of(multiple, horizon) < horizon:
                fixed[(search, multiple)] = {"config": base, "examples": 0,
                                             "note": "kept the default: no run of H fits the budget"}
    return fixed


def estimated_seconds(task: dict) -> float:
    """A task's rough cost: its training steps at the default batch times the workload's step time."""
    per_step = STEP_SECONDS.get(task["workload"], 0.002)
    if task["kind"] == "eval":
        return len(task["seeds"]) * task["horizon"] * per_step
    if task["contender"] == "lr-finder":
        return 100 * per_step
    return task["budget_steps"] * per_step + (15.0 if task["contender"] in AGENTS else 0.0)


def run_benchmark(plan: dict[str, int], budgets: list[float], eval_seeds: list[int], calibration_seeds: list[int],
                  contenders: list[str], jobs: int, cache: Path, log) -> dict:
    """Every contender on every workload of ``plan`` (name -> H), then every choice trained at H on the
    evaluation seeds (and the agent's claims on the calibration seeds); the raw records per workload."""
    pool = InlinePool() if jobs == 1 else ProcessPoolExecutor(jobs, mp_context=get_context("spawn"))
    records = {}
    ready: list = []  # heap of (-estimated seconds, order, task)
    pending: dict[Future, dict] = {}
    order = itertools.count()

    def submit(task: dict) -> None:
        heapq.heappush(ready, (-estimated_seconds(task), next(order), task))
        log.add_task()

    def submit_evals(name: str, configs: list[dict], claims: list[dict]) -> None:
        """Train ``configs`` at H on the evaluation seeds, and ``claims`` (an agent's challenger and baseline)
        on the calibration seeds too; each distinct configuration once."""
        rec = records[name]
        wanted = [("eval", c, eval_seeds) for c in configs + claims]
        wanted += [("calibration", c, calibration_seeds) for c in claims if calibration_seeds]
        for kind, config, seeds in wanted:
            ident = eval_ident(config, rec["horizon"], rec["batch"])
            if (kind, ident) not in rec["evals"]:
                rec["evals"][(kind, ident)] = None
                submit({"kind": "eval", "workload": name, "contender": kind, "horizon": rec["horizon"],
                        "config": config, "seeds": seeds})

    for name, horizon in plan.items():
        workload, _ = load_workload(name)
        records[name] = {"horizon": horizon, "batch": hc.default_batch(workload), "choices": {}, "evals": {},
                         "errors": [], "failed": set(), "default": hc.default_config(workload, horizon),
                         "split": "test" if workload.test_data is not None else "validation"}
        records[name]["choices"].update(fixed_choices(workload, horizon, budgets, contenders))
        submit_evals(name, [c["config"] for c in records[name]["choices"].values()], [])
        for task in choice_tasks(name, horizon, budgets, contenders):
            submit(task)
    try:
        while ready or pending:
            while ready and len(pending) < max(jobs, 1):
                task = heapq.heappop(ready)[2]
                pending[pool.submit(run_task, task, str(cache))] = task
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                collect(records, task, future, log, submit_evals, budgets)
    except BaseException:  # Ctrl-C: drop what has not started (running tasks finish; their results are cached)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return records


def collect(records: dict, task: dict, future: Future, log, submit_evals, budgets: list[float]) -> None:
    """File a finished task's result (or its error) and ask for the evaluations it makes necessary."""
    rec = records[task["workload"]]
    what = " ".join(str(task[k]) for k in ("workload", "kind", "contender"))
    what += f" {task['budget']:g} H" if "budget" in task else ""
    multiples = [task["budget"]] if "budget" in task else budgets  # the LR finder's choice serves every budget
    try:
        result = future.result()
    except Exception as error:  # one failed task drops what depends on it, not the whole run
        rec["errors"].append(f"{what}: {type(error).__name__}: {error}")
        if task["kind"] == "choose":
            rec["failed"] |= {(task["contender"], m) for m in multiples}
        log.failed(what, error)
        return
    log.done(what, result)
    if task["kind"] == "eval":
        rec["evals"][(task["contender"], eval_ident(task["config"], rec["horizon"], rec["batch"]))] = result
        return
    for multiple in multiples:
        rec["choices"][(task["contender"], multiple)] = result
    claims = [result["challenger"], result["baseline"]] if result.get("challenger") is not None else []
    submit_evals(task["workload"], [result["config"]], claims)


# ---- summary -------------------------------------------------------------------------------------------------


def summarise(records: dict, budgets: list[float], eval_seeds: list[int]) -> list[dict]:
    """One row per (workload, budget): every contender scored at H against the default, the headline agent /
    best baseline, and the agent's claims against the evaluation seeds."""
    rows = []
    for name, rec in records.items():
        default = rec["evals"].get(("eval", eval_ident(rec["default"], rec["horizon"], rec["batch"])))
        if default is None:
            continue  # the errors say why
        for multiple in budgets:
            contenders = {}
            for contender in CONTENDERS:
                choice = rec["choices"].get((contender, multiple))
                ev = None if choice is None else evaluation(rec, choice["config"])
                if ev is not None:
                    contenders[contender] = contender_row(rec, contender, multiple, choice, ev, default)
            rows.append({
                "workload": name, "held_out": name in HELD_OUT_WORKLOADS, "budget": multiple,
                "budget_steps": budget_steps_of(multiple, rec["horizon"]), "horizon_steps": rec["horizon"],
                "baseline_batch": rec["batch"], "horizon_examples": rec["horizon"] * rec["batch"],
                "split": rec["split"], "eval_seeds": eval_seeds, "contenders": contenders,
                "headline": headline(contenders),
                "claims": [claim for v in AGENTS if (claim := agent_claim(rec, v, multiple)) is not None],
                "failed": [c for c in CONTENDERS if (c, multiple) in rec["failed"]],
            })
            check_held_out(name, rows[-1]["claims"], eval_seeds)
    return rows


def evaluation(rec: dict, config: dict, kind: str = "eval") -> dict | None:
    return rec["evals"].get((kind, eval_ident(config, rec["horizon"], rec["batch"])))


def contender_row(rec: dict, contender: str, multiple: float, choice: dict, ev: dict, default: dict) -> dict:
    """A contender's score at H, its ratio to the default, and what it spent against what it was allowed."""
    spent = choice.get("examples", 0) / rec["batch"]
    allowed = allowed_steps(contender, budget_steps_of(multiple, rec["horizon"]), rec["horizon"])
    return {
        "label": LABELS.get(contender, contender),
        "config": {k: choice["config"][k] for k in ("optimizer", "lr", "batch_size", "schedule", "weight_decay",
                                                     "warmup_steps", "steps", "grad_clip")},
        "losses": ev["losses"], "loss": hs.mean_loss(ev["losses"]),
        "metric": _mean_or_none(ev["metrics"]), "diverged": sum(ev["diverged"]),
        "vs_default": hs.ratio_interval(ev["losses"], default["losses"]),
        "spent_steps": round(spent, 1), "allowed_steps": allowed,
        "within_budget": None if allowed is None else spent <= allowed,
        "agent_steps_spent": choice.get("steps_spent"), "wall_s": choice.get("wall_s", 0.0),
        "note": choice.get("note") or agent_note(choice),
        **{k: choice[k] for k in ("trials", "pruned_trials", "rule", "finished_h") if k in choice},
    }


def agent_note(choice: dict) -> str | None:
    if "gain" not in choice:
        return None
    gain = choice["gain"]
    return f"{'adopted' if gain['adopted'] else 'kept the baseline'}; {choice['claim_text']}"


def headline(contenders: dict) -> dict | None:
    """agent / best baseline: the best baseline is the lowest mean test loss of random, tpe and tpe-hyperband;
    the ratio of means with its 90% paired bootstrap interval over the evaluation seeds."""
    searches = [s for s in SEARCHES if s in contenders]
    if "agent" not in contenders or not searches:
        return None
    best = min(searches, key=lambda s: contenders[s]["loss"])
    return {"best_baseline": best, **hs.ratio_interval(contenders["agent"]["losses"], contenders[best]["losses"])}


def agent_claim(rec: dict, variant: str, multiple: float) -> dict | None:
    """An agent run's claim (its interval for a user's mean gain over 5 fresh seeds, challenger against its
    baseline at H) beside the mean gain the evaluation seeds realize; None without a challenger."""
    choice = rec["choices"].get((variant, multiple))
    if choice is None or choice.get("challenger") is None:
        return None
    base, challenger = evaluation(rec, choice["baseline"]), evaluation(rec, choice["challenger"])
    if base is None or challenger is None:
        return None
    gain = choice["gain"]
    realized = statistics.fmean(hs.gains(base["losses"], challenger["losses"]))
    interval = gain["new_seeds_interval"]
    claim = {"variant": variant, "predicted": bool(gain.get("predicted")), "claim_text": choice["claim_text"],
             "claimed": gain["relative_loss_reduction"], "interval": interval, "new_seeds": gain["new_seeds"],
             "adopted": gain["adopted"], "realized": realized, "inside": hs.inside(realized, interval),
             "confirm_seeds": gain["seeds"], "selection_seeds": choice["selection_seeds"]}
    more_base, more = evaluation(rec, choice["baseline"], "calibration"), evaluation(rec, choice["challenger"],
                                                                                     "calibration")
    if more_base is not None and more is not None and len(more["losses"]) >= gain["new_seeds"]:
        claim["coverage"] = hs.coverage(hs.gains(more_base["losses"], more["losses"]), interval, gain["new_seeds"])
        claim["calibration_seeds"] = more["seeds"]
    return claim


def check_held_out(workload: str, claims: list[dict], eval_seeds: list[int]) -> None:
    """No evaluation seed may be one a contender chose with (searches: seed 0; the agent: selection + confirm)."""
    used = {SEARCH_SEED} | {s for c in claims for s in (*c["selection_seeds"], *c["confirm_seeds"])}
    shared = sorted(used & set(eval_seeds))
    if shared:
        raise RuntimeError(f"{workload}: evaluation seeds {shared} were used to choose; use other evaluation seeds")


def _mean_or_none(values: list) -> float | None:
    return statistics.fmean(values) if values and all(v is not None for v in values) else None


# ---- targets -------------------------------------------------------------------------------------------------


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets on ``rows`` (one group of workloads), each with holds / falls short and its figures."""
    names = sorted({r["workload"] for r in rows})
    out = []
    for multiple in (4.0, 10.0):
        at = [r for r in rows if r["budget"] == multiple]
        if at:
            needed = math.ceil(0.75 * len(names))
            ratios = {r["workload"]: r["headline"] and r["headline"]["ratio"] for r in at}
            ok = sum(x is not None and x <= 1.0 for x in ratios.values())
            out.append(_target(f"agent / best baseline <= 1.00 at {multiple:g} H on >= {needed} of {len(names)}",
                               ok >= needed, f"{ok}/{len(at)}: " + ", ".join(
                                   f"{w} {'n/a' if x is None else f'{x:.3f}'}" for w, x in ratios.items())))
    for predicted, share, where in ((False, 0.9, None), (True, 0.8, 0.5)):
        claims = [c for r in rows for c in r["claims"] if c["predicted"] == predicted
                  and (where is None or r["budget"] == where)]
        hits = sum(c["inside"] for c in claims)
        label = "predicted at 0.5 H" if predicted else "measured"
        detail = f"{hits}/{len(claims)}" + ("" if claims else " (no such claim)")
        if predicted:  # predicted claims at the other budgets too, for the record
            every = [c for r in rows for c in r["claims"] if c["predicted"]]
            detail += f"; predicted at every budget {sum(c['inside'] for c in every)}/{len(every)}"
        out.append(_target(f"calibration ({label}): realized mean gain inside the interval for 5 fresh seeds on "
                           f">= {share:.0%}", bool(claims) and hits >= share * len(claims), detail))
    worse = [f"{r['workload']} {r['budget']:g} H" for r in rows
             if "agent" in r["contenders"] and r["contenders"]["agent"]["vs_default"]["verdict"] == "worse"]
    out.append(_target("the recommendation worse than the default at H beyond seed noise: 0",
                       not worse, f"{len(worse)}" + (": " + ", ".join(worse) if worse else "")))
    for predicted, share in ((False, 0.9), (True, 0.8)):
        scored = [c["coverage"] for r in rows for c in r["claims"] if c["predicted"] == predicted and "coverage" in c]
        if scored:
            label = "predicted" if predicted else "measured"
            mean = statistics.fmean(scored)
            out.append(_target(f"calibration on fresh seeds ({label}): mean chance a user's 5-seed mean lands inside "
                               f">= {share:.2f}", mean >= share, f"{mean:.3f} over {len(scored)} claims, "
                               f"{sum(x >= share for x in scored)} at {share:.2f} or more"))
    half = [r for r in rows if r["budget"] == 0.5 and "agent" in r["contenders"]]
    if half:
        needed = math.ceil(5 / 8 * len(names))
        better = [r["workload"] for r in half if r["contenders"]["agent"]["vs_default"]["verdict"] == "better"]
        out.append(_target(f"at 0.5 H better than the default on >= {needed} of {len(names)}", len(better) >= needed,
                           f"{len(better)}/{len(half)}" + (": " + ", ".join(better) if better else "")))
    return out


def _target(text: str, holds: bool, detail: str) -> dict:
    return {"target": text, "holds": bool(holds), "detail": detail}


# ---- markdown ----------------------------------------------------------------------------------------------


def short(config: dict) -> str:
    text = f"{config['optimizer']} lr={config['lr']:.3g} b={config['batch_size']} {config['schedule']}"
    if config.get("warmup_steps"):
        text += f" warmup={config['warmup_steps'] / config['steps']:.0%}"
    if config.get("weight_decay"):
        text += f" wd={config['weight_decay']:.2g}"
    if config.get("grad_clip"):
        text += f" clip={config['grad_clip']:.3g}"
    return text


def ratio_cell(r: dict | None) -> str:
    if r is None:
        return "n/a"
    lo, hi = r["interval"]
    verdict = {"better": "better", "worse": "**worse**", "n.s.": "n.s."}[r["verdict"]]
    return f"{r['ratio']:.3f} [{lo:.3f}, {hi:.3f}] {verdict}"


def spent_cell(c: dict, horizon: int) -> str:
    text = f"{c['spent_steps'] / horizon:.2f} H"
    if c["within_budget"] is False:
        text += " **over**"
    return text


def contender_table(rows: list[dict]) -> str:
    lines = ["| workload | contender | test loss | / default [90%] | spent | chosen | note |",
             "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        for c in r["contenders"].values():
            loss = f"{c['loss']:.4f}" if math.isfinite(c["loss"]) else f"diverged ({c['diverged']})"
            vs = "(the baseline)" if c["label"] == "default" else ratio_cell(c["vs_default"])
            lines.append(f"| {r['workload']} | {c['label']} | {loss} | {vs} | {spent_cell(c, r['horizon_steps'])} "
                         f"| {short(c['config'])} | {c['note'] or ''} |")
        for contender in r["failed"]:
            lines.append(f"| {r['workload']} | {LABELS.get(contender, contender)} | **failed** (below) | | | | |")
    return "\n".join(lines)


def headline_table(rows: list[dict]) -> str:
    lines = ["| workload | H (steps x batch) | " + " | ".join(f"{m:g} H" for m in budgets_of(rows)) + " |",
             "|---|---|" + "---|" * len(budgets_of(rows))]
    for name in dict.fromkeys(r["workload"] for r in rows):
        mine = {r["budget"]: r for r in rows if r["workload"] == name}
        first = next(iter(mine.values()))
        cells = []
        for m in budgets_of(rows):
            h = mine[m]["headline"] if m in mine else None
            cells.append("n/a" if h is None else f"{ratio_cell(h)} (vs {h['best_baseline']})")
        lines.append(f"| {name} | {first['horizon_steps']} x {first['baseline_batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claim_table(rows: list[dict]) -> str:
    lines = ["| workload | budget | run | claim | claimed | interval for 5 fresh seeds | realized on evaluation seeds "
             "| inside | chance a 5-seed re-run lands inside |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for c in r["claims"]:
            lo, hi = c["interval"]
            chance = f"{c['coverage']:.2f} (K={len(c['calibration_seeds'])})" if "coverage" in c else "n/a"
            lines.append(f"| {r['workload']} | {r['budget']:g} H | {LABELS[c['variant']]} | {c['claim_text']} "
                         f"| {c['claimed']:+.1%} | [{lo:+.1%}, {hi:+.1%}] | {c['realized']:+.1%} "
                         f"| {'yes' if c['inside'] else '**no**'} | {chance} |")
    return "\n".join(lines)


def budgets_of(rows: list[dict]) -> list[float]:
    return sorted({r["budget"] for r in rows})


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = []
    for title, held in (("Workloads", False), ("Held out (no rule of the agent was developed on these)", True)):
        rows = [r for r in result["rows"] if r["held_out"] == held]
        if not rows:
            continue
        lines += [f"## {title}", "", "Agent (offline rules) / best baseline, mean test loss at H, 90% paired "
                  "bootstrap interval over the evaluation seeds (<= 1.00: the agent as good or better):", "",
                  headline_table(rows), ""]
        for multiple in budgets_of(rows):
            at = [r for r in rows if r["budget"] == multiple]
            lines += [f"### Budget {multiple:g} H", "", contender_table(at), ""]
        if any(r["claims"] for r in rows):
            lines += ["Agent claims at H against the evaluation seeds:", "", claim_table(rows), ""]
        lines += [f"- {t['target']}: **{'holds' if t['holds'] else 'falls short'}** ({t['detail']})"
                  for t in (result["held_out_targets"] if held else result["targets"])]
        lines += [""]
    splits = {r["workload"]: r["split"] for r in result["rows"]}
    if no_test := sorted(w for w, s in splits.items() if s != "test"):
        lines += [f"- No test split, scored on validation: {', '.join(no_test)}."]
    lines += [f"- {w}: {e}" for w, errors in result.get("errors", {}).items() for e in errors]
    if len(result.get("agent_codes_used", [])) > 1:
        lines += [f"- WARNING: the agent's code changed during the run: hashes {', '.join(result['agent_codes_used'])}"]
    lines += ["", f"Evaluation seeds {cfg['eval_seeds']}; calibration seeds per claim: {cfg['calibration_seeds']}; "
              f"budgets {', '.join(f'{m:g} H' for m in cfg['budgets'])}; spent = training examples counted in "
              f"optimizer steps, in units of H (allowed: the budget, one validation interval of H/10, and for the "
              f"agent its calibration runs); {cfg['jobs']} worker processes, 1 torch thread each; torch "
              f"{cfg['versions']['torch']}, optuna {cfg['versions']['optuna']}; wall time {result['wall_s']:.0f} s; "
              f"repository at {cfg.get('commit')} (agent code {cfg['agent_code']}, baseline code "
              f"{cfg['baseline_code']}, bench code {cfg['bench_code']})."]
    return "\n".join(lines) + "\n"


DOC_HEAD = """# The agent at the user's horizon H, against the usual ways of choosing

**What it measures.** A recommendation is for a training run of H examples (the workload's own length
unless the user states one). Every contender chooses with the same budget of training examples (0.5 H,
4 H, 10 H), and every chosen configuration is then trained at H, at its own batch, on 5 evaluation seeds
no contender chose with, and scored on the test split that nothing selects on. Figures are ratios of
mean test loss: to the default, and the headline, the agent (offline rules: no LLM ran) over the best
of random search, seeded TPE and TPE + Hyperband at that budget, each with a 90% paired bootstrap
interval over the evaluation seeds. Random search and TPE train full runs of H; below one H they keep
the default. The agent's claims (measured at H, or predicted there from shorter runs) are set against
the mean gain the evaluation seeds realize.

    python3 bench/at_horizon.py --jobs 2

Everything below is the run's bench/results/at_horizon.md, written by the script.

"""


def portable(value, replacements: dict[str, str]):
    """``value`` with every string's machine paths replaced (the repository by ".")."""
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: portable(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, replacements) for v in value]
    return value


def write_results(result: dict, out: Path, name: str, docs: bool) -> str:
    """``out``/name.json and name.md, and the docs page for an official run, each written whole."""
    from trainopt.agent.record import atomic_write

    text = markdown(result)
    atomic_write(out / f"{name}.json", json.dumps(result, indent=1) + "\n")
    atomic_write(out / f"{name}.md", text)
    if docs:
        atomic_write(DOCS, DOC_HEAD + text)
    return text


# ---- command line -------------------------------------------------------------------------------------------


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
        self.progress.console.print(f"{what}: {result.get('examples', 0)} examples, {result.get('wall_s', 0):.1f} s"
                                    f"{cached}")


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", help="a comma-separated subset (default: the 8 and the 3 held out)")
    parser.add_argument("--budgets", help="comma-separated multiples of H (default 0.5,4,10)")
    parser.add_argument("--stretch", action="store_true", help=f"also the budget {STRETCH_BUDGET:g} H")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1 torch thread each)")
    parser.add_argument("--dev", action="store_true", help="development seeds (250000+) instead of evaluation seeds")
    parser.add_argument("--quick", action="store_true", help="smoke run: wine-small at H = 200 steps, 3 dev seeds")
    parser.add_argument("--eval-seeds", type=int, help="how many evaluation seeds (default 5)")
    parser.add_argument("--calibration-seeds", type=int, default=0,
                        help="K more fresh seeds (220000+) per agent claim: the chance a 5-seed mean lands inside")
    parser.add_argument("--horizon", type=int, help="H in steps at the default batch for every workload")
    parser.add_argument("--contenders", help=f"a comma-separated subset of {','.join(CONTENDERS)} (default: all)")
    parser.add_argument("--out", type=Path, help="write the results here instead of bench/results (no docs page)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where finished tasks are kept")
    parser.add_argument("--render", type=Path, help="rewrite the .md (and the docs page) from a results JSON")
    args = parser.parse_args(argv)
    known = MAIN + HELD_OUT
    args.workloads = args.workloads.split(",") if args.workloads else (QUICK["workloads"] if args.quick else known)
    if unknown := [w for w in args.workloads if w not in known]:
        parser.error(f"unknown workloads {unknown}; known: {known}")
    try:
        args.budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else list(
            QUICK["budgets"] if args.quick else BUDGETS)
    except ValueError:
        parser.error(f"--budgets takes comma-separated numbers, e.g. 0.5,4,10, but got {args.budgets!r}")
    if any(b <= 0 for b in args.budgets):
        parser.error(f"--budgets must be > 0 but got {args.budgets}")
    args.budgets = sorted({*args.budgets, *([STRETCH_BUDGET] if args.stretch else [])})
    args.contenders = args.contenders.split(",") if args.contenders else CONTENDERS
    if unknown := [c for c in args.contenders if c not in CONTENDERS]:
        parser.error(f"unknown contenders {unknown}; known: {CONTENDERS}")
    args.contenders = [c for c in CONTENDERS if c in {"default", *args.contenders}]
    if args.horizon is None and args.quick:
        args.horizon = QUICK["horizon"]
    return args, parser


def main(argv: list[str] | None = None) -> None:
    args, parser = parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        if not args.render.stem.startswith(NAME):
            parser.error(f"--render takes a results JSON of this script ({NAME}*.json), not {args.render.name!r}")
        print(write_results(result, RESULTS, args.render.stem, docs=args.render.stem == NAME))
        return
    torch.set_num_threads(1)
    plan = {w: args.horizon or hc.horizon_steps(load_workload(w)[0]) for w in args.workloads}
    count = args.eval_seeds or (QUICK["eval_seeds"] if args.quick else EVAL_SEEDS)
    start = DEV_SEED_START if (args.dev or args.quick) else EVAL_SEED_START
    eval_seeds = list(range(start, start + count))
    calibration_seeds = list(range(CALIBRATION_SEED_START, CALIBRATION_SEED_START + args.calibration_seeds))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        records = run_benchmark(plan, args.budgets, eval_seeds, calibration_seeds, args.contenders, args.jobs,
                                args.cache, Log(bar))
    rows = summarise(records, args.budgets, eval_seeds)
    result = {
        "config": {"plan": plan, "budgets": args.budgets, "eval_seeds": eval_seeds,
                   "calibration_seeds": len(calibration_seeds), "contenders": args.contenders, "jobs": args.jobs,
                   "lr_range": hc.LR_RANGE, "weight_decay_range": hc.WEIGHT_DECAY_RANGE,
                   "batch_sizes": hc.BATCH_SIZES, "optimizers": hc.OPTIMIZERS, "schedules": hc.SCHEDULES,
                   "search_seed": SEARCH_SEED, "lm": "offline",
                   "agent_code": code_version(AGENT_CODE), "baseline_code": code_version(BASELINE_CODE),
                   "bench_code": bench_version(), "versions": versions(), "commit": git_commit(),
                   "cpus": os.cpu_count()},
        "rows": rows,
        "targets": targets([r for r in rows if not r["held_out"]]),
        "held_out_targets": targets([r for r in rows if r["held_out"]]),
        "agent_codes_used": sorted({c.get("code", "?") for rec in records.values()
                                    for (k, _), c in rec["choices"].items() if k in AGENTS}),
        "errors": {w: rec["errors"] for w, rec in records.items() if rec["errors"]},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    result = portable(result, {str(args.cache.resolve()): "<cache>", str(ROOT) + "/": "", str(ROOT): ".",
                               tempfile.gettempdir(): "<tmp>"})
    name = NAME + ("_quick" if args.quick else "") + ("_dev" if args.dev else "")
    official = name == NAME and not (args.out or args.horizon or args.eval_seeds or args.stretch
                                     or set(args.workloads) != set(MAIN + HELD_OUT)
                                     or args.budgets != list(BUDGETS) or args.contenders != CONTENDERS)
    print(write_results(result, args.out or RESULTS, name, docs=official))
    if args.out:
        print(f"to render the docs page from it: python3 bench/at_horizon.py --render {args.out / name}.json")


def git_commit() -> str | None:
    """HEAD of the repository, with "+changes" when agent/, tools/, ars/ or prompts/ differ from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", *AGENT_CODE], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


if __name__ == "__main__":
    main()
