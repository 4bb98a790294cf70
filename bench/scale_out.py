"""Scale-out on one machine: a sweep of 16 digits-mlp trials by 1 and 2 `trainopt worker`s, on a
PostgreSQL server and on a SQLite file, against the same sweep in one process; then a crash run.

Design, in one process and one run:

- rounds: in every round, each storage runs the 16 trials in-process (TrialStore.run_many), with
  1 worker and with 2 workers (QueueStore, each worker one torch thread), in an order that
  alternates between rounds (ABBA), each on a fresh database; workers are started and warmed
  (each has run a trial) before the 16 trials are timed. Figures per round: the wall-time ratio
  1 worker / 2 workers (target >= 1.7x) and the store's overhead per trial, (workers x sweep wall
  - sum of the trials' own wall times) / 16, in ms. Mean and a 90% t interval over the rounds.
- store calls (per storage, first): the median time of each storage call a queued trial costs, no
  training (``--ops-only`` prints them and stops).
- search (per storage): the agent's search (the HyperparameterSuggester, 11 trials of up to 220
  steps, as in the recorded digits-mlp run) in one process, pruning as it goes, and on 2 warmed
  workers (batches of 2, rung cutoffs): wall time, steps trained, trials pruned, best value.
- crash run (per storage): 2 workers; every ``--kill-every`` s, one that holds a running trial (and
  has finished one before: a worker still warming up is spared) is killed with SIGKILL mid-trial and
  a new one started; trials lost (no result: given up after
  ``CRASH_MAX_RETRY`` kills) and duplicated (stored more than once), target 0 and 0, and how many
  runs were cut by a kill and re-run.
- the load average (os.getloadavg) before and after every measurement: other jobs share these 2
  cores, and a 2-worker ratio measured under load says so.

    python3 bench/scale_out.py              # full run (3 rounds)
    python3 bench/scale_out.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState
from scipy import stats

from trainopt.tools.hyperparameters import HyperparameterSuggester
from trainopt.tools.local_postgres import LocalPostgres
from trainopt.tools.queue_store import QueueStore, queue_key
from trainopt.tools.store import STUDY_NAME, TrialStore
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import get_workload

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks" / "scale_out.md"
TARGET_RATIO = 1.7
CRASH_MAX_RETRY = 5  # a trial is given up (and counted lost) after this many kills mid-run
WORKLOAD = "digits-mlp"


def sweep_configs(trials: int, steps: int) -> list[TrialConfig]:
    """The 16 trials: 4 learning rates x 4 seeds."""
    lrs = [1e-3, 2e-3, 4e-3, 8e-3]
    return [TrialConfig(lr=lrs[i % 4], seed=i // 4, steps=steps) for i in range(trials)]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def in_process(url: str, configs: list[TrialConfig]) -> dict:
    store = TrialStore(url)
    store.run(WORKLOAD, TrialConfig(steps=20, seed=999), device="cpu")  # warm: imports, first-step costs
    started = time.perf_counter()
    results = store.run_many(WORKLOAD, configs, device="cpu")
    return _measured(time.perf_counter() - started, results)


def with_workers(url: str, configs: list[TrialConfig], workers: int, out: Path) -> dict:
    with QueueStore(url, out_dir=out, workers=workers, worker_threads=1) as store:
        _warm(store, workers, out)
        started = time.perf_counter()
        results = store.run_many(WORKLOAD, configs, device="cpu")
        return _measured(time.perf_counter() - started, results, workers)


def _warm(store: QueueStore, workers: int, out: Path) -> None:
    """Queue short trials until every worker has run one (its imports and first-step costs paid)."""
    seed = 1000
    for _ in range(20):
        logs = [out / "workers" / f"worker-{i}.log" for i in range(workers)]
        if all(log.exists() and " ran trial" in log.read_text() for log in logs):
            return
        store.run_many(WORKLOAD, [TrialConfig(steps=20, seed=seed + i) for i in range(workers)], device="cpu")
        seed += workers
    raise RuntimeError(f"workers did not all run a warm-up trial; see {out / 'workers'}")


def _measured(wall: float, results, workers: int = 1) -> dict:
    """Overhead per trial: the workers' busy time (workers x wall) not spent inside the trials."""
    own = sum(r.wall_time_s for r in results)
    return {"wall_s": wall, "trial_s": own, "overhead_ms_per_trial": 1000 * (workers * wall - own) / len(results)}


SEARCH = dict(n_trials=11, max_steps=220, seed=0, candidates=[{"lr": 2e-3}, {"lr": 5e-3, "batch_size": 128}])


