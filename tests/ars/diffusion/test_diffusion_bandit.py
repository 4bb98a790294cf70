"""TableRouter: the contextual bandit over measured (expert, steps) arms picks the best reward at every lambda."""

import json
import random

import pytest

from trainopt.ars.diffusion import TableRouter, train_table_router

# true mean distance and NFE of each arm: slow and good, medium, fast and bad
ARMS = {("ddim", 100): (0.004, 100), ("dpmpp_2m", 10): (0.006, 10), ("ddim", 5): (0.05, 5),
        ("heun", 50): (0.008, 99)}


def noisy_measure(seed=0, noise=0.0005):
    rng = random.Random(seed)

    def measure(dataset, expert, steps, k):
        mean, nfe = ARMS[(expert, steps)]
        return mean + rng.gauss(0, noise), nfe

    return measure


def trained(**kwargs) -> TableRouter:
    router = TableRouter(list(ARMS))
    train_table_router(router, noisy_measure(), ["moons"], [0.01, 0.1, 1, 10, 30], **kwargs)
    return router


@pytest.mark.parametrize("lam,best", [(0.001, ("ddim", 100)), (0.1, ("dpmpp_2m", 10)), (1.0, ("dpmpp_2m", 10)),
                                      (30.0, ("ddim", 5)), (1000.0, ("ddim", 5))])
def test_picks_the_arm_with_the_best_expected_reward(lam, best):
    # reward = -distance - lam * NFE / 1000; the pick moves with lambda.
    assert trained().choose("moons", lam) == best


def test_max_nfe_restricts_the_choice():
    # Best quality within 20 model calls: dpmpp_2m/10, not ddim/100.
    assert trained().choose("moons", 0.001, max_nfe=20) == ("dpmpp_2m", 10)


def test_racing_spends_extra_measurements_only_on_plausible_arms():
    router = trained(initial_pulls=2, max_pulls=6)
    # heun/50 is never best at any lambda of the grid (ddim/100 is better and cheaper):
    # it stays at its 2 initial measurements while the contenders (each best at some lambda) get more.
    assert router.pulls("moons", ("heun", 50)) == 2
    assert all(router.pulls("moons", arm) > 2 for arm in [("ddim", 100), ("dpmpp_2m", 10), ("ddim", 5)])


def test_unmeasured_dataset_raises_with_the_name():
    with pytest.raises(ValueError, match="8gaussians"):
        trained().choose("8gaussians", 1.0)


def test_round_trips_through_json():
    router = trained()
    loaded = TableRouter.from_dict(json.loads(json.dumps(router.to_dict())))
    # Same statistics, same choices.
    assert loaded.stats == router.stats
    assert all(loaded.choose("moons", lam) == router.choose("moons", lam) for lam in (0.01, 1, 100))


@pytest.mark.parametrize("arms", [[], [("ddim", 0)], [("ddim", 5), ("ddim", 5)]])
def test_rejects_bad_arms(arms):
    with pytest.raises(ValueError, match="arms"):
        TableRouter(arms)
