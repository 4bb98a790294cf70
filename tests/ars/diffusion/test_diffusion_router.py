"""Router: features, save/load, and REINFORCE learning a clearly best expert."""

import pytest
import torch

from trainopt.ars.diffusion import Request, Router, load_router, request_features, save_router, train_router


def test_features_encode_the_dataset_and_lambda():
    f = request_features(Request("moons", 1.0, torch.randn(100, 2)))
    g = request_features(Request("8gaussians", 100.0, torch.randn(100, 2)))
    # Fixed length, different one-hot, log10(lam)/2 = 0 and 1.
    assert f.shape == g.shape
    assert not torch.equal(f[:5], g[:5])
    assert float(f[5]) == 0.0 and float(g[5]) == 1.0


@pytest.mark.parametrize("dataset,lam", [("cifar", 1.0), ("moons", 0.0)])
def test_features_reject_bad_requests(dataset, lam):
    with pytest.raises(ValueError):
        request_features(Request(dataset, lam, torch.randn(4, 2)))


def test_router_round_trips_through_save_and_load(tmp_path):
    router = Router(hidden=8)
    save_router(router, tmp_path / "r.pt", datasets=["moons"])
    loaded, meta = load_router(tmp_path / "r.pt")
    f = request_features(Request("moons", 0.5, torch.randn(10, 2)))
    # Same config, same weights: same probabilities and the same greedy decision.
    assert meta == {"datasets": ["moons"]}
    assert loaded.expert_probabilities(f) == router.expert_probabilities(f)
    a, b = loaded.choose(f), router.choose(f)
    assert (a.expert, a.num_steps) == (b.expert, b.num_steps)


def test_reinforce_raises_the_probability_of_the_best_expert():
    torch.manual_seed(0)
    router = Router(hidden=16)
    x_T = torch.randn(8, 2)

    def sample_request(g):
        return Request("moons", 1.0, x_T)

    def reward(request, expert, steps):  # heun is clearly best; fewer steps are cheaper
        return (1.0 if expert == "heun" else 0.0) - steps / 1000 + 0.05 * float(torch.randn(1))

    f = request_features(sample_request(None))
    before = router.expert_probabilities(f)["heun"]
    train_router(router, reward, sample_request, iterations=40, batch_size=8, lr=1e-2)
    # From ~1/5 to a clear majority, and the greedy choice is heun.
    assert router.expert_probabilities(f)["heun"] > max(0.6, before + 0.3)
    assert router.choose(f).expert == "heun"


@pytest.mark.parametrize("kwargs,match", [({"group_size": 1}, "group_size"), ({"normalize": "none"}, "normalize"),
                                          ({"lr": 0.0}, "lr")])
def test_train_router_validates_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_router(Router(), lambda r, e, s: 0.0, lambda g: None, **kwargs)


def test_router_takes_an_explicit_arm_list_with_a_distilled_expert():
    router = Router(hidden=8, arms=[("ddim", 10), ("distilled", 4)])
    f = request_features(Request("moons", 0.5, torch.randn(10, 2)))
    # Two arms, probabilities summed per expert, and the greedy decision is one of the arms.
    assert set(router.expert_probabilities(f)) == {"ddim", "distilled"}
    assert abs(sum(router.expert_probabilities(f).values()) - 1) < 1e-6
    d = router.choose(f)
    assert (d.expert, d.num_steps) in router.arms


def test_group_normalised_reinforce_follows_lambda_where_batch_normalisation_does_not():
    # Two arms: "slow" wins by 0.01 at small lambda, "fast" saves 0.1 * lam / 1000 * 90 at large lambda.
    # Rewards at lam = 30 are ~100x those at lam = 0.01, as in the benchmark.
    arms = [("ddim", 100), ("ddim", 10)]
    quality = {100: 0.005, 10: 0.015}

    def reward(request, expert, steps):
        return -quality[steps] - request.lam * steps / 1000

    def sample_request(g):
        lam = 0.01 if float(torch.rand(1, generator=g)) < 0.5 else 30.0
        return Request("moons", lam, torch.zeros(4, 2))

    def picks(normalize):
        torch.manual_seed(0)
        router = Router(hidden=16, arms=arms)
        train_router(router, reward, sample_request, iterations=150, batch_size=8, lr=1e-2, normalize=normalize)
        return [router.choose(request_features(Request("moons", lam, torch.zeros(4, 2)))).num_steps
                for lam in (0.01, 30.0)]

    # Group normalisation: 100 steps at lam = 0.01, 10 at lam = 30 (the reward-optimal arms);
    # batch normalisation learns only the large-lambda requests and answers 10 steps at both.
    assert picks("group") == [100, 10]
    assert picks("batch") == [10, 10]
