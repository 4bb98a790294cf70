"""A worker: takes trials from the shared queue, runs them with ``run_trial``, stores the results.

``trainopt worker --storage URL`` runs ``serve`` until it is stopped (Ctrl-C, SIGTERM), its parent
coordinator is gone (local workers), or it has been idle ``idle_exit_s``. Each trial:

    pop (WAITING -> RUNNING) -> heartbeat thread on -> trial store has it? read it back : run_trial
    -> store.put (one transaction) -> queued trial COMPLETE

A worker killed anywhere in that line loses nothing: before ``store.put`` the trial is re-queued
once its heartbeat goes stale; after it, the copy that is re-queued finds the result in the store
and completes without training. A trial that raises ``OptimizationError`` (bad configuration, out
of memory) is marked FAIL with the error, which the coordinator raises. When the storage server is
unreachable (a restart), every storage call is retried for ``reconnect_s``, then the worker stops
with a clear error; the trial in hand is not lost (its result is stored once the server is back,
or its copy is re-queued).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainopt.errors import HyperparameterError, OptimizationError
from trainopt.tools.queue import GRACE_S, HEARTBEAT_S, MAX_RETRY, RECONNECT_S, QueuedTrial, TrialQueue
from trainopt.tools.queue import retry_unreachable as _retry
from trainopt.tools.queue_search import stop_rule
from trainopt.tools.store import STUDY_NAME, TrialStore
from trainopt.tools.trials import resolve_device, run_trial
from trainopt.tools.workloads import get_workload

FIRST_LOOK_S = 0.01  # after a trial, the next looks come 0.02, 0.04, 0.08 ... s apart, up to poll_s: a
# coordinator that queues its next trials as soon as results arrive (a race's next rung) is seen at once


@dataclass
class WorkerStats:
    """What one worker did."""

    ran: int = 0  # trials trained here
    reused: int = 0  # queued trials whose result was already in the store (a re-queued copy)
    failed: int = 0  # trials that raised OptimizationError (marked FAIL with the error)
    lines: list[str] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def serve(url: str, study_name: str = STUDY_NAME, device: str = "auto", *, poll_s: float = 0.25,
          idle_exit_s: float | None = None, max_trials: int | None = None, parent_pid: int | None = None,
          heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S, max_retry: int = MAX_RETRY,
          reconnect_s: float = RECONNECT_S,
          log: Callable[[str], None] | None = None, stop: threading.Event | None = None,
          busy: threading.Event | None = None) -> WorkerStats:
    """Run queued trials until ``stop`` is set, idle for ``idle_exit_s``, ``max_trials`` done or the parent gone.

    ``busy`` is set while a trial is in hand (a signal handler stops an idle worker with ``stop``
    and interrupts a busy one)."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    stats = WorkerStats()
    queue = _retry(lambda: TrialQueue(url, study_name, heartbeat_s, grace_s, max_retry), reconnect_s, url)
    store = _retry(lambda: TrialStore(url, study_name=study_name), reconnect_s, url)
    devices = _served(device)
    log(f"worker {worker_name()}: serving {', '.join(devices)} trials of study {study_name!r}")
    idle_since = time.monotonic()
    empty_looks = 0  # looks that found nothing since the last trial: the poll backs off to poll_s
    while (max_trials is None or stats.ran + stats.reused + stats.failed < max_trials) and not (stop and stop.is_set()):
        if parent_pid is not None and os.getppid() != parent_pid:
            log(f"worker {worker_name()}: the coordinator (pid {parent_pid}) is gone; stopping")
            break
        item = _retry(lambda: _look(queue, devices, heartbeat_s), reconnect_s, url)
        if item is None:
            if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                break
            empty_looks += 1
            time.sleep(min(poll_s, FIRST_LOOK_S * 2**empty_looks))
            continue
        empty_looks = 0
        if busy is not None:
            busy.set()
        try:
            _run_one(queue, store, item, device, stats, reconnect_s, url, log)
        finally:
            if busy is not None:
                busy.clear()
        idle_since = time.monotonic()
    return stats


def _look(queue: TrialQueue, devices: tuple[str, ...], heartbeat_s: int) -> QueuedTrial | None:
    """Re-queue dead workers' trials (at most once per heartbeat interval), then take one."""
    queue.fail_stale(every_s=heartbeat_s)
    return queue.pop(devices, worker_name())


def _served(device: str) -> tuple[str, ...]:
    """Device types this worker takes trials for: its own device's, or every available one for auto."""
    if device == "auto":
        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    return (resolve_device(device).type,)


def _run_one(queue: TrialQueue, store: TrialStore, item: QueuedTrial, device: str, stats: WorkerStats,
             reconnect_s: float, url: str, log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    run_device = item.device if device == "auto" else device
    try:
        with queue.heartbeat(item):
            workload = get_workload(item.factory or item.workload)
            _check_same_workload(store, workload, item)
            result = _retry(lambda: store.get(workload, item.config, run_device), reconnect_s, url)
            reused = result is not None
            if result is None:
                result = run_trial(workload, item.config, device=run_device, report=stop_rule(item.stops))
                if result.pruned:  # a search trial stopped at a rung: not a whole trial, not for the store
                    _retry(lambda: queue.keep_pruned(item, result.model_dump_json()), reconnect_s, url)
                else:
                    _retry(lambda: store.put(result, workload), reconnect_s, url)
    except OptimizationError as error:
        stats.failed += 1
        kind, message = error.type, error.message
        log(f"worker {worker_name()}: trial #{item.number} failed ({kind}): {message}")
        _retry(lambda: queue.fail(item, kind, message), reconnect_s, url)
        return
    except BaseException:  # stopped (Ctrl-C, SIGTERM) mid-trial: give it back at once, no grace wait
        queue.release(item)
        raise
    _retry(lambda: queue.complete(item, result.score), reconnect_s, url)
    if reused:
        stats.reused += 1
    else:
        stats.ran += 1
    what = "read back" if reused else ("pruned" if result.pruned else "ran")
    log(f"worker {worker_name()}: {what} trial #{item.number} {item.workload} lr={item.config.lr:g} "
        f"batch={item.config.batch_size} seed={item.config.seed}: val loss {result.final_val_loss:.4f} "
        f"({time.perf_counter() - started:.2f} s)")


def _check_same_workload(store: TrialStore, workload, item: QueuedTrial) -> None:
    """The coordinator's workload id (fingerprint) must be this worker's, or the result would be lost to it."""
    expected = item.workload_id
    own = store.workload_id(workload) if hasattr(store, "workload_id") else workload.name
    if expected is not None and own != expected:
        raise HyperparameterError(
            f"workload {item.workload!r} differs on this worker ({worker_name()}): fingerprint {own[:12]} "
            f"vs the coordinator's {expected[:12]} (another trainopt or torch version, other data, edited code?)",
            {"workload": item.workload, "worker": own, "coordinator": expected},
        )
