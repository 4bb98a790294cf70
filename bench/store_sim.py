"""Past this machine, by simulation: how many trials per second one PostgreSQL study serves.

Light workers (processes that import Optuna and trainopt's queue, not torch) run the real worker's
storage calls against one PostgreSQL server: ``fail_stale`` and ``pop`` (the "ask"), heartbeats
every second while the "trial" runs, which here sleeps a duration drawn from a log-normal
(median ``--trial-s``, sigma 0.5), then a store lookup, the result stored (a 10 KB JSON attribute,
as ``TrialStore.put`` stores a trial) and the queued trial completed (the "tell"). A feeder in this
process keeps ``2 x workers`` trials waiting. For each number of workers it measures, over a
``--window-s`` window after a warm-up: trials completed per second (sustained), against the ideal
``workers / mean trial time``; p50/p95 ask and tell latency. Saturation is the first level whose
throughput falls below 80% of its ideal.

The server and every worker share this machine's CPUs (2 here, with other jobs): the figures are
a floor for a server on its own machine.

    python3 bench/store_sim.py                  # 8, 16, 32, 64 workers
    python3 bench/store_sim.py --quick          # 4, 8 workers, short windows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks" / "store_sim.md"
STUDY = "sim-trials"
RESULT_BYTES = 10_000  # a stored trial's JSON (digits-mlp, 300 steps: about this size)
SATURATED = 0.8  # throughput below this share of the ideal


def worker_main(url: str, seed: int, trial_s: float, go: str, out: str) -> None:
    """One light worker: the real storage calls, with a sleep for the training. It connects, says it is
    ready, and starts when the ``go`` file (holding the stop time) appears: the window has no start-up in it."""
    import optuna

    from trainopt.tools.queue import TrialQueue

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rng = random.Random(seed)
    queue = TrialQueue(url, STUDY, heartbeat_s=1, grace_s=10)
    store = optuna.load_study(storage=url, study_name=STUDY)
    store.get_trials(deepcopy=False)
    name = f"sim:{os.getpid()}"
    Path(out + ".ready").touch()
    while not Path(go).exists():
        time.sleep(0.05)
    stop_at = float(Path(go).read_text())
    rows = []
    while time.time() < stop_at:
        t0 = time.time()
        queue.fail_stale()
        item = queue.pop(("cpu",), name)
        ask = time.time() - t0
        if item is None:
            time.sleep(0.25)
            continue
        with queue.heartbeat(item):
            time.sleep(rng.lognormvariate(math.log(trial_s), 0.5))
        t1 = time.time()
        store.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))  # the store lookup
        store.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}, user_attrs={
            "key": item.key, "workload": "sim", "result": "x" * RESULT_BYTES}))
        queue.complete(item, 1.0)
        rows.append({"done": time.time(), "ask_s": ask, "tell_s": time.time() - t1})
    Path(out).write_text(json.dumps(rows))


def level(url: str, workers: int, trial_s: float, warm_s: float, window_s: float, work: Path) -> dict:
    from trainopt.tools.queue import TrialQueue
    from trainopt.tools.trial_config import TrialConfig

    queue = TrialQueue(url, STUDY, heartbeat_s=1, grace_s=10)
    outs = [work / f"w{workers}-{i}.json" for i in range(workers)]
    go = work / f"go-{workers}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen([sys.executable, __file__, "--worker", url, str(i), str(trial_s), str(go),
                                   str(out)], env=env) for i, out in enumerate(outs)]
    deadline = time.time() + 600
    while not all(Path(str(out) + ".ready").exists() for out in outs) and time.time() < deadline:
        time.sleep(0.2)
    counter = [0]
    done = threading.Event()

    def feed():  # keep 2 x workers trials waiting
        while not done.wait(0.2):
            waiting = sum(t.state.name == "WAITING" for t in queue.trials())
            for _ in range(max(0, 2 * workers - waiting)):
                counter[0] += 1
                queue.enqueue("sim", TrialConfig(seed=counter[0], steps=1), "cpu", key=f"k{counter[0]}")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(1.0)  # the first trials waiting
    started = time.time()
    ready = go.with_suffix(".tmp")
    ready.write_text(str(started + warm_s + window_s))
    ready.rename(go)  # atomic: a worker never reads a half-written file
    for process in processes:
        process.wait()
    done.set()
    feeder.join()
    rows = [r for out in outs if out.exists() for r in json.loads(out.read_text())]
    window = [r for r in rows if started + warm_s <= r["done"] < started + warm_s + window_s]
    mean_trial = trial_s * math.exp(0.5**2 / 2)  # mean of the log-normal
    ideal = workers / mean_trial
    rate = len(window) / window_s

    def pct(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] if values else math.nan

    return {
        "workers": workers, "trials_per_s": rate, "ideal_per_s": ideal, "share_of_ideal": rate / ideal,
        "ask_p50_ms": 1000 * pct([r["ask_s"] for r in window], 0.5),
        "ask_p95_ms": 1000 * pct([r["ask_s"] for r in window], 0.95),
        "tell_p50_ms": 1000 * pct([r["tell_s"] for r in window], 0.5),
        "tell_p95_ms": 1000 * pct([r["tell_s"] for r in window], 0.95),
        "completed_in_window": len(window), "load_avg": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="8,16,32,64", help="numbers of workers")
    parser.add_argument("--trial-s", type=float, default=1.0, help="median simulated trial length (s)")
    parser.add_argument("--warm-s", type=float, default=10.0)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--render", action="store_true", help="rewrite the table and the page from the JSON")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.out / "store_sim.json").read_text())
        table = markdown(saved["meta"], saved["rows"])
        (args.out / "store_sim.md").write_text(table)
        args.doc.write_text(page(saved["meta"], saved["rows"], table))
        return 0
    if args.quick:
        args.levels, args.warm_s, args.window_s = "4,8", 3.0, 5.0
    import tempfile

    import optuna

    from trainopt.tools.local_postgres import LocalPostgres

    work = Path(tempfile.mkdtemp(prefix="store-sim-"))
    rows = []
    load_start = round(os.getloadavg()[0], 2)
    with LocalPostgres() as server:
        for i, workers in enumerate(int(x) for x in args.levels.split(",")):
            url = server.create_database(f"sim_{i}")
            optuna.create_study(storage=url, study_name=STUDY)
            row = level(url, workers, args.trial_s, args.warm_s, args.window_s, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
    saturation = next((r["workers"] for r in rows if r["share_of_ideal"] < SATURATED), None)
    best = max(rows, key=lambda r: r["trials_per_s"])
    meta = {"trial_median_s": args.trial_s, "warm_s": args.warm_s, "window_s": args.window_s,
            "cpus": os.cpu_count(), "optuna": optuna.__version__, "python": platform.python_version(),
            "load_avg_start": load_start, "load_avg_end": round(os.getloadavg()[0], 2),
            "saturated_at_workers": saturation, "best_trials_per_s": best["trials_per_s"],
            "command": "python3 bench/store_sim.py" + (" --quick" if args.quick else "")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store_sim.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown(meta, rows)
    (args.out / "store_sim.md").write_text(table)
    if not args.quick:
        args.doc.write_text(page(meta, rows, table))
    print(table)
    return 0


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = ["| workers | trials/s sustained | ideal (workers / mean trial) | share of ideal | ask p50 / p95 (ms) | "
             "tell p50 / p95 (ms) | load avg |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['trials_per_s']:.1f} | {r['ideal_per_s']:.1f} | "
                     f"{r['share_of_ideal']:.0%} | {r['ask_p50_ms']:.0f} / {r['ask_p95_ms']:.0f} | "
                     f"{r['tell_p50_ms']:.0f} / {r['tell_p95_ms']:.0f} | {r['load_avg']:g} |")
    saturated = (f"saturated at {meta['saturated_at_workers']} workers (< {SATURATED:.0%} of ideal)"
                 if meta["saturated_at_workers"] else f"not saturated up to {rows[-1]['workers']} workers")
    lines += ["", f"Simulated trials of median {meta['trial_median_s']:g} s (log-normal, sigma 0.5), "
              f"{meta['window_s']:g} s window after {meta['warm_s']:g} s warm-up; one PostgreSQL 15 server "
              f"on the same {meta['cpus']} CPUs as every worker; {saturated}; `{meta['command']}`."]
    return "\n".join(lines) + "\n"


def page(meta: dict, rows: list[dict], table: str) -> str:
    best = meta["best_trials_per_s"]
    return "\n".join([
        "# How many workers one PostgreSQL study serves (simulation)",
        "",
        "`python3 bench/store_sim.py` (written by the script: the table and figures are this run's).",
        "",
        __doc__.split("\n\n", 1)[1].split("    python3")[0].strip(),
        "",
        table,
        "## Reading",
        "",
        f"The most this server sustained was {best:.1f} trials per second. A worker whose trials take T "
        f"seconds asks for 1/T trials per second, so the same server keeps about {best:.0f} x T workers busy: "
        f"{best * 60:.0f} workers of one-minute trials, {best * 600:.0f} of ten-minute trials, measured with "
        f"the server sharing {meta['cpus']} loaded CPUs (load average {meta['load_avg_start']:g} at the start, "
        f"{meta['load_avg_end']:g} at the end) with all the workers; a server on a machine of its own does better. "
        "Here the CPUs limit it first (see the load average column: the server, the feeder and every worker "
        "share them). On a server of its own, what grows with the workers is the per-trial round trips (a pop "
        "scans the waiting trials, a result is one insert of about 10 KB, heartbeats are one update per running "
        "trial per second) and the idle workers' polling (a scan of the waiting trials every 0.25 s each, a "
        "stale check every heartbeat interval). "
        "Past it, see [docs/scale-out.md](../scale-out.md).",
        "",
    ])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, url, seed, trial_s, go, out = sys.argv
        worker_main(url, int(seed), float(trial_s), go, out)
    else:
        sys.exit(main())
