"""A trial store whose trials run in worker processes: ``run_many`` queues them and waits for results.

Same interface as ``TrialStore`` (``get``, ``put``, ``run``, ``run_many``, ``results``), so the agent
and ``trainopt sweep`` use either. ``run_many`` reads back every trial already stored, queues the
rest (a trial another coordinator already queued is not queued twice), starts ``workers`` local
``trainopt worker`` processes if asked (they stop when this store closes or this process dies),
and waits: it fails stale trials itself while waiting (so a dead worker's trial is re-queued even
when no other worker is idle), raises a trial's ``OptimizationError`` as the worker saw it, and
raises ``ResourceError`` for a trial given up after ``max_retry`` dead workers, or when nobody ran
anything for ``timeout_s``.

Examples:
    >>> with QueueStore("sqlite:///trials.db", workers=2) as store:  # doctest: +SKIP
    ...     results = store.run_many("digits-mlp", [TrialConfig(lr=lr) for lr in (1e-3, 3e-3)])
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from optuna.trial import TrialState

from trainopt.errors import ConvergenceError, HyperparameterError, OptimizationError, ResourceError, WorkloadError
from trainopt.tools.queue import (
    GRACE_S,
    HEARTBEAT_S,
    MAX_RETRY,
    PENDING,
    RECONNECT_S,
    TrialQueue,
    describe,
    retry_unreachable,
)
from trainopt.tools.store import DEFAULT_OUT_DIR, STUDY_NAME, TrialStore, default_storage
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import ProgressFn, ReportFn, TrialResult, resolve_device
from trainopt.tools.workloads import Workload, factory_spec, get_workload, workload_names

TAIL_POLL_S = 0.1  # the coordinator's look while only running trials are left (the last result ends a call)
_ERRORS = {"hyperparameter": HyperparameterError, "resource": ResourceError, "convergence": ConvergenceError,
           "workload": WorkloadError}


class QueueStore:
    """Trials stored as by ``TrialStore``, run by workers that share the storage.

    Args:
        storage: an Optuna RDB URL every worker can reach (default: a SQLite file in ``out_dir``,
            for workers on this machine).
        workers: local worker processes to start (0: only workers started elsewhere).
        worker_threads: torch threads of each local worker (default: the CPU count / workers).
        poll_s: how often the coordinator looks for results while trials of its own still wait (workers
            do not wait for it: they take the next queued trial at once; a shorter poll costs the database
            and this machine's CPU). In the tail, when every trial left is running, it looks every
            ``TAIL_POLL_S``: only the last result ends ``run_many``, and waiting for it is pure latency.
        timeout_s: give up when no trial finished for this long (None: wait for ever).
        reconnect_s: how long an unreachable storage (a server restart) is retried before giving up.
    """

    def __init__(self, storage: str | None = None, out_dir: str | Path = DEFAULT_OUT_DIR,
                 study_name: str = STUDY_NAME, workers: int = 0, worker_threads: int | None = None,
                 poll_s: float = 0.5, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S,
                 max_retry: int = MAX_RETRY, timeout_s: float | None = None, reconnect_s: float = RECONNECT_S):
        if workers < 0:
            raise HyperparameterError(f"workers must be >= 0 but got {workers=}", {"workers": workers})
        self.storage = storage or default_storage(out_dir)
        if ":memory:" in self.storage or self.storage == "sqlite://":
            raise HyperparameterError(
                f"workers cannot share an in-memory store: give a file or server URL, not {self.storage!r}",
                {"storage": self.storage},
            )
        self.study_name = study_name
        self.out_dir = Path(out_dir)
        # the queue first: it creates Optuna's tables in a new database even when another process races it
        self.queue = TrialQueue(self.storage, study_name, heartbeat_s, grace_s, max_retry)
        self.store = TrialStore(self.storage, out_dir=out_dir, study_name=study_name)
        self.workers = workers
        self.worker_threads = worker_threads or max(1, (os.cpu_count() or 1) // max(workers, 1))
        self.poll_s = poll_s
        self.heartbeat_s, self.grace_s, self.max_retry = heartbeat_s, grace_s, max_retry
        self._orphaned: dict[str, float] = {}  # key -> when it was first seen with no copy queued
        self._waiting = True  # a trial of the current run_many still waits for a worker (else: the tail)
        self.timeout_s = timeout_s
        self.reconnect_s = reconnect_s
        self.processes: list[subprocess.Popen] = []

    # -- the TrialStore interface --------------------------------------------------------------
    def workload_id(self, workload: Workload | str) -> str:
        return self.store.workload_id(workload)

    def get(self, workload: Workload | str, config: TrialConfig, device: str = "auto") -> TrialResult | None:
        return self.store.get(workload, config, device)

    def put(self, result: TrialResult, workload: Workload | str | None = None) -> None:
        self.store.put(result, workload)

    def results(self, workload: str | None = None) -> list[TrialResult]:
        return self.store.results(workload)

    def run(self, workload: Workload | str, config: TrialConfig, device: str = "auto",
            report: ReportFn | None = None, progress: ProgressFn | None = None) -> TrialResult:
        """One trial through the queue; with ``report`` (a pruner's callback) it runs here instead,
        since the pruning decision is made in this process."""
        if report is not None:
            return self.store.run(workload, config, device=device, report=report, progress=progress)
        return self.run_many(workload, [config], device=device)[0]

    def run_many(self, workload: Workload | str, configs: list[TrialConfig], device: str = "auto",
                 progress: ProgressFn | None = None) -> list[TrialResult]:
        """Every configuration's result, in order: read back, or queued for the workers and waited for;
        the first trial that fails raises its error."""
        return self._run(workload, configs, device, progress, keep_errors=False)  # type: ignore[return-value]

    def run_each(self, workload: Workload | str, configs: list[TrialConfig], device: str = "auto",
                 stops: list[dict[int, float] | None] | None = None) -> list[TrialResult | OptimizationError]:
        """``run_many``, but a trial that fails gives its error in its place and the others still finish
        (a search batch: one bad configuration must not lose the rest). With ``stops[i]`` ({rung step: highest
        validation loss kept}) a worker stops trial i when its loss at a rung is above it (a pruned result, kept
        beside the queued trial: the trial store holds whole trials only)."""
        return self._run(workload, configs, device, None, keep_errors=True, stops=stops)

    def search_batch(self) -> int:
        """Trials a search hands out at once: the local workers, else the distinct workers that took this
        queue's trials in the last hour (at least 2)."""
        if self.workers > 0:
            return self.workers
        since = datetime.datetime.now() - datetime.timedelta(hours=1)
        seen = {t.system_attrs.get("worker") for t in self.queue.trials()
                if t.datetime_start is not None and t.datetime_start > since}
        return max(2, len(seen - {None}))

    def _run(self, workload: Workload | str, configs: list[TrialConfig], device: str,
             progress: ProgressFn | None, keep_errors: bool,
             stops: list[dict[int, float] | None] | None = None) -> list[TrialResult | OptimizationError]:
        built = get_workload(workload)
        name, factory = built.name, _factory(workload, built)
        device_type = resolve_device(device).type
        workload_id = self.store.workload_id(built)
        stops = stops or [None] * len(configs)
        keys = [queue_key(workload_id, c, device_type, s) for c, s in zip(configs, stops, strict=True)]
        results: list[TrialResult | None] = [self.store.get(built, c, device) for c in configs]
        todo = {i: key for i, key in enumerate(keys) if results[i] is None}
        first_number = len(self.queue.trials())  # failures of earlier runs are not this run's
        pending = {t.user_attrs.get("key") for t in self.queue.trials() if t.state in PENDING}
        for i, key in todo.items():
            if key not in pending:
                self.queue.enqueue(name, configs[i], device_type, key, factory, workload_id, stops[i])
                pending.add(key)
        if todo:
            self._start_workers()
        last_change = time.monotonic()
        while todo:
            if progress is not None:
                progress(len(configs) - len(todo), len(configs))
            finished = retry_unreachable(
                lambda: self._collect(built, configs, device, todo, first_number, keep_errors),
                self.reconnect_s, self.storage)
            for i, result in finished.items():  # run now for this call, by a worker: not "from the store"
                results[i] = result if isinstance(result, OptimizationError) else result.model_copy(
                    update={"from_store": False})
                del todo[i]
                last_change = time.monotonic()
            self._check_workers()
            if todo and self.timeout_s is not None and time.monotonic() - last_change > self.timeout_s:
                raise ResourceError(
                    f"no queued trial finished in {self.timeout_s:g} s ({len(todo)} waiting): are workers "
                    f"running on study {self.study_name!r} of this storage?", {"waiting": len(todo)},
                )
            if todo:
                time.sleep(self.poll_s if self._waiting else min(self.poll_s, TAIL_POLL_S))
        if progress is not None:
            progress(len(configs), len(configs))
        return results  # type: ignore[return-value]

    def _collect(self, built: Workload, configs: list[TrialConfig], device: str, todo: dict[int, str],
                 first_number: int, keep_errors: bool) -> dict[int, TrialResult | OptimizationError]:
        """Fail stale trials (re-queueing them), then the results of finished ones among ``todo`` (a failed
        one raises its error, or gives it in its place with ``keep_errors``)."""
        self.queue.fail_stale(every_s=self.heartbeat_s)
        by_key: dict[str, list] = {}
        for trial in self.queue.trials():
            by_key.setdefault(trial.user_attrs.get("key"), []).append(trial)
        finished = {}
        self._waiting = any(t.state == TrialState.WAITING for key in todo.values() for t in by_key.get(key, []))
        for i, key in todo.items():
            mine = by_key.get(key, [])
            done = [t for t in mine if t.state == TrialState.COMPLETE]
            if not done and any(t.state in PENDING for t in mine):
                self._orphaned.pop(key, None)
                continue
            pruned = [t.user_attrs["pruned_result"] for t in done if "pruned_result" in t.user_attrs]
            if pruned:  # a search trial its worker stopped at a rung
                finished[i] = TrialResult.model_validate_json(pruned[0])
                continue
            result = self.store.get(built, configs[i], device)
            if result is None:
                if self._given_up(key, mine, first_number):
                    if not keep_errors:
                        raise _failure(mine, first_number, configs[i])
                    finished[i] = _failure(mine, first_number, configs[i])
                continue
            finished[i] = result
        return finished

    def _given_up(self, key: str, trials: list, first_number: int) -> bool:
        """No copy of this trial waits or runs and none finished: given up, or between Optuna failing a
        stale run and queueing its copy (two transactions)? A trial's own error is final at once; a dead
        run is final past the retry budget, or once nothing has reappeared for two grace periods."""
        ours = [t for t in trials if t.number >= first_number and t.state == TrialState.FAIL]
        if any("error" in t.user_attrs for t in ours) or len(ours) > self.max_retry:
            return True
        first_seen = self._orphaned.setdefault(key, time.monotonic())
        return time.monotonic() - first_seen > 2 * self.grace_s

    # -- local worker processes ----------------------------------------------------------------
    def _start_workers(self) -> None:
        if self.processes or self.workers == 0:
            return
        logs = self.out_dir / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.worker_threads)}
        for i in range(self.workers):
            command = [sys.executable, "-m", "trainopt.cli", "worker", "--storage", self.storage,
                       "--study", self.study_name, "--threads", str(self.worker_threads),
                       "--parent", str(os.getpid()), "--heartbeat", str(self.heartbeat_s),
                       "--grace", str(self.grace_s), "--max-retry", str(self.max_retry)]
            with open(logs / f"worker-{i}.log", "ab") as log:
                self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))

    def _check_workers(self) -> None:
        if self.processes and all(p.poll() not in (None, 0) for p in self.processes):
            codes = [p.returncode for p in self.processes]
            raise ResourceError(
                f"all {len(codes)} local workers exited (codes {codes}); see {self.out_dir / 'workers'}",
                {"exit_codes": codes},
            )

    def close(self) -> None:
        """Stop the local workers (they are idle once ``run_many`` returned)."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def queue_key(workload_id: str, config: TrialConfig, device_type: str, stops: dict[int, float] | None = None) -> str:
    """Identity of a queued trial (the trial store's identity: workload id, configuration, device type; and a
    search trial's pruning cutoffs, which make it another trial)."""
    identity = {"workload": workload_id, "config": config.model_dump(mode="json"), "device": device_type}
    if stops:
        identity["stops"] = {str(step): value for step, value in stops.items()}
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _factory(workload: Workload | str, built: Workload) -> str | None:
    """How a worker builds this workload: None for a name it knows, else an importable "module:function"."""
    if isinstance(workload, str) and ":" in workload:
        return workload
    if built.name in workload_names() and get_workload(built.name) is built:
        return None
    spec = factory_spec(built.name)
    if spec is None:
        raise HyperparameterError(
            f"worker processes build workload {built.name!r} themselves: give it as an importable factory, "
            "'module:function' of a zero-argument function returning the Workload (e.g. "
            "--workload mypackage.models:my_workload), or register it in every worker",
            {"workload": built.name},
        )
    return spec


def _failure(trials: list, first_number: int, config: TrialConfig) -> OptimizationError:
    """Why a queued trial has no result: the error the worker raised, or the workers kept dying."""
    ours = [t for t in trials if t.number >= first_number and t.state == TrialState.FAIL]
    errors = [t for t in ours if "error" in t.user_attrs]
    if errors:
        a = errors[-1].user_attrs
        return _ERRORS.get(a.get("error_type"), ResourceError)(a["error"], {"config": config.model_dump()})
    where = describe(trials[-1]) if trials else f"lr={config.lr} seed={config.seed}"
    return ResourceError(
        f"trial {where} was given up: its worker died {len(ours)} time(s) (killed, or out of memory?)",
        {"config": config.model_dump(), "attempts": len(ours)},
    )
