"""PlateauMetaOptimizer and AdvancedPlateauMetaOptimizer decisions."""

from __future__ import annotations

import pytest

from trainopt.ars.meta import AdvancedPlateauMetaOptimizer, PlateauMetaOptimizer


def _run(meta, losses, lr=0.1, **extra):
    """Feed losses, carrying the returned lr forward like the wrapper does; return the lr sequence."""
    lrs, weight_decay = [], 0.0
    for step, loss in enumerate(losses):
        out = meta.update_hparams({"loss": loss, "lr": lr, "base_lr": 0.1, "weight_decay": weight_decay,
                                   **extra}, step)
        lr, weight_decay = out["lr"], out["weight_decay"]
        lrs.append(lr)
    return lrs


def test_plateau_cuts_lr_after_patience_updates_without_improvement():
    # best at the first update, then 3 flat updates: the third flat one halves the lr
    lrs = _run(PlateauMetaOptimizer(patience=3, lr_factor=0.5), [1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05]


def test_plateau_keeps_lr_while_loss_improves():
    lrs = _run(PlateauMetaOptimizer(patience=1), [1.0, 0.9, 0.8, 0.7])
    assert lrs == [0.1] * 4


def test_plateau_never_goes_below_min_lr():
    # many cuts hit the floor and stay there
    lrs = _run(PlateauMetaOptimizer(patience=1, lr_factor=0.1, min_lr=1e-3), [1.0] * 10)
    assert min(lrs) == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3)


def test_plateau_raises_weight_decay_on_high_grad_norm():
    meta = PlateauMetaOptimizer(grad_norm_threshold=5.0, weight_decay_step=1e-3)
    out = meta.update_hparams({"loss": 1.0, "lr": 0.1, "weight_decay": 0.0, "grad_norm": 6.0}, 0)
    assert out["weight_decay"] == pytest.approx(1e-3)


@pytest.mark.parametrize("warmup_steps", [1, 4, 10])
def test_advanced_plateau_warms_up_linearly(warmup_steps):
    # lr = base_lr * (step + 1) / warmup_steps during the warmup steps
    losses = [1.0 - 0.01 * s for s in range(warmup_steps)]
    lrs = _run(AdvancedPlateauMetaOptimizer(warmup_steps=warmup_steps), losses, lr=0.0)
    assert lrs == pytest.approx([0.1 * (s + 1) / warmup_steps for s in range(warmup_steps)])


def test_advanced_plateau_cuts_lr_on_a_flat_trend_before_patience_runs_out():
    # the loss keeps setting tiny new bests (patience never runs out) but improves < 1% over 3 updates
    losses = [1.0, 0.9999, 0.9998, 0.9997]
    meta = AdvancedPlateauMetaOptimizer(warmup_steps=0, patience=100, trend_window=3,
                                        min_relative_improvement=0.01)
    assert _run(meta, losses) == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_advanced_plateau_cuts_lr_after_patience_and_respects_min_lr():
    meta = AdvancedPlateauMetaOptimizer(warmup_steps=0, patience=2, lr_factor=0.1, min_lr=1e-3,
                                        min_relative_improvement=0.0)
    lrs = _run(meta, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs[2] == pytest.approx(0.01) and min(lrs) == pytest.approx(1e-3)


def test_advanced_plateau_raises_weight_decay_when_weights_grow():
    meta = AdvancedPlateauMetaOptimizer(warmup_steps=0, weight_norm_growth=0.05, weight_decay_step=1e-3)
    first = meta.update_hparams({"loss": 1.0, "lr": 0.1, "weight_decay": 0.0, "weight_norm": 10.0}, 0)
    grown = meta.update_hparams({"loss": 0.9, "lr": 0.1, "weight_decay": 0.0, "weight_norm": 11.0}, 1)
    assert first["weight_decay"] == 0.0 and grown["weight_decay"] == pytest.approx(1e-3)
