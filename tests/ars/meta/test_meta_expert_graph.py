"""ExpertGraph: shapes, routing statistics, role-tagged parameter groups, the adjacency's effect."""

from __future__ import annotations

import pytest
import torch

from trainopt.ars.meta import ExpertGraph


def test_forward_shape_and_routing_stats_ranges():
    model = ExpertGraph(in_features=6, num_classes=3, num_experts=4, hidden=8, top_k=2)
    out = model(torch.randn(5, 6))  # (B, C)
    stats = model.routing_stats
    assert out.shape == (5, 3)
    assert 0.0 <= stats["gate_entropy"] <= 1.0 and 0.0 <= stats["routing_sparsity"] <= 1.0
    assert len(stats["expert_usage"]) == 4 and sum(stats["expert_usage"]) == pytest.approx(1.0)
    assert all(u >= 0 for u in stats["expert_usage"])


def test_routing_weights_sit_on_exactly_top_k_experts_and_sum_to_one():
    model = ExpertGraph(in_features=6, num_classes=3, num_experts=5, hidden=8, top_k=2)
    _, weights = model.route(torch.randn(7, 6))  # (B, E)
    assert torch.all((weights > 0).sum(-1) == 2)
    assert torch.allclose(weights.sum(-1), torch.ones(7))


def test_adjacency_reweights_the_selected_experts():
    # a positive link 0 -> 1 moves weight onto expert 1 whenever both are selected
    model = ExpertGraph(in_features=4, num_classes=2, num_experts=2, hidden=4, top_k=2)
    x = torch.randn(3, 4)
    _, before = model.route(x)
    with torch.no_grad():
        model.adjacency[0, 1] = 5.0
    _, after = model.route(x)
    assert torch.all(after[:, 1] > before[:, 1])


def test_uniform_gate_has_full_entropy_and_zero_sparsity():
    model = ExpertGraph(in_features=4, num_classes=2, num_experts=4, hidden=4, top_k=1)
    with torch.no_grad():
        model.gate.weight.zero_()
        model.gate.bias.zero_()
    model(torch.randn(8, 4))
    assert model.routing_stats["gate_entropy"] == pytest.approx(1.0)
    assert model.routing_stats["routing_sparsity"] == pytest.approx(0.0, abs=1e-6)


def test_param_groups_split_every_parameter_into_gate_and_expert():
    model = ExpertGraph(in_features=4, num_classes=2, num_experts=3, hidden=4)
    groups = model.param_groups(lr=1e-3, weight_decay=1e-4)
    assert [g["role"] for g in groups] == ["gate", "expert"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert {id(model.adjacency), id(model.gate.weight)} <= {id(p) for p in groups[0]["params"]}


def test_gradients_reach_gate_adjacency_and_experts():
    model = ExpertGraph(in_features=4, num_classes=2, num_experts=3, hidden=4, top_k=2)
    model(torch.randn(6, 4)).sum().backward()
    for name in ("gate.weight", "adjacency", "w1", "head.weight"):
        assert dict(model.named_parameters())[name].grad is not None


BAD_ARGS = [({"num_experts": 1}, "num_experts=1"), ({"top_k": 9}, "top_k=9"), ({"hidden": 0}, "hidden=0")]


@pytest.mark.parametrize(("kwargs", "named"), BAD_ARGS)
def test_bad_arguments_raise_value_error(kwargs, named):
    with pytest.raises(ValueError, match=named):
        ExpertGraph(**{"in_features": 4, "num_classes": 2, **kwargs})
