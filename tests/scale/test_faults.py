"""Faults of a shared study: a worker killed mid-trial, a coordinator killed, the PostgreSQL server
restarted, two coordinators at once. Nothing may be lost and nothing counted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from trainopt.tools.queue import TrialQueue
from trainopt.tools.queue_store import QueueStore
from trainopt.tools.queue_worker import serve
from trainopt.tools.store import STUDY_NAME
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial

FAST = dict(heartbeat_s=1, grace_s=2)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _worker_process(url: str, log: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainopt.cli", "worker", "--storage", url, "--threads", "1",
               "--heartbeat", "1", "--grace", "2", "--idle-exit", "120", *extra]
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=ENV)


def _worker_thread(url: str, stop: threading.Event, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=serve, args=(url,), daemon=True, kwargs=dict(
        poll_s=0.05, log=lambda line: None, stop=stop, **{**FAST, **kwargs}))
    thread.start()
    return thread


def _in_background(call) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as error:  # handed to the test's thread
            out["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _wait(condition, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stored(url: str) -> list[optuna.trial.FrozenTrial]:
    """Finished trials in the trial store (not the queue)."""
    try:
        study = optuna.load_study(storage=url, study_name=STUDY_NAME)
    except KeyError:  # not created yet
        return []
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def test_a_worker_killed_mid_trial_loses_nothing(storage_url, tmp_path):
    config = TrialConfig(lr=3e-3, steps=400)
    coordinator = QueueStore(storage_url, workers=0, poll_s=0.05, timeout_s=180, **FAST)
    waiting, out = _in_background(lambda: coordinator.run_many("digits-mlp", [config], device="cpu"))
    queue = TrialQueue(storage_url, STUDY_NAME, **FAST)
    doomed = _worker_process(storage_url, tmp_path / "doomed.log")
    _wait(lambda: any(t.state == TrialState.RUNNING for t in queue.trials()), what="the worker to start the trial")
    time.sleep(0.3)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    # The kill landed mid-trial: nothing stored yet.
    assert _stored(storage_url) == []
    stop = threading.Event()
    rescuer = _worker_thread(storage_url, stop)
    waiting.join(timeout=180)
    stop.set()
    rescuer.join()
    [result] = out["value"]
    # Another worker re-ran it: the same numbers as a fresh run on the same seed, stored once.
    assert result.train_losses == run_trial("digits-mlp", config, device="cpu").train_losses
    assert len(_stored(storage_url)) == 1
    assert [t.state for t in queue.trials()] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_killed_coordinator_resumes_without_rerunning_finished_trials(postgres_server, tmp_path):
    url = postgres_server.create_database("coordinator_killed")
    command = [sys.executable, "-m", "trainopt.cli", "sweep", "--workload", "digits-mlp", "--storage", url,
               "--lr", "1e-3,2e-3,3e-3,4e-3,5e-3,6e-3", "--steps", "100", "--workers", "0", "--device", "cpu",
               "--out", str(tmp_path), "--json"]
    QueueStore(url)  # the tables, so that this test's own polling does not race the processes creating them
    stop = threading.Event()
    worker = _worker_thread(url, stop)  # a worker elsewhere, serving whichever coordinator queues
    coordinator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _wait(lambda: len(_stored(url)) >= 1 or coordinator.poll() is not None, 240, "a first finished trial")
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    stop.set()
    worker.join()
    finished = len(_stored(url))
    assert 1 <= finished < 6  # the kill landed mid-sweep

    stop = threading.Event()
    worker = _worker_thread(url, stop)
    rerun = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    stop.set()
    worker.join()
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    results = json.loads(rerun.stdout)
    # Every trial finished before the kill was read back (the worker may have run the rest, still
    # queued, before the rerun asked); each of the six ran once and is stored once.
    assert sum(r["from_store"] for r in results) >= finished
    assert sorted(r["config"]["lr"] for r in results) == [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]
    assert len(_stored(url)) == 6


def test_a_postgresql_restart_mid_study_loses_nothing(postgres_server, tmp_path):
    url = postgres_server.create_database("restart")
    configs = [TrialConfig(lr=lr, steps=200) for lr in (1e-3, 2e-3, 3e-3, 4e-3)]
    coordinator = QueueStore(url, workers=0, poll_s=0.05, timeout_s=180, heartbeat_s=1, grace_s=6)
    waiting, out = _in_background(lambda: coordinator.run_many("digits-mlp", configs, device="cpu"))
    worker = _worker_process(url, tmp_path / "worker.log", "--grace", "6")
    _wait(lambda: len(_stored(url)) >= 1, 180, "a first finished trial")
    postgres_server.restart()  # every open connection is cut
    waiting.join(timeout=180)
    assert "error" not in out, (out.get("error"), repr(getattr(out.get("error"), "__cause__", None)))
    # All four results arrived, each stored once; the worker reconnected and is still serving.
    assert [r.config.lr for r in out["value"]] == [c.lr for c in configs]
    assert len(_stored(url)) == 4
    assert worker.poll() is None
    worker.terminate()
    worker.wait(timeout=30)


def test_two_coordinators_on_one_study_share_results_and_run_nothing_twice(storage_url):
    first = [TrialConfig(lr=lr, steps=30) for lr in (1e-3, 2e-3, 3e-3)]
    second = [TrialConfig(lr=lr, steps=30) for lr in (2e-3, 3e-3, 4e-3)]
    stop = threading.Event()
    worker = _worker_thread(storage_url, stop)
    a, out_a = _in_background(lambda: QueueStore(storage_url, poll_s=0.05, timeout_s=120, **FAST).run_many(
        "digits-mlp", first, device="cpu"))
    b, out_b = _in_background(lambda: QueueStore(storage_url, poll_s=0.05, timeout_s=120, **FAST).run_many(
        "digits-mlp", second, device="cpu"))
    a.join(timeout=180)
    b.join(timeout=180)
    stop.set()
    worker.join()
    assert "error" not in out_a and "error" not in out_b, (out_a.get("error"), out_b.get("error"))
    # Both got every result they asked for; the four distinct trials were each run and stored once.
    assert [r.config.lr for r in out_a["value"]] == [1e-3, 2e-3, 3e-3]
    assert [r.config.lr for r in out_b["value"]] == [2e-3, 3e-3, 4e-3]
    assert len(_stored(storage_url)) == 4
    assert out_a["value"][1].train_losses == out_b["value"][0].train_losses


@pytest.mark.parametrize("device", ["cuda"])
def test_a_worker_leaves_trials_for_a_device_it_does_not_have(tmp_path, device):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    queue = TrialQueue(url, STUDY_NAME, **FAST)
    queue.enqueue("digits-mlp", TrialConfig(steps=5), device, key="k")
    # A CPU-only worker does not take a CUDA trial (it stays queued for one that can run it).
    assert queue.pop(("cpu",)) is None
    assert [t.state for t in queue.trials()] == [TrialState.WAITING]
