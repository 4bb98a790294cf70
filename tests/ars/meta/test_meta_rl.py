"""RLMetaOptimizer: it really learns (REINFORCE), even when called under torch.no_grad()."""

from __future__ import annotations

import copy

import pytest
import torch

from trainopt.ars.meta import RLMetaOptimizer

TARGET = (0.5, -1e-5)  # the action the synthetic task rewards: halve the LR, lower the WD


def _train_on_rewarded_action(meta: RLMetaOptimizer, decisions: int) -> list[int]:
    """The loss drops by 1 after each TARGET action and stays put otherwise; return the chosen actions."""
    loss, chosen = 50.0, []
    for step in range(decisions):
        meta.update_hparams({"loss": loss, "lr": 1e-2, "weight_decay": 1e-3, "grad_norm": 1.0,
                             "progress": step / decisions}, step)
        action = meta.history[-1]["action"]
        chosen.append(action)
        loss -= 1.0 if meta.actions[action] == TARGET else 0.0
    return chosen


def _target_probability(meta: RLMetaOptimizer) -> float:
    state = [0.0] * 8
    return float(meta.action_probabilities(state)[meta.actions.index(TARGET)])


def test_probability_of_always_rewarded_action_rises_well_above_uniform():
    # uniform is 1/9; after 300 decisions (60 policy updates) the rewarded action dominates
    meta = RLMetaOptimizer(update_every=5, policy_lr=1e-2, seed=0)
    before = _target_probability(meta)
    chosen = _train_on_rewarded_action(meta, 300)
    assert before < 0.25
    assert _target_probability(meta) > 0.6
    assert sum(a == meta.actions.index(TARGET) for a in chosen[-50:]) > 25


def test_policy_learns_even_when_called_under_no_grad():
    # the log-probs are built under enable_grad, so the caller's no_grad does not silently stop learning
    meta = RLMetaOptimizer(update_every=5, seed=1)
    initial = copy.deepcopy(meta.policy.state_dict())
    with torch.no_grad():
        _train_on_rewarded_action(meta, 100)
    assert meta.policy_updates == 19  # 99 rewards (the last action is never rewarded), 5 per update
    changed = [not torch.equal(initial[k], v) for k, v in meta.policy.state_dict().items()]
    assert all(changed)
    assert _target_probability(meta) > 1 / 9


def test_frozen_policy_does_not_change():
    meta = RLMetaOptimizer(update_every=2, seed=2)
    meta.learning = False
    initial = copy.deepcopy(meta.policy.state_dict())
    _train_on_rewarded_action(meta, 20)
    assert meta.policy_updates == 0
    assert all(torch.equal(initial[k], v) for k, v in meta.policy.state_dict().items())


def test_returned_lr_and_weight_decay_are_clamped():
    # lr stays within [1e-7, 1] and weight decay within [0, 1e-2] whatever the action
    meta = RLMetaOptimizer(lr_factors=(4.0,), wd_deltas=(-1.0,), seed=0)
    out = meta.update_hparams({"loss": 1.0, "lr": 0.5, "weight_decay": 1e-3}, 0)
    assert out == {"lr": 1.0, "weight_decay": 0.0}
    meta = RLMetaOptimizer(lr_factors=(1e-3,), wd_deltas=(1.0,), seed=0)
    out = meta.update_hparams({"loss": 1.0, "lr": 1e-6, "weight_decay": 1e-3}, 0)
    assert out == {"lr": pytest.approx(1e-7), "weight_decay": 1e-2}


def test_features_are_bounded_even_for_extreme_metrics():
    meta = RLMetaOptimizer()
    for metrics in ({"loss": 1e9, "lr": 10.0, "weight_decay": 1.0, "grad_norm": 1e12, "cost": 1e6,
                     "progress": 3},
                    {"loss": float("nan"), "lr": 0.0, "weight_decay": 0.0, "grad_norm": 0.0, "progress": -1}):
        features = meta.observe(metrics)
        assert len(features) == 8 and all(-1.0 <= f <= 1.0 for f in features)


def test_reset_learns_from_the_rest_of_the_buffer_then_keeps_the_policy():
    # 28 decisions give 27 rewards: 5 updates of 5, 2 rewards left for the end of the episode
    meta = RLMetaOptimizer(update_every=5, seed=0)
    _train_on_rewarded_action(meta, 28)
    assert (meta.policy_updates, len(meta.buffer)) == (5, 2)
    meta.reset()
    assert meta.policy_updates == 6 and meta.buffer == []
    assert meta.pending is None and meta.initial_loss is None
    learned = copy.deepcopy(meta.policy.state_dict())
    meta.reset()  # nothing left to learn from: the policy stays as it is
    assert all(torch.equal(learned[k], v) for k, v in meta.policy.state_dict().items())


