"""The shared trial queue on a real PostgreSQL server and on a SQLite file: workers in threads here."""

from __future__ import annotations

import threading
import time

import pytest
from optuna.trial import TrialState

from trainopt.errors import HyperparameterError, ResourceError
from trainopt.tools.queue import TrialQueue
from trainopt.tools.queue_store import QueueStore
from trainopt.tools.queue_worker import serve
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import Workload

FAST = dict(heartbeat_s=1, grace_s=1)  # a dead worker's trial is re-queued about 2 s later


def _worker_thread(url: str, max_trials: int) -> threading.Thread:
    """A worker in a thread that stops after ``max_trials`` (or 60 s idle)."""
    thread = threading.Thread(target=serve, args=(url,), daemon=True, kwargs=dict(
        idle_exit_s=60, max_trials=max_trials, poll_s=0.05, log=lambda line: None, **FAST))
    thread.start()
    return thread


def test_a_worker_runs_queued_trials_and_the_coordinator_gets_the_same_results(storage_url):
    configs = [TrialConfig(lr=lr, steps=20) for lr in (1e-3, 3e-3)]
    coordinator = QueueStore(storage_url, workers=0, poll_s=0.05, timeout_s=60, **FAST)
    worker = _worker_thread(storage_url, max_trials=2)
    results = coordinator.run_many("digits-mlp", configs, device="cpu")
    worker.join()
    # Each result is the trial a process of its own would have measured, in the order asked.
    for config, result in zip(configs, results, strict=True):
        assert result.train_losses == run_trial("digits-mlp", config, device="cpu").train_losses
    # ...and it is in the trial store, so a plain TrialStore reads it back without running it.
    assert TrialStore(storage_url).run("digits-mlp", configs[0], device="cpu").from_store


def test_two_workers_never_pop_the_same_trial(storage_url):
    queue = TrialQueue(storage_url, "pop-test", **FAST)
    for seed in range(12):
        queue.enqueue("digits-mlp", TrialConfig(seed=seed, steps=5), "cpu", key=f"k{seed}")
    popped: list[int] = []

    def drain():
        mine = TrialQueue(storage_url, "pop-test", **FAST)  # a connection of its own, as a worker has
        while (item := mine.pop()) is not None:
            popped.append(item.config.seed)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every trial was taken exactly once.
    assert sorted(popped) == list(range(12))


def test_a_dead_workers_trial_is_requeued_once(storage_url):
    queue = TrialQueue(storage_url, "stale-test", **FAST)
    queue.enqueue("digits-mlp", TrialConfig(steps=5), "cpu", key="k")
    assert queue.pop() is not None  # ... and its worker dies: no more heartbeats
    time.sleep(2.5)
    queue.fail_stale()
    TrialQueue(storage_url, "stale-test", **FAST).fail_stale()  # a second process looking too
    states = [t.state for t in queue.trials()]
    # The dead run is failed, and exactly one copy waits.
    assert states == [TrialState.FAIL, TrialState.WAITING]


def test_a_trial_whose_workers_keep_dying_is_reported_not_waited_for(storage_url):
    coordinator = QueueStore(storage_url, workers=0, poll_s=0.05, max_retry=1, timeout_s=60, **FAST)
    killer = TrialQueue(storage_url, "trainopt-trials", **FAST)

    def die_twice():  # two workers take the trial and die; the retry budget (1) is spent
        for _ in range(2):
            while killer.pop() is None:
                time.sleep(0.05)

    thread = threading.Thread(target=die_twice)
    thread.start()
    with pytest.raises(ResourceError, match="died 2 time"):
        coordinator.run_many("digits-mlp", [TrialConfig(steps=5)], device="cpu")
    thread.join()


def test_a_trials_error_reaches_the_coordinator_with_its_type(tmp_path):
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    coordinator = QueueStore(url, workers=0, poll_s=0.05, timeout_s=60, **FAST)
    worker = _worker_thread(url, max_trials=1)
    # digits-mlp has fewer than 100000 training examples: run_trial raises HyperparameterError.
    with pytest.raises(HyperparameterError, match="batch_size=100000"):
        coordinator.run_many("digits-mlp", [TrialConfig(batch_size=100000, steps=5)], device="cpu")
    worker.join()


def test_workers_cannot_share_an_in_memory_store():
    with pytest.raises(HyperparameterError, match="in-memory"):
        QueueStore("sqlite:///:memory:")


def test_a_workload_object_without_a_factory_is_refused(tmp_path):
    import torch

    x, y = torch.randn(32, 3), torch.randn(32, 1)
    workload = Workload.from_callables(lambda: torch.nn.Linear(3, 1), (x, y), (x, y),
                                       lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), name="mine")
    coordinator = QueueStore(f"sqlite:///{tmp_path / 'trials.db'}", workers=0)
    # A worker in another process could not build it: say how to make it importable.
    with pytest.raises(HyperparameterError, match="module:function"):
        coordinator.run_many(workload, [TrialConfig(steps=5)], device="cpu")


USER_MODULE = '''
import torch
from trainopt.tools.workloads import Workload

def tiny():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, generator=g), torch.randn(64, 1, generator=g)
    return Workload.from_callables(lambda: torch.nn.Linear(3, 1), (x, y), (x, y),
                                   lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), name="tiny-user")
'''


def test_a_users_workload_travels_as_module_and_function(tmp_path, monkeypatch):
    (tmp_path / "my_workloads.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    coordinator = QueueStore(url, workers=0, poll_s=0.05, timeout_s=60, **FAST)
    worker = _worker_thread(url, max_trials=1)
    [result] = coordinator.run_many("my_workloads:tiny", [TrialConfig(batch_size=16, steps=10)], device="cpu")
    worker.join()
    # The worker built the workload from "module:function" and trained it.
    assert result.workload == "tiny-user" and result.steps_run == 10


def test_an_unimportable_factory_is_named_in_the_error():
    from trainopt.tools.workloads import get_workload

    # A worker (or a coordinator) that cannot import "module:function" says which and how to fix it.
    with pytest.raises(HyperparameterError, match="no_such_module:make"):
        get_workload("no_such_module:make")
