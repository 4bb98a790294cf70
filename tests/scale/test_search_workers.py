"""The HyperparameterSuggester's search with a queue-backed store: TPE asks here, worker processes train."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from optuna.trial import TrialState

import trainopt.tools.hyperparameters as hyperparameters
from trainopt.tools.hyperparameters import HyperparameterSuggester
from trainopt.tools.queue_store import QueueStore
from trainopt.tools.trial_config import TrialConfig

TINY = {"max_steps": 12, "batch_sizes": [32, 64], "optimizers": ["adamw", "sgd"], "seed": 0}


@pytest.fixture
def no_training_here(monkeypatch):
    """The search's own run_trial raises: a trial trained in the coordinator would fail the test."""

    def trained_here(*args, **kwargs):
        raise AssertionError("the coordinator trained a search trial itself")

    monkeypatch.setattr(hyperparameters, "run_trial", trained_here)


def test_the_search_hands_its_trials_to_two_worker_processes(storage_url, tmp_path, no_training_here):
    with QueueStore(storage_url, out_dir=tmp_path, workers=2, poll_s=0.1, timeout_s=300) as store:
        hpo = HyperparameterSuggester(workload="digits-mlp", device="cpu", store=store)
        out = hpo(n_trials=5, candidates=[{"lr": 3e-3, "optimizer": "adamw", "batch_size": 64}], **TINY)
        queued = [t for t in store.queue.trials() if t.state == TrialState.COMPLETE]
        stored = store.results("digits-mlp")
    # The same kind of answer as one process: 5 finished trials, the candidate first, a full-length best.
    assert [t.state for t in out.trials].count("COMPLETE") == 5
    assert out.trials[0].source == "candidate" and out.trials[0].config["lr"] == 3e-3
    assert TrialConfig(**out.best_config).steps == TINY["max_steps"]
    assert out.best_value == min(t.value for t in out.trials if t.value is not None)
    # Every trial went through the queue, was run by a worker process (not this one), exactly once.
    workers = {t.system_attrs["worker"] for t in queued}
    assert len(queued) == 5 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    assert all(count == 1 for count in Counter(t.user_attrs["key"] for t in queued).values())
    # Each search trial's configuration is a stored result, and the steps counted are the ones trained.
    searched = {TrialConfig(**t.config).key() for t in out.trials}
    assert searched == {r.config.key() for r in stored}
    assert out.steps_spent == sum(r.steps_run for r in stored) == 5 * TINY["max_steps"]
    assert out.pruner.startswith("none: batches of 2")


def test_a_failing_trial_of_a_batch_fails_alone(storage_url, tmp_path, no_training_here):
    with QueueStore(storage_url, out_dir=tmp_path, workers=2, poll_s=0.1, timeout_s=300) as store:
        hpo = HyperparameterSuggester(workload="digits-mlp", device="cpu", store=store)
        out = hpo(n_trials=3, candidates=[{"lr": 3e-3, "batch_size": 100_000}], **TINY)
    # The candidate's batch exceeds the training set: it raises on its worker, is told FAIL with the
    # error, and the search still finishes its 3 trials with the others (TPE may try that batch again).
    candidate = out.trials[0]
    assert candidate.state == "FAIL" and "exceeds" in candidate.pruned_by
    assert Counter(t.state for t in out.trials)["COMPLETE"] == 3


def test_the_agent_with_two_workers_searches_through_the_queue(storage_url, tmp_path, no_training_here):
    from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent

    request = OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 1500}, num_candidates=2,
                                  refine_rounds=0)  # the smallest plan that leaves room for the search
    agent = TrainingOptimizationAgent(out_dir=tmp_path, storage=storage_url, device="cpu", workers=2)
    result = agent.optimize_training(request)
    search = result.evidence["tools"]["hyperparameter_suggester"]
    queued = [t for t in QueueStore(storage_url, out_dir=tmp_path).queue.trials() if t.state == TrialState.COMPLETE]
    # The search ran (no search trial was trained here: run_trial raises in this process) ...
    assert search["pruner"].startswith("none: batches of 2") and len(search["trials"]) >= 3
    # ... each of its trials that trained is a queued trial a worker process ran, once.
    keys = Counter(t.user_attrs["key"] for t in queued)
    assert all(count == 1 for count in keys.values())
    assert all(not t.system_attrs["worker"].endswith(f":{os.getpid()}") for t in queued)
    trained = [t for t in search["trials"] if t["steps"] > 0]
    assert trained and {TrialConfig(**t["config"]).key() for t in trained} <= {
        TrialConfig.model_validate_json(t.user_attrs["config"]).key() for t in queued}
    # The answer is the agent's usual one: a recommended configuration and its gain over the baseline.
    assert result.recommended is not None and result.gain is not None
