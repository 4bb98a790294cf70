"""route_and_sample: the bandit's pick honours the speed weight and the NFE cap, and its table is cached."""

import pytest
import torch

from trainopt.ars.diffusion import NoisePredictor, NoisePredictorConfig, route_and_sample, save_checkpoint


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A tiny moons model where the library looks for its 3000-step DDPM, so nothing trains for minutes."""
    path = tmp_path_factory.mktemp("diffusion")
    torch.manual_seed(0)
    save_checkpoint(NoisePredictor(NoisePredictorConfig(data_dim=2, hidden=16, depth=1, time_dim=8)),
                    path / "moons-3000.pt", data="moons", steps=3000)
    return path


def route(cache_dir, speed_weight, **kwargs):
    return route_and_sample("moons", speed_weight, n=50, cache_dir=cache_dir, distilled=False, pool_n=40, **kwargs)


def test_a_high_speed_weight_picks_the_cheapest_arms(cache_dir):
    out = route(cache_dir, 1e4)
    # At lambda = 10^4 every model call costs 10 energy units: a 5-call arm wins, and the samples are scored.
    assert out["nfe"] == 5
    assert out["samples"].shape == (50, 2) and out["energy"] >= 0 and out["floor_energy"] >= 0


def test_best_quality_within_a_cap_stays_within_the_cap(cache_dir):
    out = route(cache_dir, 1e-3, max_nfe=20)
    # "Best quality in 20 steps": the pick costs at most 20 model calls, counted.
    assert out["nfe"] <= 20 and out["expected"]["nfe"] <= 20


def test_the_measured_table_is_cached(cache_dir):
    route(cache_dir, 1.0)
    # One table file for (moons, these arms, this pool), reused by every call.
    assert len(list(cache_dir.glob("table-router-moons-*.json"))) == 1


@pytest.mark.parametrize("kwargs,match", [({"toy": "cifar"}, "toy"), ({"speed_weight": 0.0}, "speed_weight"),
                                          ({"max_nfe": 0}, "max_nfe")])
def test_bad_requests_name_the_value(kwargs, match):
    args = {"toy": "moons", "speed_weight": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        route_and_sample(args.pop("toy"), args.pop("speed_weight"), **args)


def test_distill_settings_apply_a_toys_own_changes_only_to_that_toy(monkeypatch):
    from trainopt.ars.diffusion import route as route_module

    monkeypatch.setattr(route_module, "TOY_DISTILL", {"8gaussians": {"iterations": 7}})
    # The toy with changes gets them over the shared defaults; another toy keeps the defaults.
    assert route_module.distill_settings("8gaussians") == {**route_module.DISTILL_SETTINGS, "iterations": 7}
    assert route_module.distill_settings("moons") == route_module.DISTILL_SETTINGS
