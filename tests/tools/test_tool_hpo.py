"""HyperparameterSuggester: warm start first, a valid best config, resume without re-running."""

from __future__ import annotations

import pytest

from trainopt.errors import HyperparameterError
from trainopt.tools.hyperparameters import HyperparameterSuggester
from trainopt.tools.trial_config import TrialConfig

TINY = {"max_steps": 12, "batch_sizes": [32, 64], "optimizers": ["adamw", "sgd"], "pruner": "none",
        "convergence_pruning": False}


@pytest.fixture(scope="module")
def hpo():
    return HyperparameterSuggester(workload="digits-mlp", device="cpu")


def test_candidate_runs_first_and_best_is_a_valid_config(hpo):
    candidate = {"lr": 4e-3, "optimizer": "adamw", "batch_size": 64, "grad_clip": 1.0}
    out = hpo(n_trials=3, candidates=[candidate], **TINY)
    first = out.trials[0]
    # the enqueued candidate is trial 0, with its own values (and its extra field) kept
    assert first.source == "candidate"
    assert (first.config["lr"], first.config["batch_size"], first.config["grad_clip"]) == (4e-3, 64, 1.0)
    assert len(out.trials) == 3
    # the best config is a TrialConfig at full fidelity, and its value is the lowest finished one
    best = TrialConfig(**out.best_config)
    assert best.steps == TINY["max_steps"]
    assert out.best_value == min(t.value for t in out.trials if t.value is not None)
    assert out.steps_spent == sum(t.steps for t in out.trials)


def test_resume_reads_finished_trials_back(hpo, tmp_path):
    storage = f"sqlite:///{tmp_path / 'hpo.db'}"
    first = hpo(n_trials=1, storage=storage, candidates=[{"lr": 2e-3}], **TINY)
    again = hpo(n_trials=2, storage=storage, candidates=[{"lr": 2e-3}], **TINY)
    # the finished trial is read back, not re-run; the candidate is not enqueued twice
    assert again.trials_resumed == 1
    assert [t.config for t in again.trials[:1]] == [t.config for t in first.trials]
    assert len(again.trials) == 2 and again.trials[1].source == "sampler"
    assert again.steps_spent_this_run == again.trials[1].steps


def test_step_budget_stops_the_search(hpo):
    out = hpo(n_trials=10, total_steps=20, **TINY)
    # 20 steps buy one full 12-step trial and part of a second (stopped at a validation point)
    assert 20 <= out.steps_spent <= 20 + 1
    assert len(out.trials) == 2
    assert out.trials[-1].pruned_by == "step budget"


def test_candidate_outside_the_space_extends_it(hpo):
    out = hpo(n_trials=1, candidates=[{"lr": 1e-3, "optimizer": "adam", "batch_size": 16}], **TINY)
    # the agent's proposal is tried as given, and the output says the space grew
    assert out.space_extended == {"batch_size": [16], "optimizer": ["adam"]}
    assert out.best_config["optimizer"] == "adam"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"lr_range": (1e-2, 1e-4)}, "lr_range"),
        ({"meta_optimizers": ["nonsense"]}, "unknown meta_optimizers"),
        ({"candidates": [{"lr": -1.0}]}, "invalid warm-start candidate"),
    ],
)
def test_bad_input_is_a_hyperparameter_error(hpo, bad, match):
    with pytest.raises(HyperparameterError, match=match):
        hpo(n_trials=1, **{**TINY, **bad})


class _Study:
    """Stands in for an Optuna study with one finished trial (best value 0.1)."""

    best_value = 0.1


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0.5, True),  # flat at 0.5: cannot come within 1.25 x 0.1 of the best -> pruned
        (None, False),  # still falling steeply towards 0: kept
    ],
)
def test_convergence_forecast_prunes_hopeless_trials(hpo, level, expected):
    from trainopt.tools.hyperparameters import HPOInput

    steps = [float(s) for s in range(10, 130, 10)]
    losses = [level] * len(steps) if level is not None else [2.0 * (s / 10) ** -1.5 for s in steps]
    reason: dict[str, str] = {}
    pruned = hpo._forecast_prunes(HPOInput(max_steps=200), _Study(), steps, losses, reason)
    assert pruned is expected
    assert ("convergence forecast" in reason.get("by", "")) is expected


def test_examples_budget_gives_every_batch_the_same_examples(hpo):
    candidates = [{"lr": 1e-3, "batch_size": 32}, {"lr": 1e-3, "batch_size": 64}]
    out = hpo(n_trials=2, candidates=candidates, baseline_batch=64, **TINY)
    # batch 32 trains twice the steps of batch 64: 24 and 12, the same 768 examples
    assert [t.config["steps"] for t in out.trials] == [24, 12]
    # and spends 12 steps at the baseline batch each
    assert [t.steps for t in out.trials] == [12, 12]
