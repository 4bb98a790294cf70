"""ExpertGateMetaOptimizer and SmartExpertGateMetaOptimizer decisions."""

from __future__ import annotations

import pytest

from trainopt.ars.meta import ExpertGateMetaOptimizer, SmartExpertGateMetaOptimizer


def test_expert_gate_lr_is_base_lr_times_factor_for_a_spread_gate():
    meta = ExpertGateMetaOptimizer(gate_lr_factor=0.1, entropy_threshold=0.5)
    assert meta.update_hparams({"loss": 1.0, "base_lr": 0.01, "gate_entropy": 0.9}, 0) == {
        "gate_lr": pytest.approx(1e-3)}


def test_expert_gate_lr_keeps_falling_while_entropy_is_low_then_recovers():
    # two confident updates halve twice; a spread one doubles back
    meta = ExpertGateMetaOptimizer(gate_lr_factor=0.1, entropy_threshold=0.5, low_entropy_factor=0.5)
    lrs = [meta.update_hparams({"loss": 1.0, "base_lr": 0.01, "gate_entropy": e}, s)["gate_lr"]
           for s, e in enumerate([0.2, 0.2, 0.9])]
    assert lrs == pytest.approx([5e-4, 2.5e-4, 5e-4])


def _smart(**stats):
    meta = SmartExpertGateMetaOptimizer(ema_decay=0.0, gate_lr_factor=0.1, entropy_threshold=0.8,
                                        sparsity_target=0.7, sparsity_gain=1.0, specialization_bonus=1.2)
    return meta.update_hparams({"loss": 1.0, "base_lr": 0.01, **stats}, 0)


def test_smart_gate_lr_drops_when_entropy_is_below_threshold():
    spread = _smart(gate_entropy=0.9, routing_sparsity=0.7)["gate_lr"]
    confident = _smart(gate_entropy=0.3, routing_sparsity=0.7)["gate_lr"]
    assert spread == pytest.approx(1e-3) and confident == pytest.approx(5e-4)


def test_smart_gate_lr_rises_when_routing_is_denser_than_target():
    # sparsity 0.4 < target 0.7: gate lr times 1 + (0.7 - 0.4) = 1.3
    assert _smart(gate_entropy=0.9, routing_sparsity=0.4)["gate_lr"] == pytest.approx(1.3e-3)


def test_smart_expert_lr_gets_the_bonus_only_for_specialised_usage():
    even = _smart(expert_usage=[0.25, 0.25, 0.25, 0.25])
    specialised = _smart(expert_usage=[0.7, 0.1, 0.1, 0.1])
    assert even["expert_lr"] == pytest.approx(0.01) and specialised["expert_lr"] == pytest.approx(0.012)
    assert specialised["gate_weight_decay"] == 0.0 and specialised["expert_weight_decay"] == 1e-4