def _train_on_delayed_reward(meta: RLMetaOptimizer, decisions: int) -> None:
    """The loss drops by 1 two calls after a TARGET action: its one-step reward is always 0."""
    loss, chosen = 50.0, []
    for step in range(decisions):
        if step >= 2 and meta.actions[chosen[step - 2]] == TARGET:
            loss -= 1.0
        meta.update_hparams({"loss": loss, "lr": 1e-2, "weight_decay": 1e-3}, step)
        chosen.append(meta.history[-1]["action"])


def test_discount_credits_a_delayed_reward_that_one_step_credit_misses():
    # with discount 0.9 the delayed payoff reaches the action that caused it; with 0 it cannot
    delayed = RLMetaOptimizer(update_every=10, discount=0.9, seed=0)
    one_step = RLMetaOptimizer(update_every=10, discount=0.0, seed=0)
    _train_on_delayed_reward(delayed, 400)
    _train_on_delayed_reward(one_step, 400)
    assert _target_probability(delayed) > 0.4
    assert _target_probability(delayed) > 2 * _target_probability(one_step)


def _episode(meta: RLMetaOptimizer, decisions: int = 20) -> float:
    """One episode; its score is the fraction of decisions that lowered the LR (the synthetic 'good schedule')."""
    meta.reset()
    lr, lowered = 1e-2, 0
    for step in range(decisions):
        lr_next = meta.update_hparams({"loss": 1.0, "lr": lr, "weight_decay": 0.0, "progress": step / decisions},
                                      step)["lr"]
        lowered += lr_next < lr
        lr = lr_next
    return lowered / decisions


def test_episode_reward_raises_the_probability_of_the_action_that_scores_well():
    # Only the episode's final score tells the policy which action was good; 30 groups of 4 episodes.
    meta = RLMetaOptimizer(lr_factors=(0.8, 1.0, 1.25), wd_deltas=(0.0,), reward="episode", group_size=4,
                           policy_lr=3e-2, seed=0, max_lr=1.0)
    state = meta.observe({"loss": 1.0, "lr": 1e-2, "weight_decay": 0.0, "progress": 0.5})
    before = float(meta.action_probabilities(state)[0])
    for _ in range(120):
        meta.end_episode(_episode(meta))
    # From 1/3 to a clear majority for the LR factor 0.8; 30 policy updates.
    assert meta.policy_updates == 30
    assert before < 0.5 and float(meta.action_probabilities(state)[0]) > 0.7


def test_max_lr_caps_every_returned_lr():
    # The probed safe range ends at 1e-2: a factor 1.25 from 9e-3 returns 1e-2, not 1.125e-2.
    meta = RLMetaOptimizer(lr_factors=(1.25,), wd_deltas=(0.0,), reward="episode", max_lr=1e-2, seed=0)
    assert meta.update_hparams({"loss": 1.0, "lr": 9e-3, "weight_decay": 0.0}, 0)["lr"] == pytest.approx(1e-2)


def test_episode_mode_keeps_decisions_until_the_episode_ends():
    meta = RLMetaOptimizer(reward="episode", group_size=2, seed=0)
    _episode(meta, 7)
    # No per-step learning: 7 decisions stored, nothing learned until two episodes are closed.
    assert len(meta.buffer) == 7 and meta.policy_updates == 0
    meta.end_episode(0.1)
    assert meta.buffer == [] and len(meta.episodes) == 1 and meta.policy_updates == 0
    meta.end_episode(_episode(meta, 7))
    assert meta.episodes == [] and meta.policy_updates == 1


def test_episode_state_round_trips_through_state_dict():
    meta = RLMetaOptimizer(reward="episode", group_size=3, seed=0)
    meta.end_episode(_episode(meta, 5))
    clone = RLMetaOptimizer(reward="episode", group_size=3, seed=0)
    clone.load_state_dict(meta.state_dict())
    # The open group (one closed episode) survives the round trip.
    assert len(clone.episodes) == 1 and clone.episodes[0][1] == meta.episodes[0][1]


@pytest.mark.parametrize("kwargs", [{"reward": "final"}, {"max_lr": 0.0}, {"group_size": 1}, {"episode_updates": 0}])
def test_episode_settings_are_validated(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RLMetaOptimizer(**kwargs)


def test_end_episode_needs_the_episode_reward():
    with pytest.raises(ValueError, match="reward='episode'"):
        RLMetaOptimizer().end_episode(1.0)
