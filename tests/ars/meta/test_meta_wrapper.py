"""OptimizerWrapper: pass-through, update_frequency counting, role-tagged group keys, state_dict."""

from __future__ import annotations

import pytest
import torch

from trainopt.ars.meta import MetaOptimizer, OptimizerWrapper, PlateauMetaOptimizer


class Recorder(MetaOptimizer):
    """Returns fixed changes and records the steps it was asked at."""

    name = "recorder"

    def __init__(self, changes: dict, update_frequency: int = 1):
        self.changes, self.asked = changes, []
        super().__init__(update_frequency)

    def update_hparams(self, metrics, step):
        self.asked.append((step, dict(metrics)))
        return dict(self.changes)


def _role_optimizer() -> torch.optim.Optimizer:
    gate, expert = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    return torch.optim.AdamW([{"params": [gate], "role": "gate", "lr": 0.1, "weight_decay": 0.0},
                              {"params": [expert], "role": "expert", "lr": 0.2, "weight_decay": 0.01}])


def test_meta_optimizer_is_asked_on_calls_zero_f_2f():
    # with update_frequency=3 the first call (0) and every third after it ask the meta-optimizer
    meta = Recorder({}, update_frequency=3)
    wrapper = OptimizerWrapper(_role_optimizer(), meta)
    for _ in range(7):
        wrapper.update_hyperparameters({"loss": 1.0})
    assert [step for step, _ in meta.asked] == [0, 3, 6]


def test_wrapper_adds_current_and_base_hyperparameters_of_the_reference_group():
    # the reference group is the first not tagged "gate": here the expert group
    meta = Recorder({})
    wrapper = OptimizerWrapper(_role_optimizer(), meta)
    wrapper.update_hyperparameters({"loss": 1.5, "grad_norm": 2.0})
    _, seen = meta.asked[0]
    assert seen == {"loss": 1.5, "grad_norm": 2.0, "lr": 0.2, "weight_decay": 0.01, "base_lr": 0.2,
                    "base_weight_decay": 0.01}


def test_role_keys_go_to_tagged_groups_and_global_keys_to_all():
    # lr goes everywhere first, then gate_lr / expert_weight_decay override the tagged groups
    changes = {"lr": 0.5, "gate_lr": 0.05, "expert_weight_decay": 0.02}
    wrapper = OptimizerWrapper(_role_optimizer(), Recorder(changes))
    assert wrapper.update_hyperparameters({"loss": 1.0}) == changes
    gate, expert = wrapper.param_groups
    assert (gate["lr"], gate["weight_decay"]) == (0.05, 0.0)
    assert (expert["lr"], expert["weight_decay"]) == (0.5, 0.02)


def test_role_key_without_a_tagged_group_raises():
    # a plain optimizer has no gate group to take gate_lr
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    wrapper = OptimizerWrapper(plain, Recorder({"gate_lr": 0.01}))
    with pytest.raises(ValueError, match="gate_lr=0.01"):
        wrapper.update_hyperparameters({"loss": 1.0})


def test_metrics_without_loss_raise():
    wrapper = OptimizerWrapper(_role_optimizer(), Recorder({}))
    with pytest.raises(ValueError, match="'loss'"):
        wrapper.update_hyperparameters({"grad_norm": 1.0})


def test_bad_optimizer_and_meta_optimizer_raise():
    with pytest.raises(ValueError, match="list"):
        OptimizerWrapper([], None)
    with pytest.raises(ValueError, match="str"):
        OptimizerWrapper(_role_optimizer(), "plateau")


def test_step_zero_grad_and_state_pass_through():
    # one AdamW step through the wrapper moves the parameter and fills the optimizer state
    param = torch.nn.Parameter(torch.ones(2))
    wrapper = OptimizerWrapper(torch.optim.AdamW([param], lr=0.1))
    param.sum().backward()
    wrapper.step()
    assert torch.all(param < 1) and param in wrapper.state
    wrapper.zero_grad()
    assert param.grad is None


def test_without_meta_optimizer_nothing_changes():
    wrapper = OptimizerWrapper(_role_optimizer())
    assert wrapper.update_hyperparameters({"loss": 1.0}) == {}
    assert [group["lr"] for group in wrapper.param_groups] == [0.1, 0.2]


def test_state_dict_round_trip_includes_meta_optimizer():
    # a fresh wrapper loaded from the state dict makes the same next LR decisions
    def build():
        return OptimizerWrapper(_role_optimizer(), PlateauMetaOptimizer(patience=2, update_frequency=2))

    losses = [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0]
    original = build()
    for loss in losses[:5]:
        original.update_hyperparameters({"loss": loss})
    state = original.state_dict()
    assert state["meta_optimizer"]["name"] == "plateau"
    fresh = build()
    fresh.load_state_dict(state)
    for loss in losses[5:]:
        assert fresh.update_hyperparameters({"loss": loss}) == original.update_hyperparameters({"loss": loss})
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in original.param_groups]
    assert original.param_groups[1]["lr"] < 0.2  # the plateau really cut the LR
