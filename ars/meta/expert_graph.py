"""ExpertGraph: a small mixture-of-experts classifier with top-k routing and a learnable expert graph."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class ExpertGraph(nn.Module):
    """Gate -> top-k experts, reweighted by a learnable expert-to-expert adjacency, -> shared head.

    For a batch ``x`` (B, D_in):

        p      = softmax(W_g x + b_g)                           # (B, E) gate probabilities
        m      = top-k mask of p                                 # (B, E) 1 on the k chosen experts
        w      = m p / sum(m p)                                  # (B, E) plain top-k weights
        s      = w (A - diag A)                                  # (B, E) support from other chosen experts
        w'     = m softmax(log w + s) over the chosen experts    # (B, E) graph-reweighted weights
        h_e    = W2_e gelu(W1_e x + b1_e) + b2_e                 # (B, E, H) every expert, batched
        y      = head(sum_e w'_e h_e)                            # (B, num_classes)

    ``A`` (E, E) starts at zero (plain top-k) and is learned; a positive ``A[i, j]`` raises expert
    ``j``'s weight when ``i`` is chosen beside it. Parameters carry a role: the gate and ``A`` are
    ``"gate"``, the experts and the head ``"expert"``; ``param_groups`` builds optimizer groups from
    them. After every forward, ``routing_stats`` holds the batch's ``gate_entropy`` (mean entropy of
    ``p`` over ``log E``, in [0, 1]), ``routing_sparsity`` (share of gate mass on the chosen experts,
    rescaled from [k/E, 1] to [0, 1]) and ``expert_usage`` (fraction of routed slots per expert,
    sums to 1).

    Examples:
        >>> model = ExpertGraph(in_features=64, num_classes=10, num_experts=4, hidden=16, top_k=2)
        >>> model(torch.randn(5, 64)).shape
        torch.Size([5, 10])
        >>> sorted(model.routing_stats)
        ['expert_usage', 'gate_entropy', 'routing_sparsity']
        >>> opt = torch.optim.AdamW(model.param_groups(lr=1e-3, weight_decay=1e-4))
        >>> [group["role"] for group in opt.param_groups]
        ['gate', 'expert']
    """

    def __init__(self, in_features: int, num_classes: int, num_experts: int = 8, hidden: int = 64,
                 top_k: int = 2):
        super().__init__()
        for key, value in {"in_features": in_features, "num_classes": num_classes, "hidden": hidden}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an int >= 1 but got {key}={value!r}")
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 2:
            raise ValueError(f"num_experts must be an int >= 2 but got {num_experts=!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be an int in [1, num_experts={num_experts}] but got {top_k=!r}")
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = nn.Linear(in_features, num_experts)
        self.adjacency = nn.Parameter(torch.zeros(num_experts, num_experts))  # (E, E)
        bound1, bound2 = 1 / math.sqrt(in_features), 1 / math.sqrt(hidden)
        self.w1 = nn.Parameter(torch.empty(num_experts, in_features, hidden).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.zeros(num_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, hidden).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.zeros(num_experts, hidden))
        self.head = nn.Linear(hidden, num_classes)
        self.routing_stats: dict[str, Any] = {}

    def parameter_roles(self) -> dict[str, str]:
        """Parameter name -> ``"gate"`` or ``"expert"``."""
        return {name: "gate" if name.startswith(("gate.", "adjacency")) else "expert"
                for name, _ in self.named_parameters()}

    def param_groups(self, lr: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        """Optimizer groups ``[{"role": "gate", ...}, {"role": "expert", ...}]`` with the given LR, WD."""
        if not lr > 0:
            raise ValueError(f"lr must be > 0 but got {lr=}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0 but got {weight_decay=}")
        roles = self.parameter_roles()
        params = dict(self.named_parameters())
        return [{"params": [params[n] for n, r in roles.items() if r == role], "role": role, "lr": lr,
                 "weight_decay": weight_decay} for role in ("gate", "expert")]

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate probabilities ``p`` (B, E) and graph-reweighted top-k weights ``w'`` (B, E)."""
        probs = torch.softmax(self.gate(x), dim=-1)  # (B, E)
        top = probs.topk(self.top_k, dim=-1).indices  # (B, k)
        mask = torch.zeros_like(probs).scatter_(1, top, 1.0)  # (B, E)
        weights = mask * probs
        weights = weights / weights.sum(-1, keepdim=True)
        off_diagonal = self.adjacency * (1 - torch.eye(self.num_experts, device=x.device))
        support = weights @ off_diagonal  # (B, E)
        scores = torch.where(mask.bool(), torch.log(weights.clamp_min(1e-12)) + support, -torch.inf)
        return probs, torch.softmax(scores, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs, weights = self.route(x)  # (B, E), (B, E)
        hidden = torch.nn.functional.gelu(torch.einsum("bd,edh->beh", x, self.w1) + self.b1)  # (B, E, H)
        experts = torch.einsum("beh,ehk->bek", hidden, self.w2) + self.b2  # (B, E, H)
        mixed = (weights[..., None] * experts).sum(1)  # (B, H)
        self._record_stats(probs, weights)
        return self.head(mixed)

    @torch.no_grad()
    def _record_stats(self, probs: torch.Tensor, weights: torch.Tensor) -> None:
        num_experts, k = self.num_experts, self.top_k
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean() / math.log(num_experts)
        top_mass = probs.topk(k, dim=-1).values.sum(-1).mean()
        sparsity = 1.0 if k == num_experts else (top_mass - k / num_experts) / (1 - k / num_experts)
        usage = (weights > 0).float().sum(0)
        self.routing_stats = {"gate_entropy": float(entropy.clamp(0, 1)),
                              "routing_sparsity": float(torch.as_tensor(sparsity).clamp(0, 1)),
                              "expert_usage": (usage / usage.sum()).tolist()}
