"""Each meta-optimizer called directly, without OptimizerWrapper: only the metrics its decision reads."""

import pytest

from trainopt.ars.meta import (
    AdvancedPlateauMetaOptimizer,
    ExpertGateMetaOptimizer,
    PlateauMetaOptimizer,
    RLMetaOptimizer,
    SmartExpertGateMetaOptimizer,
)
from trainopt.errors import HyperparameterError


def test_plateau_alone_needs_only_loss_and_lr():
    meta = PlateauMetaOptimizer(patience=1, lr_factor=0.5)
    # no weight_decay: the weight-decay rule is skipped and only lr comes back
    assert meta.update_hparams({"loss": 1.0, "lr": 1e-3}, 1) == {"lr": 1e-3}
    assert meta.update_hparams({"loss": 1.0, "lr": 1e-3}, 2) == {"lr": 5e-4}


def test_plateau_with_weight_decay_still_returns_it():
    out = PlateauMetaOptimizer().update_hparams({"loss": 1.0, "lr": 1e-3, "weight_decay": 0.01}, 0)
    assert out == {"lr": 1e-3, "weight_decay": 0.01}


@pytest.mark.parametrize("cls", [PlateauMetaOptimizer, AdvancedPlateauMetaOptimizer, RLMetaOptimizer])
@pytest.mark.parametrize("missing", ["loss", "lr"])
def test_a_missing_needed_metric_is_a_hyperparameter_error_naming_it(cls, missing):
    metrics = {"loss": 1.0, "lr": 1e-3}
    del metrics[missing]
    with pytest.raises(HyperparameterError, match=f"needs metrics \\['{missing}'\\]"):
        cls().update_hparams(metrics, 0)


def test_advanced_plateau_warms_up_to_the_first_lr_seen():
    meta = AdvancedPlateauMetaOptimizer(warmup_steps=4)
    # base_lr defaults to the lr of the first call (0.1), not to the lr of later calls
    lrs = [meta.update_hparams({"loss": 2.0, "lr": lr}, step)["lr"] for step, lr in enumerate([0.1, 0.025, 0.05])]
    assert lrs == pytest.approx([0.025, 0.05, 0.075])


def test_advanced_plateau_alone_returns_no_weight_decay():
    out = AdvancedPlateauMetaOptimizer(warmup_steps=0).update_hparams({"loss": 1.0, "lr": 0.1, "grad_norm": 99.0}, 0)
    assert out == {"lr": 0.1}


def test_the_first_lr_seen_survives_a_state_dict_round_trip():
    meta = ExpertGateMetaOptimizer(gate_lr_factor=1.0)
    meta.update_hparams({"lr": 0.02}, 0)
    again = ExpertGateMetaOptimizer(gate_lr_factor=1.0)
    again.load_state_dict(meta.state_dict())
    # the restored base lr is the first lr the original saw, not this call's
    assert again.update_hparams({"lr": 0.5}, 1) == {"gate_lr": 0.02}


@pytest.mark.parametrize("cls", [ExpertGateMetaOptimizer, SmartExpertGateMetaOptimizer])
def test_expert_gates_alone_read_gate_entropy_and_the_lr(cls):
    meta = cls(gate_lr_factor=0.1)
    out = meta.update_hparams({"gate_entropy": 0.95, "lr": 1e-2}, 0)
    assert out["gate_lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("cls", [ExpertGateMetaOptimizer, SmartExpertGateMetaOptimizer])
def test_expert_gates_without_any_lr_name_what_is_missing(cls):
    with pytest.raises(HyperparameterError, match="'base_lr' or 'lr'"):
        cls().update_hparams({"gate_entropy": 0.5}, 0)


def test_rl_alone_decides_the_lr_only():
    meta = RLMetaOptimizer(seed=0)
    outs = [meta.update_hparams({"loss": 2.0 - 0.1 * s, "lr": 1e-3}, s) for s in range(3)]
    # without weight_decay in the metrics, no weight_decay comes back; the lr is one of the actions'
    assert all(set(out) == {"lr"} for out in outs)
    assert all(out["lr"] in {1e-3 * f for f in meta.lr_factors} for out in outs)