def search_run(url: str, workers: int, out: Path) -> dict:
    """The agent's search (the HyperparameterSuggester, SEARCH's size: the recorded digits-mlp search's) in this
    process (pruned as it goes) or through the queue with ``workers`` warmed workers (batches, rung cutoffs)."""
    store = TrialStore(url) if workers == 1 else QueueStore(url, out_dir=out, workers=workers, worker_threads=1)
    try:
        if workers > 1:
            _warm(store, workers, out)
        hpo = HyperparameterSuggester(workload=WORKLOAD, device="cpu", store=store)
        started = time.perf_counter()
        result = hpo(**SEARCH)
        wall = time.perf_counter() - started
    finally:
        if workers > 1:
            store.close()
    return {"wall_s": wall, "steps": result.steps_spent, "best_value": result.best_value,
            "pruned": sum(t.state == "PRUNED" for t in result.trials), "trials": len(result.trials)}


def store_ops(url: str, n: int = 12) -> dict:
    """Median ms of each storage call a queued trial costs (no training: a stored 200-step result is reused),
    and their sum per trial: the worker's pop, store lookup, store put and complete, and one coordinator poll."""
    store = QueueStore(url, workers=0)
    workload = get_workload(WORKLOAD)
    workload_id = store.workload_id(workload)
    result = run_trial(workload, TrialConfig(steps=200, seed=999), device="cpu")
    configs = [TrialConfig(lr=1e-3 * (1 + i), steps=200, seed=i) for i in range(n)]
    times: dict[str, list[float]] = {k: [] for k in ("enqueue", "pop", "lookup", "put", "complete", "poll")}

    def timed(name: str, call):
        started = time.perf_counter()
        out = call()
        times[name].append(1000 * (time.perf_counter() - started))
        return out

    for c in configs:
        timed("enqueue", lambda c=c: store.queue.enqueue(WORKLOAD, c, "cpu", queue_key(workload_id, c, "cpu"),
                                                         None, workload_id))
    for c in configs:
        item = timed("pop", lambda: store.queue.pop(("cpu",), "bench:0"))
        timed("lookup", lambda c=c: store.store.get(workload, c, "cpu"))
        timed("put", lambda c=c: store.store.put(result.model_copy(update={"config": c}), workload))
        timed("complete", lambda item=item: store.queue.complete(item, 1.0))
        timed("poll", lambda c=c: (store.queue.trials(), store.store.get(workload, c, "cpu")))
    ops = {k: statistics.median(v) for k, v in times.items()}
    ops["worker_per_trial"] = ops["pop"] + ops["lookup"] + ops["put"] + ops["complete"]
    return ops


