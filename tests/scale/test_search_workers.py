"""The HyperparameterSuggester's search with a queue-backed store: TPE asks here, worker processes train."""

from __future__ import annotations

import os
import threading
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

import trainopt.tools.hyperparameters as hyperparameters
from trainopt.tools.hyperparameters import HPOInput, HyperparameterSuggester
from trainopt.tools.queue_search import cutoffs, stop_rule
from trainopt.tools.queue_store import QueueStore
from trainopt.tools.queue_worker import serve
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
    # The same kind of answer as one process: 5 finished trials (whole or pruned), the candidate first,
    # a full-length best.
    assert len(out.trials) == 5 and {t.state for t in out.trials} <= {"COMPLETE", "PRUNED"}
    assert out.trials[0].source == "candidate" and out.trials[0].config["lr"] == 3e-3
    assert TrialConfig(**out.best_config).steps == TINY["max_steps"]
    assert out.best_value == min(t.value for t in out.trials if t.value is not None)
    # Every trial went through the queue, was run by a worker process (not this one), exactly once.
    workers = {t.system_attrs["worker"] for t in queued}
    assert len(queued) == 5 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    assert all(count == 1 for count in Counter(t.user_attrs["key"] for t in queued).values())
    # Whole trials are in the trial store; a trial stopped at a rung is not (it is not a whole trial);
    # the steps counted are the ones the workers trained.
    whole = {TrialConfig(**t.config).key() for t in out.trials if t.state == "COMPLETE"}
    assert whole == {r.config.key() for r in stored}
    assert all(t.steps < TINY["max_steps"] for t in out.trials if t.state == "PRUNED")
    assert out.steps_spent == sum(t.steps for t in out.trials)
    assert out.pruner.startswith("successive_halving: its rung cutoffs") and "batches of 2" in out.pruner


def test_a_worker_stops_a_search_trial_at_a_rung_cutoff(storage_url, tmp_path):
    config = TrialConfig(lr=3e-3, steps=30)
    with QueueStore(storage_url, out_dir=tmp_path, workers=0, poll_s=0.05, timeout_s=120) as store:
        worker = threading.Thread(target=serve, args=(storage_url,), daemon=True, kwargs=dict(
            max_trials=1, idle_exit_s=60, poll_s=0.05, log=lambda line: None))
        worker.start()
        # No loss is below -1: the worker stops the trial at its first validation point past step 9.
        [result] = store.run_each("digits-mlp", [config], device="cpu", stops=[{9: -1.0}])
        worker.join()
        assert result.pruned and result.steps_run == 9
        # The partial result is not the trial store's (a later plain run of the config trains it whole).
        assert store.get("digits-mlp", config, device="cpu") is None


def test_cutoffs_keep_the_best_third_of_the_finished_trials_at_each_rung():
    study = optuna.create_study()
    for curve in ({1: 1.0, 3: 0.9, 9: 0.8}, {1: 2.0, 3: 1.5}, {1: 3.0}, {1: 0.5, 3: 0.4, 9: 0.3}):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.PRUNED if 9 not in curve else TrialState.COMPLETE,
            value=curve[max(curve)], intermediate_values=curve))
    stops = cutoffs(study, HPOInput(max_steps=12, min_steps=1))
    # rung 1: 4 losses, the best 4 // 3 = 1 is kept (0.5); rung 3: 3 losses, the best one (0.4); rung 9:
    # only 2 trials reached it, fewer than 3, so no cutoff there.
    assert stops == {1: 0.5, 3: 0.4}
    rule = stop_rule(stops)
    assert [rule(1, 0.5), rule(2, 9.0), rule(3, 0.41)] == [False, False, True]
    assert stop_rule({}) is None


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

    request = OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 2000}, num_candidates=2,
                                  refine_rounds=0)  # the smallest plan that leaves room for the search
    agent = TrainingOptimizationAgent(out_dir=tmp_path, storage=storage_url, device="cpu", workers=2)
    result = agent.optimize_training(request)
    search = result.evidence["tools"]["hyperparameter_suggester"]
    queued = [t for t in QueueStore(storage_url, out_dir=tmp_path).queue.trials() if t.state == TrialState.COMPLETE]
    # The search ran (no search trial was trained here: run_trial raises in this process) ...
    assert "batches of 2" in search["pruner"] and len(search["trials"]) >= 3
    # ... each of its trials that trained is a queued trial a worker process ran, once.
    keys = Counter(t.user_attrs["key"] for t in queued)
    assert all(count == 1 for count in keys.values())
    assert all(not t.system_attrs["worker"].endswith(f":{os.getpid()}") for t in queued)
    trained = [t for t in search["trials"] if t["steps"] > 0]
    assert trained and {TrialConfig(**t["config"]).key() for t in trained} <= {
        TrialConfig.model_validate_json(t.user_attrs["config"]).key() for t in queued}
    # The answer is the agent's usual one: a recommended configuration and its gain over the baseline.
    assert result.recommended is not None and result.gain is not None
