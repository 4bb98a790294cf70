"""RLMetaOptimizer: a REINFORCE policy that picks LR factors and weight-decay deltas from training state."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import torch
from torch import nn

from ._validate import require_int, require_non_negative, require_positive
from .base import MetaOptimizer

NUM_FEATURES = 8
LR_RANGE = (1e-7, 1.0)
WEIGHT_DECAY_RANGE = (0.0, 1e-2)
MAX_ADVANTAGE = 5.0  # normalised advantages are clipped to +-5


class RLMetaOptimizer(MetaOptimizer):
    """REINFORCE (Williams 1992) over the actions ``lr_factors x wd_deltas``, learning while it is used.

    State (8 features, each in [-1, 1]): loss relative to the episode's first loss
    ``tanh(log(L / L_0))``, log-LR ``(log10 lr + 3.5) / 3.5``, gradient norm ``tanh(log10 g / 2)``,
    weight decay ``2 wd / 1e-2 - 1``, ``tanh(cost)``, loss trend ``tanh(10 (L_t - L_{t-w}) / |L_{t-w}|)``,
    gradient-norm trend ``tanh(log(g_t / g_{t-1}))``, progress ``2 p - 1``. Policy: MLP
    8 -> hidden -> hidden -> |actions| (tanh), softmax. Each call samples an action and returns
    ``lr = clamp(lr * factor, 1e-7, 1)``, ``weight_decay = clamp(wd + delta, 0, 1e-2)``. The next
    call's reward ``r = (L_prev - L) + cost_weight * (C_prev - C)`` (clipped to +-``reward_clip``, the
    lower bound when not finite, so one loss spike cannot drown every other signal) is
    credited to that action. Every ``update_every`` rewards the policy takes one gradient step on

        J = -mean_i (G_i - b) / s * log pi(a_i | x_i)  -  entropy_weight * mean_i H(pi(. | x_i))

    where ``G_i = r_i`` with the default ``discount=0`` (one-step credit, as the issue specifies), or
    ``G_i = r_i + discount * G_{i+1}`` cut at the end of the ``update_every`` buffer, so an LR
    change is also judged by what it does to the next few decisions' progress. ``b`` and ``s`` are
    the moving average and moving standard deviation of the returns *before* ``G_i``
    (``baseline_decay``; the normalised advantage is clipped to +-5), Adam (``policy_lr``) and
    gradient clipping at ``max_grad_norm``. The log-probabilities
    are recomputed from the stored (state, action) pairs under ``torch.enable_grad()`` so they keep
    their graph even when the caller runs under ``torch.no_grad()``; the policy has not changed since
    those actions were sampled (the buffer is emptied on every update), so this is exact on-policy
    REINFORCE and the buffer stays serialisable.

    ``reward="episode"`` judges a whole training run instead (what the one-step reward got wrong:
    it credits each action with the next few steps, so the policy learns to raise the LR until the
    loss turns up). Every decision of an episode is stored; ``end_episode(score)`` closes it with
    one score (e.g. minus the log of a held-out loss at the end of the run). Every ``group_size``
    episodes (run on the same data seed: common random numbers) the policy takes
    ``episode_updates`` Adam steps on

        J = -sum_k A_k mean_i log pi(a_ki | x_ki) / K  -  entropy_weight * H,
        A_k = (S_k - mean_j S_j) / (std_j S_j + 1e-8)   (clipped to +-5)

    a group-relative baseline (RLOO / GRPO style) that cancels what the seed alone decides.
    ``max_lr`` caps the LR (the top of the probed safe range: the policy may lower the LR and raise
    it back, never above it); with small ``lr_factors`` near 1 the action set stays conservative.

    Reads ``loss``, ``lr``, ``weight_decay`` and optionally ``grad_norm``, ``cost``, ``progress``.
    Without ``weight_decay`` (called alone, not through ``OptimizerWrapper``) it is observed as 0
    and only ``{"lr"}`` is returned; a missing ``loss`` or ``lr`` is a HyperparameterError.
    ``reset()`` ends the episode (a learning policy first learns from the rewards left in its
    buffer) and starts a new one, keeping what the policy learned (weights, Adam, baseline);
    set ``learning = False`` to freeze the policy, ``greedy = True`` to take the most likely action.

    Examples:
        >>> meta = RLMetaOptimizer(seed=0)
        >>> out = meta.update_hparams({"loss": 2.3, "lr": 1e-3, "weight_decay": 0.0}, step=0)
        >>> sorted(out)
        ['lr', 'weight_decay']
    """

    name = "rl"
    _state_keys = ("pending", "prev_loss", "prev_cost", "prev_grad_norm", "initial_loss", "recent_losses",
                   "buffer")

    def __init__(self, lr_factors=(0.5, 1.0, 2.0), wd_deltas=(-1e-5, 0.0, 1e-5), hidden: int = 32,
                 update_every: int = 5, entropy_weight: float = 0.01, policy_lr: float = 1e-2,
                 baseline_decay: float = 0.9, max_grad_norm: float = 1.0, cost_weight: float = 0.1,
                 reward_clip: float = 1.0, discount: float = 0.0, trend_window: int = 5, seed: int = 0,
                 update_frequency: int = 1, reward: str = "step", max_lr: float | None = None,
                 group_size: int = 4, episode_updates: int = 1):
        lr_factors, wd_deltas = tuple(lr_factors), tuple(wd_deltas)
        if not lr_factors or not all(isinstance(f, (int, float)) and f > 0 for f in lr_factors):
            raise ValueError(f"lr_factors must be a non-empty sequence of numbers > 0 but got {lr_factors=}")
        if not wd_deltas or not all(isinstance(d, (int, float)) and math.isfinite(d) for d in wd_deltas):
            raise ValueError(f"wd_deltas must be a non-empty sequence of finite numbers but got {wd_deltas=}")
        require_int(1, hidden=hidden, update_every=update_every)
        require_int(2, trend_window=trend_window)
        require_int(0, seed=seed)
        require_non_negative(entropy_weight=entropy_weight, cost_weight=cost_weight)
        require_positive(policy_lr=policy_lr, max_grad_norm=max_grad_norm, reward_clip=reward_clip)
        if not isinstance(discount, (int, float)) or not 0 <= discount < 1:
            raise ValueError(f"discount must be in [0, 1) but got {discount=!r}")
        if not isinstance(baseline_decay, (int, float)) or not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1) but got {baseline_decay=!r}")
        if reward not in ("step", "episode"):
            raise ValueError(f"reward must be 'step' or 'episode' but got {reward=!r}")
        if max_lr is not None:
            require_positive(max_lr=max_lr)
        require_int(2, group_size=group_size)
        require_int(1, episode_updates=episode_updates)
        self.reward_mode, self.max_lr = reward, max_lr
        self.group_size, self.episode_updates = group_size, episode_updates
        self.episodes: list[tuple[list, float]] = []  # finished episodes of the current group: (decisions, score)
        self.lr_factors, self.wd_deltas = lr_factors, wd_deltas
        self.actions = list(itertools.product(lr_factors, wd_deltas))  # index -> (lr factor, wd delta)
        self.update_every, self.entropy_weight, self.policy_lr = update_every, entropy_weight, policy_lr
        self.baseline_decay, self.max_grad_norm = baseline_decay, max_grad_norm
        self.cost_weight, self.trend_window, self.reward_clip = cost_weight, trend_window, reward_clip
        self.discount = discount
        self.learning, self.greedy = True, False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                        nn.Tanh(), nn.Linear(hidden, len(self.actions)))
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=policy_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None  # moving average of rewards
        self.reward_var = 1.0  # moving variance of rewards around the baseline
        self.policy_updates = 0
        self.history: list[dict[str, float]] = []  # one entry per decision: step, action, reward
        super().__init__(update_frequency)

    def reset(self) -> None:
        if self.learning and getattr(self, "buffer", None) and self.reward_mode == "step":
            self._learn()  # the episode's last rewards: their returns end with the episode
        super().reset()

    def _fresh_state(self) -> dict[str, Any]:
        return {"pending": None, "prev_loss": None, "prev_cost": 0.0, "prev_grad_norm": None,
                "initial_loss": None, "recent_losses": [], "buffer": []}

    # --- acting -------------------------------------------------------------------------------
    def update_hparams(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        self.require(metrics, "loss", "lr")  # a HyperparameterError naming a missing one
        if metrics.get("weight_decay") is None:  # called alone: weight decay observed as 0, only lr returned
            return {"lr": self.update_hparams({**metrics, "weight_decay": 0.0}, step)["lr"]}
        loss, cost = float(metrics["loss"]), float(metrics.get("cost", 0.0))
        features = self.observe(metrics)
        if self.reward_mode == "episode":
            action = self._choose(features)
            if self.learning:
                self.buffer.append((features, action))
            self.history.append({"step": step, "action": action, "reward": math.nan})
            return self._apply(metrics, action)
        if self.pending is not None:
            reward = (self.prev_loss - loss) + self.cost_weight * (self.prev_cost - cost)
            if not math.isfinite(reward):
                reward = -self.reward_clip
            reward = min(max(reward, -self.reward_clip), self.reward_clip)
            self.history[-1]["reward"] = reward
            if self.learning:
                self.buffer.append((self.pending[0], self.pending[1], reward))
                if len(self.buffer) >= self.update_every:
                    self._learn()
        action = self._choose(features)
        self.pending = (features, action)
        self.prev_loss, self.prev_cost = loss, cost
        self.history.append({"step": step, "action": action, "reward": math.nan})
        return self._apply(metrics, action)

    def _apply(self, metrics: dict[str, Any], action: int) -> dict[str, float]:
        factor, delta = self.actions[action]
        lr = min(max(float(metrics["lr"]) * factor, LR_RANGE[0]), LR_RANGE[1], self.max_lr or LR_RANGE[1])
        weight_decay = float(metrics["weight_decay"]) + delta
        weight_decay = min(max(weight_decay, WEIGHT_DECAY_RANGE[0]), WEIGHT_DECAY_RANGE[1])
        return {"lr": lr, "weight_decay": weight_decay}

    def action_probabilities(self, features: list[float]) -> torch.Tensor:
        """The policy's distribution over ``self.actions`` for one state, shape (|actions|,)."""
        with torch.no_grad():
            return torch.softmax(self.policy(torch.tensor([features], dtype=torch.float32))[0], dim=-1)

    def _choose(self, features: list[float]) -> int:
        probs = self.action_probabilities(features)
        if self.greedy:
            return int(probs.argmax())
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def observe(self, metrics: dict[str, Any]) -> list[float]:
        """The 8 state features, each in [-1, 1]; updates the episode's loss and gradient history."""
        loss = float(metrics["loss"])
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = loss
        grad_norm = metrics.get("grad_norm")
        grad_norm = None if grad_norm is None else float(grad_norm)
        self.recent_losses = (self.recent_losses + [loss])[-self.trend_window:]
        oldest = self.recent_losses[0]
        values = [
            math.tanh(math.log(max(loss, 1e-12) / max(self.initial_loss or loss, 1e-12))),
            (math.log10(max(float(metrics["lr"]), 1e-12)) + 3.5) / 3.5,
            0.0 if grad_norm is None else math.tanh(math.log10(max(grad_norm, 1e-12)) / 2),
            2 * float(metrics["weight_decay"]) / WEIGHT_DECAY_RANGE[1] - 1,
            math.tanh(float(metrics.get("cost", 0.0))),
            math.tanh(10 * (loss - oldest) / max(abs(oldest), 1e-12)),
            0.0 if grad_norm is None or self.prev_grad_norm is None
            else math.tanh(math.log(max(grad_norm, 1e-12) / max(self.prev_grad_norm, 1e-12))),
            2 * float(metrics.get("progress", 0.5)) - 1,
        ]
        self.prev_grad_norm = grad_norm
        return [min(max(v, -1.0), 1.0) if math.isfinite(v) else 0.0 for v in values]

    # --- learning -----------------------------------------------------------------------------
    def end_episode(self, score: float) -> None:
        """Close the episode with its ``score`` (higher is better); learn once ``group_size`` are closed.

        A non-finite score counts as worse than every finite score of its group.
        """
        if self.reward_mode != "episode":
            raise ValueError(f"end_episode needs reward='episode' but this policy has {self.reward_mode=!r}")
        if self.learning and self.buffer:
            self.episodes.append((self.buffer, float(score)))
        self.buffer = []
        if len(self.episodes) >= self.group_size:
            self._learn_episodes()

    def _learn_episodes(self) -> None:
        scores = torch.tensor([s for _, s in self.episodes], dtype=torch.float64)  # (K,)
        finite = scores[torch.isfinite(scores)]
        floor = float(finite.min()) - 1.0 if len(finite) else 0.0
        scores = torch.where(torch.isfinite(scores), scores, torch.full_like(scores, floor))
        adv = ((scores - scores.mean()) / (scores.std() + 1e-8)).clamp(-MAX_ADVANTAGE, MAX_ADVANTAGE).float()
        for _ in range(self.episode_updates):
            with torch.enable_grad():
                terms, entropies = [], []
                for (decisions, _), a in zip(self.episodes, adv, strict=True):
                    features = torch.tensor([f for f, _ in decisions], dtype=torch.float32)  # (N, 8)
                    actions = torch.tensor([act for _, act in decisions])  # (N,)
                    log_probs = torch.log_softmax(self.policy(features), dim=-1)  # (N, A)
                    terms.append(a * log_probs.gather(1, actions[:, None])[:, 0].mean())
                    entropies.append(-(log_probs.exp() * log_probs).sum(-1).mean())
                objective = -torch.stack(terms).mean() - self.entropy_weight * torch.stack(entropies).mean()
                self.policy_optimizer.zero_grad(set_to_none=True)
                objective.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy_optimizer.step()
            self.policy_updates += 1
        self.episodes = []

    def _advantage(self, reward: float) -> float:
        """``(G - b) / s`` against the moving baseline and spread *before* this return, then update both."""
        if self.baseline is None:  # the first reward sets the scale and teaches nothing
            self.baseline, self.reward_var = reward, max(reward ** 2, 1e-8)
            return 0.0
        advantage = (reward - self.baseline) / math.sqrt(self.reward_var + 1e-12)
        decay = self.baseline_decay
        self.baseline = decay * self.baseline + (1 - decay) * reward
        self.reward_var = max(decay * self.reward_var + (1 - decay) * (reward - self.baseline) ** 2, 1e-12)
        return min(max(advantage, -MAX_ADVANTAGE), MAX_ADVANTAGE)

    def _learn(self) -> None:
        features = torch.tensor([f for f, _, _ in self.buffer], dtype=torch.float32)  # (N, 8)
        actions = torch.tensor([a for _, a, _ in self.buffer])  # (N,)
        returns, running = [], 0.0
        for _, _, reward in reversed(self.buffer):  # G_i = r_i + discount * G_{i+1}, cut at the buffer's end
            running = reward + self.discount * running
            returns.append(running)
        advantages = torch.tensor([self._advantage(g) for g in reversed(returns)], dtype=torch.float32)  # (N,)
        with torch.enable_grad():  # the log-probs must keep their graph, whatever the caller's mode
            log_probs = torch.log_softmax(self.policy(features), dim=-1)  # (N, A)
            chosen = log_probs.gather(1, actions[:, None])[:, 0]  # (N,)
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
            objective = -(advantages * chosen).mean() - self.entropy_weight * entropy
            self.policy_optimizer.zero_grad(set_to_none=True)
            objective.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy_optimizer.step()
        self.policy_updates += 1
        self.buffer = []

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(policy=copy.deepcopy(self.policy.state_dict()),
                     policy_optimizer=copy.deepcopy(self.policy_optimizer.state_dict()),
                     generator=self.generator.get_state(), baseline=self.baseline, reward_var=self.reward_var,
                     policy_updates=self.policy_updates, history=copy.deepcopy(self.history),
                     learning=self.learning, greedy=self.greedy, episodes=copy.deepcopy(self.episodes))
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.policy.load_state_dict(state_dict["policy"])
        self.policy_optimizer.load_state_dict(state_dict["policy_optimizer"])
        self.generator.set_state(state_dict["generator"])
        self.baseline, self.reward_var = state_dict["baseline"], state_dict["reward_var"]
        self.policy_updates, self.history = state_dict["policy_updates"], copy.deepcopy(state_dict["history"])
        self.learning, self.greedy = state_dict["learning"], state_dict["greedy"]
        self.episodes = copy.deepcopy(state_dict.get("episodes", []))