def crash_run(url: str, configs: list[TrialConfig], kill_every: float, out: Path, seed: int) -> dict:
    """2 workers; every ``kill_every`` s one is killed (SIGKILL) and a new one started."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "trainopt.cli", "worker", "--storage", url, "--threads", "1",
               "--heartbeat", "1", "--grace", "3", "--max-retry", str(CRASH_MAX_RETRY), "--parent", str(os.getpid())]
    started_workers = [0]

    def start() -> tuple[subprocess.Popen, Path]:
        path = out / f"crash-worker-{started_workers[0]}.log"
        started_workers[0] += 1
        with path.open("ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), path

    workers = [start() for _ in range(2)]
    store = QueueStore(url, out_dir=out, workers=0, heartbeat_s=1, grace_s=3, timeout_s=600,
                       max_retry=CRASH_MAX_RETRY)
    done = threading.Event()
    kills = []

    def busy_worker() -> int | None:
        """Index of a warm worker (it has finished a trial: imports and first-step costs paid) holding a
        running trial (its pid is beside the trial), or None. A worker still warming up is spared, or on a
        loaded machine every kill would land before any trial could finish."""
        pids = {w.pid: i for i, (w, log) in enumerate(workers) if " ran trial" in log.read_text()}
        running = [int(t.system_attrs["worker"].rsplit(":", 1)[1]) for t in store.queue.trials()
                   if t.state == TrialState.RUNNING and "worker" in t.system_attrs]
        mine = [pids[p] for p in running if p in pids]
        return rng.choice(mine) if mine else None

    def killer():
        while not done.wait(kill_every):
            while (victim := busy_worker()) is None:  # kill mid-trial, not a worker still starting
                if done.wait(0.1):
                    return
            workers[victim][0].send_signal(signal.SIGKILL)
            workers[victim][0].wait()
            kills.append(time.perf_counter())
            workers[victim] = start()

    thread = threading.Thread(target=killer, daemon=True)
    started = time.perf_counter()
    thread.start()
    error = None
    try:
        results = store.run_many(WORKLOAD, configs, device="cpu")
    except Exception as failure:  # a trial given up: counted as lost below
        results, error = [], f"{type(failure).__name__}: {failure}"
    wall = time.perf_counter() - started
    done.set()
    thread.join()
    for worker, _ in workers:
        worker.terminate()
        worker.wait()
    stored = optuna.load_study(storage=url, study_name=STUDY_NAME).get_trials(states=(TrialState.COMPLETE,))
    keys = [t.user_attrs["key"] for t in stored]
    queued = store.queue.trials()
    asked = {store.store.get(WORKLOAD, c, "cpu") is not None for c in configs}
    lost = sum(store.store.get(WORKLOAD, c, "cpu") is None for c in configs)
    return {"wall_s": wall, "kills": len(kills), "lost": lost, "duplicated": len(keys) - len(set(keys)),
            "rerun_after_kill": sum(t.state == TrialState.FAIL for t in queued), "results": len(results),
            "all_stored": asked == {True}, "error": error}


def interval(values: list[float], level: float = 0.9) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="training steps per trial")
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills in the crash run")
    parser.add_argument("--quick", action="store_true", help="1 round, 6 trials of 60 steps")
    parser.add_argument("--storages", default="postgresql,sqlite", help="sqlite alone where PostgreSQL is missing")
    parser.add_argument("--ops-only", action="store_true",
                        help="only the per-trial storage calls (median ms), printed; nothing written")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--render", action="store_true", help="rewrite the tables and the page from the JSON")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.out / "scale_out.json").read_text())
        meta, summary, crashes, rows = saved["meta"], saved["summary"], saved["crash"], saved["rows"]
        ops, searches = saved.get("store_ops", {}), saved.get("search", {})
        (args.out / "scale_out.md").write_text(markdown(meta, summary, crashes, ops, searches))
        args.doc.write_text(page(meta, summary, crashes, rows, ops, searches))
        return 0
    if args.quick:
        args.rounds, args.trials, args.steps = 1, 6, 60
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: workers and the server stop
    configs = sweep_configs(args.trials, args.steps)
    storages = args.storages.split(",")
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    rows: list[dict] = []
    crashes: dict[str, dict] = {}
    load_start = load()
    with LocalPostgres() if "postgresql" in storages else contextlib.nullcontext() as server:
        databases = iter(range(10**6))

        def fresh(storage: str) -> str:
            if storage == "sqlite":
                path = work / f"db{next(databases)}.db"
                return f"sqlite:///{path}"
            return server.create_database(f"bench_{next(databases)}")

        ops = {storage: store_ops(fresh(storage)) for storage in storages}
        print("store calls per trial, median ms: " + json.dumps(
            {k: {op: round(v, 1) for op, v in o.items()} for k, o in ops.items()}), flush=True)
        if args.ops_only:
            return 0
        for round_ in range(args.rounds):
            for storage in storages:
                order = ["in-process", "1 worker", "2 workers"]
                if round_ % 2:
                    order.reverse()  # ABBA across rounds: a drift in machine speed cancels
                for contender in order:
                    before = load()
                    url = fresh(storage)
                    out = work / f"r{round_}-{storage}-{contender.replace(' ', '')}"
                    if contender == "in-process":
                        measured = in_process(url, configs)
                    else:
                        measured = with_workers(url, configs, int(contender[0]), out)
                    rows.append({"round": round_, "storage": storage, "contender": contender, **measured,
                                 "load_before": before, "load_after": load()})
                    print(f"round {round_} {storage:10s} {contender:10s} {measured['wall_s']:7.2f} s "
                          f"(load {before} -> {load()})", flush=True)
        searches = {}
        for storage in storages:
            for workers in (1, 2):
                before = load()
                run = search_run(fresh(storage), workers, work / f"search-{storage}-{workers}")
                searches[f"{storage}, {'1 process' if workers == 1 else '2 workers'}"] = {
                    **run, "load_before": before, "load_after": load()}
                print(f"search {storage} {workers}: {run}", flush=True)
        for storage in storages:
            before = load()
            crashes[storage] = {**crash_run(fresh(storage), configs, args.kill_every, work / f"crash-{storage}", 0),
                                "load_before": before, "load_after": load()}
            print(f"crash {storage}: {crashes[storage]}", flush=True)
    summary = summarize(rows, storages)
    meta = {
        "workload": WORKLOAD, "trials": args.trials, "steps": args.steps, "rounds": args.rounds,
        "torch_threads_per_worker": 1, "cpus": os.cpu_count(), "torch": torch.__version__,
        "optuna": optuna.__version__, "python": platform.python_version(), "kill_every_s": args.kill_every,
        "load_avg_start": load_start, "load_avg_end": load(), "command": "python3 bench/scale_out.py"
        + (" --quick" if args.quick else "") + ("" if len(storages) == 2 else f" --storages {args.storages}"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_out.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "rows": rows, "crash": crashes, "store_ops": ops, "search": searches},
        indent=2) + "\n")
    table = markdown(meta, summary, crashes, ops, searches)
    (args.out / "scale_out.md").write_text(table)
    if not args.quick and len(storages) == 2:
        args.doc.write_text(page(meta, summary, crashes, rows, ops, searches))
    print(table)
    return 0


def summarize(rows: list[dict], storages: list[str]) -> dict:
    out = {}
    for storage in storages:
        def walls(contender, storage=storage):
            return [r["wall_s"] for r in sorted(rows, key=lambda r: r["round"])
                    if r["storage"] == storage and r["contender"] == contender]

        def overheads(contender, storage=storage):
            return [r["overhead_ms_per_trial"] for r in rows if r["storage"] == storage and r["contender"] == contender]

        one, two, here = walls("1 worker"), walls("2 workers"), walls("in-process")
        ratio = interval([a / b for a, b in zip(one, two, strict=True)])
        versus_here = interval([a / b for a, b in zip(here, two, strict=True)])
        out[storage] = {
            "wall_s": {c: statistics.fmean(walls(c)) for c in ("in-process", "1 worker", "2 workers")},
            "trial_slowdown_2_vs_1": statistics.fmean(  # each trial's own time, 2 workers against 1
                [r["trial_s"] for r in rows if r["storage"] == storage and r["contender"] == "2 workers"]) /
            statistics.fmean([r["trial_s"] for r in rows if r["storage"] == storage and r["contender"] == "1 worker"]),
            "ratio_1_to_2": ratio, "ratio_in_process_to_2": versus_here,
            "overhead_ms": {c: interval(overheads(c)) for c in ("in-process", "1 worker", "2 workers")},
            "target": "holds" if ratio[0] >= TARGET_RATIO else "falls short",
            "load": [(r["load_before"], r["load_after"]) for r in rows
                     if r["storage"] == storage and r["contender"] == "2 workers"],
        }
    return out


def _iv(triple, fmt="{:.2f}") -> str:
    mean, low, high = triple
    return fmt.format(mean) + ("" if math.isnan(low) else f" ({fmt.format(low)} .. {fmt.format(high)})")


def ops_table(ops: dict) -> list[str]:
    """The per-trial storage calls, one row per storage."""
    if not ops:
        return []
    names = ("enqueue", "pop", "lookup", "put", "complete", "poll", "worker_per_trial")
    lines = ["", "| storage calls, median ms | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for storage, o in ops.items():
        lines.append(f"| {storage} | " + " | ".join(f"{o[n]:.1f}" for n in names) + " |")
    lines += ["", "enqueue and poll are the coordinator's (a poll: the queue's trials read and one lookup); "
              "worker_per_trial = pop + lookup + put + complete, what a worker spends on the storage per trial "
              "besides its heartbeat thread."]
    return lines


def search_table(searches: dict) -> list[str]:
    """The search in one process and on 2 workers, one row per storage and contender."""
    if not searches:
        return []
    lines = ["", "| search (11 trials, 220 steps at most) | wall (s) | steps trained | pruned | best val loss | "
             "load avg |", "|---|---:|---:|---:|---:|---|"]
    for name, r in searches.items():
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['steps']} | {r['pruned']} of {r['trials']} | "
                     f"{r['best_value']:.4f} | {r['load_before']:g}->{r['load_after']:g} |")
    return lines


def markdown(meta: dict, summary: dict, crashes: dict, ops: dict | None = None, searches: dict | None = None) -> str:
    lines = [
        f"| storage | in-process (s) | 1 worker (s) | 2 workers (s) | 1 / 2 workers (90% CI) | "
        f"target >= {TARGET_RATIO}x | store overhead per trial, ms: in-process / 1 worker / 2 workers | "
        "load avg around the 2-worker runs |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for storage, s in summary.items():
        w, o = s["wall_s"], s["overhead_ms"]
        loads = ", ".join(f"{a:g}->{b:g}" for a, b in s["load"])
        lines.append(
            f"| {storage} | {w['in-process']:.2f} | {w['1 worker']:.2f} | {w['2 workers']:.2f} | "
            f"{_iv(s['ratio_1_to_2'])}x | {s['target']} | {_iv(o['in-process'], '{:.0f}')} / "
            f"{_iv(o['1 worker'], '{:.0f}')} / {_iv(o['2 workers'], '{:.0f}')} | {loads} |")
    lines += ["", "| crash run | kills | trials lost (target 0) | duplicated (target 0) | re-run after a kill | "
              "wall (s) | load avg |", "|---|---:|---:|---:|---:|---:|---|"]
    for storage, c in crashes.items():
        verdict = "holds" if c["lost"] == 0 and c["duplicated"] == 0 else "falls short"
        lines.append(f"| {storage} | {c['kills']} | {c['lost']} | {c['duplicated']} ({verdict}) | "
                     f"{c['rerun_after_kill']} | {c['wall_s']:.1f} | {c['load_before']:g}->{c['load_after']:g} |")
    lines += ops_table(ops or {})
    lines += search_table(searches or {})
    lines.append("")
    lines.append(f"{meta['trials']} {meta['workload']} trials of {meta['steps']} steps, 1 torch thread per worker, "
                 f"{meta['cpus']} CPUs, {meta['rounds']} rounds (mean, 90% t interval over rounds), "
                 f"torch {meta['torch']}, optuna {meta['optuna']}; crash run: a worker killed every "
                 f"{meta['kill_every_s']:g} s (mid-trial), a trial given up after {CRASH_MAX_RETRY} kills; "
                 f"`{meta['command']}`.")
    return "\n".join(lines) + "\n"


def page(meta: dict, summary: dict, crashes: dict, rows: list[dict], ops: dict | None = None,
         searches: dict | None = None) -> str:
    pg, lite = summary["postgresql"], summary["sqlite"]
    reading = [
        f"With 2 workers the sweep ran {pg['ratio_1_to_2'][0]:.2f}x as fast as with 1 on PostgreSQL "
        f"and {lite['ratio_1_to_2'][0]:.2f}x on SQLite (target >= {TARGET_RATIO}x: {pg['target']} / "
        f"{lite['target']}). The load average was {meta['load_avg_start']:g} when the run started and "
        f"{meta['load_avg_end']:g} at its end: on 2 cores shared with other jobs, a second worker only gets a "
        "second core when nothing else wants it, so a ratio under load is a floor, not the ceiling. "
        f"The trials' own times say how much core each worker had: with 2 workers every trial took "
        f"{pg['trial_slowdown_2_vs_1']:.2f}x (PostgreSQL) and {lite['trial_slowdown_2_vs_1']:.2f}x (SQLite) as long "
        "as with 1 (1.0x would be two free cores).",
        f"The queue costs {pg['overhead_ms']['1 worker'][0]:.0f} ms per trial on PostgreSQL and "
        f"{lite['overhead_ms']['1 worker'][0]:.0f} ms on SQLite with one worker (per trial: a pop, "
        "a heartbeat thread, the result stored in one transaction and the queued trial marked done; the coordinator "
        "looks for results every 0.5 s while trials wait, every 0.1 s in the tail), against "
        f"{pg['overhead_ms']['in-process'][0]:.0f} / {lite['overhead_ms']['in-process'][0]:.0f} ms for storing a "
        "trial in-process: spread over trials of a second or more it is small; for trials of a few "
        "milliseconds, run them in one process.",
    ]
    for storage, c in crashes.items():
        reading.append(
            f"Crash run on {storage}: {c['kills']} workers killed with SIGKILL, {c['lost']} trial(s) lost, "
            f"{c['duplicated']} stored twice, {c['rerun_after_kill']} trial run(s) cut by a kill and re-run "
            "elsewhere from the start.")
    per_round = ["| round | storage | 1 worker / 2 workers | load avg before the 2-worker sweep |",
                 "|---:|---|---:|---:|"]
    for r in sorted({(x["round"], x["storage"]) for x in rows}):
        one, two = (next(x for x in rows if (x["round"], x["storage"]) == r and x["contender"] == c)
                    for c in ("1 worker", "2 workers"))
        per_round.append(f"| {r[0]} | {r[1]} | {one['wall_s'] / two['wall_s']:.2f}x | {two['load_before']:g} |")
    return "\n".join([
        "# Scale-out on one machine: workers on a shared study",
        "",
        "`python3 bench/scale_out.py` (written by the script: table and figures below are this run's).",
        "",
        __doc__.split("\n\n", 1)[1].split("    python3")[0].strip(),
        "",
        markdown(meta, summary, crashes, ops, searches),
        f"Per round (load average {meta['load_avg_start']:g} at the start of the run, {meta['load_avg_end']:g} "
        "at its end):",
        "",
        *per_round,
        "",
        "## Reading",
        "",
        *[paragraph + "\n" for paragraph in reading],
        "How to run workers across machines: [docs/scale-out.md](../scale-out.md).",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
