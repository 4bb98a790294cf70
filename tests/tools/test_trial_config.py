import pytest

from trainopt.errors import HyperparameterError, OptimizationError
from trainopt.tools.trial_config import TrialConfig


@pytest.mark.parametrize("bad, shown", [
    ({"lr": 0}, "lr=0"),
    ({"lr": -1e-3}, "lr=-0.001"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"steps": -5}, "steps=-5"),
    ({"optimizer": "lion"}, "optimizer='lion'"),
    ({"schedule": "linear"}, "schedule='linear'"),
    ({"weight_decay": -0.1}, "weight_decay=-0.1"),
    ({"meta_optimizer": "hypergrad"}, "meta_optimizer='hypergrad'"),
    ({"warmup_steps": 300, "steps": 300}, "warmup_steps=300"),
    ({"learning_rate": 1e-3}, "learning_rate=0.001"),
])
def test_bad_values_are_named_in_a_hyperparameter_error(bad, shown):
    with pytest.raises(HyperparameterError, match=shown.replace("(", r"\(")) as info:
        TrialConfig(**bad)
    assert isinstance(info.value, OptimizationError) and info.value.type == "hyperparameter"


def test_meta_optimizer_needs_a_constant_schedule():
    with pytest.raises(HyperparameterError, match="schedule='constant'"):
        TrialConfig(meta_optimizer="plateau", schedule="cosine")


def test_key_is_stable_and_depends_on_every_field():
    assert TrialConfig(lr=1e-3).key() == TrialConfig(lr=1e-3).key()
    assert TrialConfig(lr=1e-3).key() != TrialConfig(lr=1e-3, seed=1).key()
