"""The search's warm-start candidates are never pruned: the rungs get a finished reference."""

from __future__ import annotations

from trainopt.tools.hyperparameters import HyperparameterSuggester


def test_a_weak_warm_start_candidate_still_runs_its_full_length():
    hpo = HyperparameterSuggester(workload="digits-mlp", device="cpu")
    # the second candidate is far worse at every rung: successive halving would stop it at the first
    out = hpo(n_trials=3, max_steps=36, min_steps=4, pruner="successive_halving", convergence_pruning=True,
              candidates=[{"lr": 3e-3}, {"lr": 1e-6}], seed=0)
    candidates = [t for t in out.trials if t.source == "candidate"]
    assert len(candidates) == 2
    assert all(t.value is not None and t.pruned_by is None for t in candidates), candidates
