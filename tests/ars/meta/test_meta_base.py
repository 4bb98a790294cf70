"""MetaOptimizer contract: abstract, argument checks, state_dict round-trips for every class."""

from __future__ import annotations

import math

import pytest

from trainopt.ars.meta import (
    META_OPTIMIZERS,
    AdvancedPlateauMetaOptimizer,
    ExpertGateMetaOptimizer,
    MetaOptimizer,
    PlateauMetaOptimizer,
    RLMetaOptimizer,
    SmartExpertGateMetaOptimizer,
)


def test_meta_optimizer_cannot_be_instantiated():
    # update_hparams is abstract
    with pytest.raises(TypeError):
        MetaOptimizer()


def test_registry_maps_each_short_name_to_its_class():
    # one stable short name per class, usable as META_OPTIMIZERS[name](**kwargs)
    assert META_OPTIMIZERS == {
        "plateau": PlateauMetaOptimizer,
        "expert_gate": ExpertGateMetaOptimizer,
        "advanced_plateau": AdvancedPlateauMetaOptimizer,
        "smart_expert_gate": SmartExpertGateMetaOptimizer,
        "rl": RLMetaOptimizer,
    }
    assert isinstance(META_OPTIMIZERS["plateau"](patience=5), PlateauMetaOptimizer)


BAD_ARGS = [
    (PlateauMetaOptimizer, {"patience": 0}, "patience=0"),
    (PlateauMetaOptimizer, {"lr_factor": 1.5}, "lr_factor=1.5"),
    (PlateauMetaOptimizer, {"min_lr": -1e-3}, "min_lr=-0.001"),
    (PlateauMetaOptimizer, {"update_frequency": 0}, "update_frequency=0"),
    (ExpertGateMetaOptimizer, {"gate_lr_factor": 0.0}, "gate_lr_factor=0.0"),
    (ExpertGateMetaOptimizer, {"entropy_threshold": 2.0}, "entropy_threshold=2.0"),
    (AdvancedPlateauMetaOptimizer, {"warmup_steps": -1}, "warmup_steps=-1"),
    (AdvancedPlateauMetaOptimizer, {"trend_window": 1}, "trend_window=1"),
    (AdvancedPlateauMetaOptimizer, {"grad_norm_threshold": math.nan}, "grad_norm_threshold=nan"),
    (SmartExpertGateMetaOptimizer, {"sparsity_target": 1.0}, "sparsity_target=1.0"),
    (SmartExpertGateMetaOptimizer, {"expert_weight_decay": -1.0}, "expert_weight_decay=-1.0"),
    (SmartExpertGateMetaOptimizer, {"ema_decay": 1.0}, "ema_decay=1.0"),
    (RLMetaOptimizer, {"lr_factors": (0.5, -1.0)}, "lr_factors=(0.5, -1.0)"),
    (RLMetaOptimizer, {"wd_deltas": ()}, "wd_deltas=()"),
    (RLMetaOptimizer, {"hidden": 0}, "hidden=0"),
    (RLMetaOptimizer, {"entropy_weight": -0.1}, "entropy_weight=-0.1"),
    (RLMetaOptimizer, {"baseline_decay": 1.0}, "baseline_decay=1.0"),
    (RLMetaOptimizer, {"reward_clip": 0.0}, "reward_clip=0.0"),
    (RLMetaOptimizer, {"discount": 1.0}, "discount=1.0"),
]


@pytest.mark.parametrize(("cls", "kwargs", "named"), BAD_ARGS)
def test_bad_argument_raises_value_error_naming_the_value(cls, kwargs, named):
    # the message names the argument and the value it got
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        cls(**kwargs)


def _metrics(t: int) -> dict:
    """A deterministic, bumpy training signal with every optional key."""
    return {"loss": 2.0 / (1 + 0.1 * t) + 0.3 * math.sin(t), "lr": 1e-3 * (1 + t % 3), "base_lr": 1e-3,
            "weight_decay": 1e-4, "base_weight_decay": 1e-4, "grad_norm": 7.0 + 5.0 * math.cos(t),
            "weight_norm": 10.0 + t, "gate_entropy": 0.5 + 0.4 * math.sin(0.7 * t),
            "routing_sparsity": 0.5 + 0.3 * math.cos(t), "expert_usage": [0.1 + 0.05 * (t % 4), 0.3, 0.6],
            "cost": 0.01 * t, "progress": t / 40}


FACTORIES = {
    "plateau": lambda: PlateauMetaOptimizer(patience=2),
    "expert_gate": lambda: ExpertGateMetaOptimizer(),
    "advanced_plateau": lambda: AdvancedPlateauMetaOptimizer(warmup_steps=3, patience=2, trend_window=3),
    "smart_expert_gate": lambda: SmartExpertGateMetaOptimizer(),
    "rl": lambda: RLMetaOptimizer(update_every=2, seed=3),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_round_trip_gives_identical_next_decisions(name):
    # a fresh instance that loads the state dict decides exactly as the original from then on
    original = FACTORIES[name]()
    for t in range(12):
        original.update_hparams(_metrics(t), t)
    fresh = FACTORIES[name]()
    fresh.load_state_dict(original.state_dict())
    for t in range(12, 24):
        assert fresh.update_hparams(_metrics(t), t) == original.update_hparams(_metrics(t), t)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_of_another_class_is_rejected(name):
    # loading a plateau state into anything else fails loudly
    other = "expert_gate" if name == "plateau" else "plateau"
    with pytest.raises(ValueError, match="state_dict is for"):
        FACTORIES[name]().load_state_dict(FACTORIES[other]().state_dict())


@pytest.mark.parametrize("name", ["plateau", "advanced_plateau", "smart_expert_gate", "expert_gate"])
def test_reset_restores_the_first_decisions(name):
    # after reset the same metrics give the same decisions as a new instance
    meta = FACTORIES[name]()
    first = [meta.update_hparams(_metrics(t), t) for t in range(8)]
    meta.reset()
    assert [meta.update_hparams(_metrics(t), t) for t in range(8)] == first
