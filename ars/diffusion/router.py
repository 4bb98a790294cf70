"""A learned router over sampler experts: a policy that picks one arm (expert, step budget) per request.

Features: the dataset one-hot, lambda (the price of speed, as log10), and statistics of x_T.
Policy pi(a | f): a softmax over the arms on an MLP. It maximises the reward of a request

    R = -(quality distance) - lambda * NFE / 1000

by REINFORCE (Williams 1992) with group-normalised advantages: each request is answered by
``group_size`` arms drawn from the policy, and each arm's advantage is its reward minus the group
mean, divided by the group std (the leave-none-out baseline of RLOO / GRPO). Normalising within a
request, not across the batch, is what makes every lambda count: across a batch the rewards at
lambda = 30 (about -0.3) drown those at lambda = 0.01 (about -0.005), and the policy that learns
only the large-lambda requests answers every lambda the same (measured in
docs/benchmarks/diffusion_sampling.md). Lambda is drawn log-uniformly over the whole range during
training.

Example::

    router = Router()
    train_router(router, reward_fn, sample_request, iterations=200)
    decision = router.choose(request_features(request))
    decision.expert, decision.num_steps
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import TOY_NAMES

DATASETS = (*TOY_NAMES, "digits")
EXPERTS = ("ddpm", "ddim", "dpmpp_2m", "heun", "adaptive")
BUDGETS = (5, 10, 20, 50, 100)
NUM_FEATURES = len(DATASETS) + 1 + 4


@dataclass
class Request:
    """One sampling request: which model, how much speed is worth (lam), the noise to start from."""

    dataset: str
    lam: float
    x_T: torch.Tensor  # (N, D)


def request_features(request: Request) -> torch.Tensor:
    """[dataset one-hot, log10(lam) / 2, mean, std - 1, mean |x| - sqrt(2/pi), max |x| / 4] of x_T.  # (F,)"""
    if request.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} but got {request.dataset=}")
    if request.lam <= 0:
        raise ValueError(f"lam must be > 0 but got {request.lam=}")
    onehot = torch.zeros(len(DATASETS))
    onehot[DATASETS.index(request.dataset)] = 1.0
    x = request.x_T.float()
    stats = torch.stack([x.mean(), x.std() - 1, x.abs().mean() - math.sqrt(2 / math.pi), x.abs().max() / 4])
    return torch.cat([onehot, torch.tensor([math.log10(request.lam) / 2]), stats])


@dataclass
class Decision:
    expert: str
    num_steps: int
    log_prob: torch.Tensor  # log pi(a | f), differentiable
    entropy: torch.Tensor


def product_arms(experts: Sequence[str] = EXPERTS, budgets: Sequence[int] = BUDGETS) -> tuple[tuple[str, int], ...]:
    """Every (expert, budget) pair, experts outer."""
    return tuple((e, int(b)) for e in experts for b in budgets)


class Router(nn.Module):
    """Policy MLP: features (B, F) -> arm logits (B, A); ``arms`` defaults to EXPERTS x BUDGETS."""

    def __init__(self, experts=EXPERTS, budgets=BUDGETS, hidden: int = 64,
                 arms: Sequence[tuple[str, int]] | None = None) -> None:
        super().__init__()
        arms = tuple((str(e), int(n)) for e, n in (arms if arms is not None else product_arms(experts, budgets)))
        if not arms or any(n < 1 for _, n in arms) or len(set(arms)) != len(arms):
            raise ValueError(f"need distinct arms (expert, steps >= 1) but got {arms=}")
        self.arms, self.hidden = arms, hidden
        self.experts = tuple(dict.fromkeys(e for e, _ in arms))
        self.body = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, len(arms))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(features))

    def choose(self, features: torch.Tensor, *, greedy: bool = True,
               generator: torch.Generator | None = None) -> Decision:
        """Pick for one request (features (F,)): the argmax, or a draw from the policy."""
        logp = self(features[None])[0].log_softmax(-1)  # (A,)
        a = int(logp.argmax()) if greedy else int(torch.multinomial(logp.exp(), 1, generator=generator))
        expert, steps = self.arms[a]
        return Decision(expert, steps, logp[a], -(logp.exp() * logp).sum())

    def arm_probabilities(self, features: torch.Tensor) -> dict[tuple[str, int], float]:
        with torch.no_grad():
            return dict(zip(self.arms, self(features[None])[0].softmax(-1).tolist(), strict=True))

    def expert_probabilities(self, features: torch.Tensor) -> dict[str, float]:
        """pi(expert | f): the arm probabilities summed over step budgets."""
        out = dict.fromkeys(self.experts, 0.0)
        for (expert, _), p in self.arm_probabilities(features).items():
            out[expert] += p
        return out


def train_router(
    router: Router,
    reward_fn: Callable[[Request, str, int], float],
    sample_request: Callable[[torch.Generator], Request],
    *,
    iterations: int = 400,
    batch_size: int = 16,
    group_size: int = 4,
    lr: float = 3e-3,
    entropy_coef: float = 0.01,
    normalize: str = "group",
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """REINFORCE with group-normalised advantages; returns the mean reward of each iteration's draws.

    Each iteration draws ``batch_size`` requests and ``group_size`` arms from the policy for each;
    loss = -mean_{r, j} A_{r,j} log pi(a_{r,j} | f_r) - entropy_coef * H, with
    A_{r,j} = (R_{r,j} - mean_j R_{r,j}) / (std_j R_{r,j} + 1e-8): every request, whatever its
    lambda, pushes the policy with the same strength. ``normalize="batch"`` is the ablation that
    normalises over the whole batch instead, (R - mean R) / std R (what the first router did).
    """
    if iterations < 1 or batch_size < 1 or group_size < 2:
        raise ValueError(f"need iterations >= 1, batch_size >= 1, group_size >= 2 but got "
                         f"{iterations=}, {batch_size=}, {group_size=}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0 but got {lr=}")
    if normalize not in ("group", "batch"):
        raise ValueError(f"normalize must be 'group' or 'batch' but got {normalize=}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(router.parameters(), lr=lr)
    history = []
    for it in range(iterations):
        requests = [sample_request(g) for _ in range(batch_size)]
        feats = torch.stack([request_features(r) for r in requests])  # (B, F)
        logp = router(feats).log_softmax(-1)  # (B, A)
        arms = torch.multinomial(logp.detach().exp(), group_size, replacement=True, generator=g)  # (B, K)
        rewards = torch.tensor([[reward_fn(r, *router.arms[int(a)]) for a in row]
                                for r, row in zip(requests, arms, strict=True)])  # (B, K)
        if normalize == "group":
            adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-8)  # (B, K)
        else:
            adv = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
        entropy = -(logp.exp() * logp).sum(-1).mean()
        loss = -(adv * logp.gather(1, arms)).mean() - entropy_coef * entropy
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(rewards.mean()))
        if progress is not None:
            progress(it, history[-1])
    return history


def save_router(router: Router, path: str | Path, **meta) -> None:
    """Save config, state_dict and meta (plain types; loadable with weights_only=True)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    config = {"arms": [list(a) for a in router.arms], "hidden": router.hidden}
    torch.save({"config": config, "state_dict": router.state_dict(), "meta": meta}, path)


def load_router(path: str | Path) -> tuple[Router, dict]:
    """Inverse of ``save_router``; returns (router in eval mode, meta)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    router = Router(**blob["config"])
    router.load_state_dict(blob["state_dict"])
    router.eval()
    return router, blob.get("meta", {})
