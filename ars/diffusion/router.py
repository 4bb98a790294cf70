"""A learned router over sampler experts: a gating network that picks (expert, step budget) per request.

Features: the dataset one-hot, lambda (the price of speed, as log10), and statistics of x_T.
Policy pi(e, n | f) = pi(e | f) pi(n | f), two softmax heads on a shared MLP, plus a value head
b(f) as the baseline. REINFORCE (Williams 1992) with a learned baseline maximises

    R = -(quality distance) - lambda * NFE / 1000.

Example::

    router = Router()
    train_router(router, reward_fn, sample_request, iterations=200)
    expert, steps = router.choose(request_features(request)).expert_and_steps
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    log_prob: torch.Tensor  # log pi(e, n | f), differentiable
    entropy: torch.Tensor


class Router(nn.Module):
    """Gating MLP: features (B, F) -> expert logits (B, E), budget logits (B, K), baseline (B,)."""

    def __init__(self, experts=EXPERTS, budgets=BUDGETS, hidden: int = 64) -> None:
        super().__init__()
        if not experts or not budgets or any(b < 1 for b in budgets):
            raise ValueError(f"need experts and budgets >= 1 but got {experts=}, {budgets=}")
        self.experts, self.budgets, self.hidden = tuple(experts), tuple(int(b) for b in budgets), hidden
        self.body = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.expert_head = nn.Linear(hidden, len(self.experts))
        self.budget_head = nn.Linear(hidden, len(self.budgets))
        self.value_head = nn.Linear(hidden, 1)

    def forward(self, features: torch.Tensor):
        h = self.body(features)
        return self.expert_head(h), self.budget_head(h), self.value_head(h).squeeze(-1)

    def choose(self, features: torch.Tensor, *, greedy: bool = True,
               generator: torch.Generator | None = None) -> Decision:
        """Pick for one request (features (F,)): the argmax, or a draw from the policy."""
        e_logits, b_logits, _ = self(features[None])
        e_logp, b_logp = e_logits[0].log_softmax(-1), b_logits[0].log_softmax(-1)
        if greedy:
            e, b = int(e_logp.argmax()), int(b_logp.argmax())
        else:
            e = int(torch.multinomial(e_logp.exp(), 1, generator=generator))
            b = int(torch.multinomial(b_logp.exp(), 1, generator=generator))
        entropy = -(e_logp.exp() * e_logp).sum() - (b_logp.exp() * b_logp).sum()
        return Decision(self.experts[e], self.budgets[b], e_logp[e] + b_logp[b], entropy)

    def expert_probabilities(self, features: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return dict(zip(self.experts, self(features[None])[0][0].softmax(-1).tolist(), strict=True))


def train_router(
    router: Router,
    reward_fn: Callable[[Request, str, int], float],
    sample_request: Callable[[torch.Generator], Request],
    *,
    iterations: int = 400,
    batch_size: int = 16,
    lr: float = 3e-3,
    entropy_coef: float = 0.03,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """REINFORCE with a learned baseline; returns the mean reward of each iteration's batch.

    Loss = -mean(A log pi) + 0.5 mean((b - R)^2) - entropy_coef * H, with A = R - b(f) scaled by
    the batch std of A (Adam makes the step size scale-free; the scaling keeps it comparable).
    """
    if iterations < 1 or batch_size < 2:
        raise ValueError(f"need iterations >= 1 and batch_size >= 2 but got {iterations=}, {batch_size=}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0 but got {lr=}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(router.parameters(), lr=lr)
    history = []
    for it in range(iterations):
        requests = [sample_request(g) for _ in range(batch_size)]
        feats = torch.stack([request_features(r) for r in requests])  # (B, F)
        decisions = [router.choose(f, greedy=False, generator=g) for f in feats]
        rewards = torch.tensor([reward_fn(r, d.expert, d.num_steps) for r, d in zip(requests, decisions,
                                                                                     strict=True)])
        values = router(feats)[2]  # (B,)
        adv = rewards - values.detach()
        adv = adv / (adv.std() + 1e-8)
        log_probs = torch.stack([d.log_prob for d in decisions])
        entropy = torch.stack([d.entropy for d in decisions]).mean()
        loss = -(adv * log_probs).mean() + 0.5 * (values - rewards).pow(2).mean() - entropy_coef * entropy
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
    config = {"experts": list(router.experts), "budgets": list(router.budgets), "hidden": router.hidden}
    torch.save({"config": config, "state_dict": router.state_dict(), "meta": meta}, path)


def load_router(path: str | Path) -> tuple[Router, dict]:
    """Inverse of ``save_router``; returns (router in eval mode, meta)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    router = Router(**blob["config"])
    router.load_state_dict(blob["state_dict"])
    router.eval()
    return router, blob.get("meta", {})
